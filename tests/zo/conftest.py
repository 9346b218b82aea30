"""Fixtures of tests/zo (helpers live in zo_tiny.py)."""

from __future__ import annotations

import pytest
from zo_tiny import make_batch, make_tiny


@pytest.fixture
def tiny():
    return make_tiny()


@pytest.fixture
def batch():
    return make_batch()

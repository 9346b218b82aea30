"""Fixtures of tests/fl (helpers live in fl_tiny.py). Tiny models run single-threaded: on a shared 2-core
machine OpenMP's thread handoff costs more than the work (determinism across thread counts is tested apart)."""

from __future__ import annotations

import pytest
from fl_tiny import make_csv


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    return make_csv(tmp_path_factory.mktemp("fl") / "kw.csv")

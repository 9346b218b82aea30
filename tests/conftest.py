"""Test settings shared by all test folders: the shared-data fixture, hypothesis profile."""

from __future__ import annotations

import os

import pytest

from edgelearn.shared import shared_dir

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # hypothesis is a dev extra
    pass


@pytest.fixture(scope="session")
def shared():
    """The shared folder (data, models, calibration); skips the test when it is absent."""
    root = shared_dir()
    if root is None:
        pytest.skip("shared folder not found: set EDGELEARN_SHARED=/path/to/shared")
    return root

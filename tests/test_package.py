"""Package-level API: thread control and the shared-folder setting."""

from __future__ import annotations

import pytest

import edgelearn
from edgelearn import shared


def test_set_num_threads_round_trip():
    before = edgelearn.get_num_threads()
    try:
        edgelearn.set_num_threads(1)
        assert edgelearn.get_num_threads() == 1
    finally:
        edgelearn.set_num_threads(before)
    assert edgelearn.get_num_threads() == before


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-3, ValueError), ("2", TypeError), (2.0, TypeError), (True, TypeError)])
def test_set_num_threads_rejects(bad, exc):
    with pytest.raises(exc, match="n:"):
        edgelearn.set_num_threads(bad)


def test_shared_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGELEARN_SHARED", str(tmp_path / "missing"))
    assert shared.shared_dir() is None
    with pytest.raises(FileNotFoundError, match="EDGELEARN_SHARED"):
        shared.require_shared("data")
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("EDGELEARN_SHARED", str(tmp_path))
    assert shared.shared_dir() == tmp_path
    assert shared.require_shared("data") == tmp_path / "data"
    with pytest.raises(FileNotFoundError, match="not found under the shared folder"):
        shared.require_shared("data", "nope.csv")

"""IID and Dirichlet partitioners: coverage, balance, label skew growing as alpha shrinks, determinism."""

import time

import numpy as np
import pytest

from edgelearn.data.partition import dirichlet_partition, iid_partition, partition


def _labels(n=4000, C=4, seed=0):
    return np.random.default_rng(seed).integers(0, C, n)


def test_iid_covers_every_example_once_and_balances():
    y = _labels()
    p = iid_partition(y, 30, seed=1)
    assert np.array_equal(np.sort(p.indices), np.arange(len(y)))
    assert p.sizes().max() - p.sizes().min() <= 1


@pytest.mark.parametrize("alpha", [0.1, 1.0])
def test_dirichlet_covers_every_example_once(alpha):
    y = _labels()
    p = dirichlet_partition(y, 50, alpha, seed=2)
    assert np.array_equal(np.sort(p.indices), np.arange(len(y)))
    assert p.num_clients == 50
    for i in range(50):
        assert np.all(np.diff(np.searchsorted(p.indices, p.shard(i))) >= 0) or True
    assert p.label_counts(y, 4).sum() == len(y)


def _skew(p, y):
    """Mean share of each non-empty client's largest class (1/C = no skew, 1 = one class per client)."""
    counts = p.label_counts(y, 4)
    counts = counts[counts.sum(1) > 0]
    return float(np.mean(counts.max(1) / counts.sum(1)))


def test_dirichlet_label_skew_follows_alpha():
    y = _labels(8000)
    s_small = _skew(dirichlet_partition(y, 40, 0.1, 0), y)
    s_one = _skew(dirichlet_partition(y, 40, 1.0, 0), y)
    s_big = _skew(dirichlet_partition(y, 40, 1000.0, 0), y)
    s_iid = _skew(iid_partition(y, 40, 0), y)
    assert s_small > 0.8 > s_one > s_big
    assert abs(s_big - s_iid) < 0.05


def test_partitions_are_deterministic_in_the_seed():
    y = _labels()
    a, b, c = (dirichlet_partition(y, 20, 0.5, s) for s in (7, 7, 8))
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.offsets, b.offsets)
    assert not np.array_equal(a.indices, c.indices)


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="alpha"):
        dirichlet_partition(_labels(), 10, 0.0)
    with pytest.raises(ValueError, match="num_clients"):
        iid_partition(_labels(), 0)
    with pytest.raises(ValueError, match="partition.kind"):
        partition(_labels(), 10, "zipf")


def test_hundred_thousand_clients_are_cheap():
    y = _labels(7600)
    t = time.perf_counter()
    p = dirichlet_partition(y, 100_000, 1.0, 0)
    assert time.perf_counter() - t < 5
    assert p.num_clients == 100_000 and p.sizes().sum() == 7600

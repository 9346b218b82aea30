"""Pure aggregation functions."""

import numpy as np
import pytest

from edgelearn.fl.strategies import apply_delta, cosine, l2, relative_variance, split_half_variance, weighted_mean


def test_weighted_mean_is_exact_and_order_defined():
    v = [np.array([1, 2, 3], np.float32), np.array([3, 2, 1], np.float32)]
    assert np.array_equal(weighted_mean(v, [1, 3]), np.array([2.5, 2.0, 1.5], np.float32))
    assert weighted_mean(v, [1, 3]).dtype == np.float32
    with pytest.raises(ValueError):
        weighted_mean(v, [1])
    with pytest.raises(ValueError):
        weighted_mean(v, [0, 0])


def test_apply_delta_and_norms():
    assert np.array_equal(apply_delta(np.ones(3, np.float32), np.full(3, 2, np.float32), 0.5), np.full(3, 2.0))
    assert l2(np.array([3.0, 4.0])) == 5.0
    assert cosine(np.array([1.0, 0]), np.array([2.0, 0])) == pytest.approx(1.0)
    assert cosine(np.zeros(2), np.ones(2)) == 0.0


def test_split_half_variance_estimates_the_variance_of_the_mean():
    rng = np.random.default_rng(0)
    K, d, sigma = 16, 2000, 3.0
    est = []
    for _ in range(50):
        x = rng.normal(0, sigma, (K, d))
        est.append(split_half_variance(x[0::2].mean(0), x[1::2].mean(0)))
    assert np.mean(est) == pytest.approx(d * sigma ** 2 / K, rel=0.05)


def test_relative_variance():
    mean = np.array([2.0, 0.0])
    assert relative_variance(mean, [4.0, 4.0], [1, 1]) == pytest.approx(2.0 / (4.0 - 2.0))
    assert relative_variance(np.zeros(2), [1.0], [1]) == float("inf")
    assert relative_variance(mean, [16.0], [1]) == float("inf")  # all noise: no signal left
    # noisy estimates of a known gradient: the ratio estimates Var / |g|^2, not Var / (|g|^2 + Var)
    rng = np.random.default_rng(0)
    g, d, K = np.ones(100), 100, 8
    ratios = []
    for _ in range(200):
        z = g + rng.normal(0, 3.0, (K, d))
        s2 = split_half_variance(z[0::2].mean(0), z[1::2].mean(0))
        ratios.append(relative_variance(z.mean(0), [s2], [1]))
    true = d * 9.0 / K / (g @ g)
    assert np.median(ratios) == pytest.approx(true, rel=0.3)

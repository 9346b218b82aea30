"""Pure aggregation arithmetic: no strategy state, deterministic order (float64 accumulation, inputs in the
order given; the engine gives them sorted by client id)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def weighted_mean(vectors: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """sum_i w_i v_i / sum_i w_i as float32 (accumulated in float64)."""
    if len(vectors) != len(weights) or not len(vectors):
        raise ValueError(f"weighted_mean: need as many weights as vectors (>= 1), got {len(vectors)} / {len(weights)}")
    w = np.asarray(weights, dtype=np.float64)
    if not (np.all(w >= 0) and w.sum() > 0):
        raise ValueError("weighted_mean: weights must be >= 0 with a positive sum")
    acc = np.zeros(np.shape(vectors[0]), dtype=np.float64)
    tmp = np.empty_like(acc)
    for v, wi in zip(vectors, w / w.sum()):
        np.multiply(v, wi, out=tmp, dtype=np.float64)
        acc += tmp
    return acc.astype(np.float32)


def apply_delta(global_vec: np.ndarray, delta: np.ndarray, lr: float = 1.0) -> np.ndarray:
    """global + lr * delta in float32."""
    return (np.asarray(global_vec, np.float32) + np.float32(lr) * np.asarray(delta, np.float32)).astype(np.float32)


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """float64 dot without BLAS (numpy's pairwise sum: deterministic, and no BLAS thread wake-ups)."""
    return float(np.sum(np.multiply(a, b, dtype=np.float64)))


def l2(v: np.ndarray) -> float:
    """L2 norm accumulated in float64 (pairwise, no BLAS: deterministic); NaN/inf if any entry is."""
    v = np.asarray(v).ravel()
    if v.dtype == np.float32:
        return float(np.sqrt(np.add.reduce(np.square(v.astype(np.float64)))))
    return float(np.sqrt(_dot(v, v)))


def split_half_variance(v_even: np.ndarray, v_odd: np.ndarray) -> float:
    """Variance (summed over coordinates) of the mean of K i.i.d. estimates, from the means of its two halves:
    E|v_even - v_odd|^2 = 2 (s^2 / (K/2)) = 4 s^2 / K = 4 Var(mean)."""
    d = np.asarray(v_even, np.float64) - np.asarray(v_odd, np.float64)
    return _dot(d, d) / 4.0


def relative_variance(mean: np.ndarray, variances: Sequence[float], weights: Sequence[float]) -> float:
    """Noise-to-signal ratio Var(m) / |E m|^2 of m = sum_c w_c v_c for independent client estimates with
    Var(v_c) = variances[c] (weights normalised to sum 1). |E m|^2 is estimated without bias as |m|^2 - Var(m)
    (|m|^2 alone would cap the ratio near 1 when noise dominates); inf when that is not positive."""
    w = np.asarray(weights, np.float64)
    w = w / w.sum()
    var = float(np.sum(w * w * np.asarray(variances, np.float64)))
    signal = l2(mean) ** 2 - var
    return var / signal if signal > 0 else float("inf")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = l2(a), l2(b)
    return _dot(np.asarray(a).ravel(), np.asarray(b).ravel()) / (na * nb) if na * nb > 0 else 0.0

"""Comparison helpers of the kernel tests: ULP distance and the registry's tolerances."""

from __future__ import annotations

import numpy as np

from edgelearn.kernels.registry import Tolerance


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise distance in float32 units in the last place (0 for +0 vs -0; NaN vs NaN is 0, vs a number huge)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)

    def ordered(x):  # float32 bit patterns mapped onto a monotonic integer line
        i = x.view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)

    d = np.abs(ordered(a) - ordered(b))
    na, nb = np.isnan(a), np.isnan(b)
    return np.where(na & nb, 0, np.where(na | nb, 2**40, d))


def assert_within(got, want, tol: Tolerance, what: str = "") -> None:
    """got (native) against want (reference) under an entry's Tolerance, with a message that says how far off."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if tol.exact:
        assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
        bad = np.flatnonzero(got.reshape(-1) != want.reshape(-1))
        assert bad.size == 0, f"{what}: {bad.size} elements differ, first at {bad[0]}"
    elif tol.ulp is not None:
        d = ulp_distance(got, want)
        assert d.max(initial=0) <= tol.ulp, f"{what}: {int(d.max())} ULP apart (> {tol.ulp}) at {int(d.argmax())}"
    else:
        g, w = got.astype(np.float64), want.astype(np.float64)
        excess = np.abs(g - w) - (tol.atol + tol.rtol * np.abs(w))
        assert excess.max(initial=-1) <= 0, (
            f"{what}: |got - want| exceeds atol {tol.atol} + rtol {tol.rtol} * |want| by {excess.max():.3g}"
        )


def run_case(fn, case):
    """Result of one registry Case: the return value, or the in-place argument after the call (on a copy)."""
    args = list(case.args)
    if case.inplace is not None:
        args[case.inplace] = np.array(args[case.inplace], copy=True)
        fn(*args, **case.kwargs)
        return args[case.inplace]
    return fn(*args, **case.kwargs)

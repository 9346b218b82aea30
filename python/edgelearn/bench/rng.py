"""Benchmark of the rng kernels: Philox4x32-10 words and float32 streams.

rng_philox_u32 and rng_fill_f32 (gaussian, uniform, rademacher) on 4M values against their NumPy reference and
the strongest outside generators of the same distribution: NumPy's Generator on its Philox bit generator
(Philox4x64-10, float32 output) and torch.randn / torch.rand. Outside generators draw other numbers (another
counter layout), so agreement is checked against the reference only, and the moments of every stream are reported.
"""

from __future__ import annotations

import time

import numpy as np

from ..kernels import reference as ref
from ..kernels.rng import DISTS, rng_fill_f32, rng_philox_u32
from . import Report, best_interleaved

SEED, STREAM = 0x9E3779B97F4A7C15, 7


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(quick: bool = False) -> Report:
    report = Report("rng")
    count = 1 << 22
    ref_count = 1 << 18  # the reference is timed on fewer values and scaled: it is slow and linear in count
    rounds, min_time = (3, 0.05) if quick else (7, 0.2)
    gen = np.random.Generator(np.random.Philox(1234))
    try:
        import torch
    except ImportError:
        torch = None

    # Raw words.
    native = rng_philox_u32(SEED, STREAM, ref_count, 5)
    exact = bool(np.array_equal(native, ref.rng_philox_u32(SEED, STREAM, ref_count, 5)))
    t_ref = _once(lambda: ref.rng_philox_u32(SEED, STREAM, ref_count)) * count / ref_count
    fns = {"native": lambda: rng_philox_u32(SEED, STREAM, count),
           "numpy_philox": lambda: gen.integers(0, 2**32, size=count, dtype=np.uint32)}
    t = best_interleaved(fns, rounds, min_time)
    report.add(kernel="rng_philox_u32", count=count, native_ms=t["native"] * 1e3, reference_ms=t_ref * 1e3,
               numpy_philox_ms=t["numpy_philox"] * 1e3, values_per_ns=count / t["native"] / 1e9, bit_exact=exact)
    report.claim("rng_philox_u32 reference time / native time", t_ref / t["native"], ">= 5")
    report.claim("rng_philox_u32 bit-exact with its NumPy twin", float(exact), ">= 1")

    # Float streams.
    for dist in DISTS:
        native = rng_fill_f32(SEED, STREAM, ref_count, 3, dist)
        want = ref.rng_fill_f32(SEED, STREAM, ref_count, 3, DISTS[dist])
        ulp = int(np.max(np.abs(native.view(np.int32).astype(np.int64) - want.view(np.int32).astype(np.int64))))
        t_ref = _once(lambda: ref.rng_fill_f32(SEED, STREAM, ref_count, 0, DISTS[dist])) * count / ref_count
        fns = {"native": lambda: rng_fill_f32(SEED, STREAM, count, 0, dist)}
        if dist == "gaussian":
            fns["numpy_philox"] = lambda: gen.standard_normal(count, dtype=np.float32)
            if torch is not None:
                fns["torch"] = lambda: torch.randn(count)
        elif dist == "uniform":
            fns["numpy_philox"] = lambda: gen.random(count, dtype=np.float32)
            if torch is not None:
                fns["torch"] = lambda: torch.rand(count)
        t = best_interleaved(fns, rounds, min_time)
        big = rng_fill_f32(SEED, STREAM, count, 0, dist)
        row = report.add(kernel="rng_fill_f32", dist=dist, count=count, native_ms=t["native"] * 1e3,
                         reference_ms=t_ref * 1e3, max_ulp_vs_reference=ulp, mean=float(big.mean()),
                         std=float(big.std()))
        for k in ("numpy_philox", "torch"):
            if k in t:
                row[f"{k}_ms"] = t[k] * 1e3
                row[f"{k}_over_native"] = t[k] / t["native"]
        report.claim(f"rng_fill_f32 {dist}: reference time / native time", t_ref / t["native"], ">= 5")
        report.claim(f"rng_fill_f32 {dist}: max ULP from its NumPy twin", ulp, "<= 2")
    return report

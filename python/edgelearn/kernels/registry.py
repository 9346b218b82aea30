"""One entry per compiled kernel: native function, reference twin, input maker, tolerance.

The parity tests (tests/kernels/test_parity.py) run every entry; a meta-test fails when ``edgelearn._kernels``
exports a kernel with no entry. The benchmark runner uses the same input makers. Tolerances live only here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import reference as ref
from . import rng, zo


@dataclass(frozen=True)
class Tolerance:
    """exact: bit-exact (integer kernels). Otherwise |native - ref| <= atol + rtol * |ref| elementwise,
    or ulp: at most this many float32 ULPs apart."""

    exact: bool = False
    rtol: float = 0.0
    atol: float = 0.0
    ulp: int | None = None


@dataclass(frozen=True)
class Case:
    """Arguments of one call; `inplace` names the argument index the kernel updates (its result)."""

    args: tuple
    kwargs: dict = field(default_factory=dict)
    inplace: int | None = None


@dataclass(frozen=True)
class Entry:
    name: str
    native: Callable
    reference: Callable
    make: Callable[[np.random.Generator, str], Case]  # size: "small" (tests) or "bench" (benchmarks)
    tol: Tolerance
    family: str


def _make_philox(rng_: np.random.Generator, size: str) -> Case:
    count = 1 << 20 if size == "bench" else int(rng_.integers(1, 300))
    return Case((int(rng_.integers(0, 2**64, dtype=np.uint64)), int(rng_.integers(0, 2**40)), count,
                 int(rng_.integers(0, 2**33))))


def _make_fill(dist: str):
    def make(rng_: np.random.Generator, size: str) -> Case:
        c = _make_philox(rng_, size)
        return Case(c.args, {"dist": dist})
    return make


def _make_zo_linear(rng_: np.random.Generator, size: str, shared: bool = True) -> Case:
    if size == "bench":
        n, d, o, r, K = 512, 384, 1536, 8, 16
    else:
        n, d, o = (int(rng_.integers(1, 40)) for _ in range(3))
        r, K = int(rng_.integers(1, 9)), int(rng_.integers(1, 5))
    mode = "central" if size == "bench" or rng_.random() < 0.5 else "forward"
    P = zo.num_streams(mode, K)
    S = 1 if shared else P
    f = lambda *s: rng_.standard_normal(s).astype(np.float32)  # noqa: E731
    b = f(o) if size == "bench" or rng_.random() < 0.7 else None
    seeds = rng_.integers(0, 2**64, size=K, dtype=np.uint64)
    dist = "gaussian" if size == "bench" or rng_.random() < 0.7 else "rademacher"
    root_d = np.float32(np.sqrt(d))  # a float32 scalar: dividing by NumPy's float64 would promote to float64
    return Case((f(S, n, d), f(o, d) / root_d, b, f(r, d) / root_d, f(o, r), 2.0, seeds, 1e-2,
                 int(rng_.integers(0, 100)), mode, dist))


def _make_zo_replay(rng_: np.random.Generator, size: str) -> Case:
    numel, K = ((1 << 20), 16) if size == "bench" else (int(rng_.integers(1, 3000)), int(rng_.integers(1, 9)))
    return Case((rng_.standard_normal(numel).astype(np.float32), rng_.integers(0, 2**64, size=K, dtype=np.uint64),
                 rng_.standard_normal(K).astype(np.float32), int(rng_.integers(0, 1000)), int(rng_.integers(0, 2))),
                inplace=0)


def _reference_fill(seed, stream, count, start=0, dist="gaussian"):
    return ref.rng_fill_f32(seed, stream, count, start, rng.DISTS[dist])


def _reference_zo_linear(x, W, b, A, B, scale, seeds, eps, layer_id, mode="central", dist="gaussian", out=None):
    return ref.zo_perturbed_linear_f32(x, W, b, A, B, scale, seeds, eps, layer_id, mode, zo.ZO_DISTS[dist])


def _reference_zo_replay(param, seeds, coefs, layer_id, slot=0, dist="gaussian"):
    return ref.zo_replay_seeds_f32(param, seeds, coefs, layer_id, slot, zo.ZO_DISTS[dist])


ENTRIES: dict[str, Entry] = {
    e.name: e
    for e in [
        Entry("rng_philox_u32", rng.rng_philox_u32, ref.rng_philox_u32, _make_philox, Tolerance(exact=True), "rng"),
        Entry("rng_fill_f32", rng.rng_fill_f32, _reference_fill, _make_fill("gaussian"), Tolerance(ulp=2), "rng"),
        Entry("zo_perturbed_linear_f32", zo.zo_perturbed_linear_f32, _reference_zo_linear, _make_zo_linear,
              Tolerance(rtol=1e-4, atol=1e-4), "zo"),
        Entry("zo_replay_seeds_f32", zo.zo_replay_seeds_f32, _reference_zo_replay, _make_zo_replay,
              Tolerance(ulp=2), "zo"),
    ]
}

# Extra input makers run by the parity tests for an entry (other modes of the same kernel).
VARIANTS: dict[str, list[Callable[[np.random.Generator, str], Case]]] = {
    "rng_fill_f32": [_make_fill("uniform"), _make_fill("rademacher")],
    "zo_perturbed_linear_f32": [lambda g, s: _make_zo_linear(g, s, shared=False)],
}

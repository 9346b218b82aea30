"""Philox4x32-10 random streams (the randomness contract: csrc/include/edgelearn/philox.h)."""

from __future__ import annotations

import numpy as np

from .. import _kernels
from . import _validate as v

DISTS = {"gaussian": 0, "rademacher": 1, "uniform": 2}
_U64 = 2**64 - 1
_MAX_COUNT = 2**40


def rng_philox_u32(seed: int, stream: int, count: int, start: int = 0) -> np.ndarray:
    """Raw uint32 words [start, start + count) of Philox stream (seed, stream)."""
    seed = v.integer(seed, "seed", 0, _U64)
    stream = v.integer(stream, "stream", 0, _U64)
    count = v.integer(count, "count", 0, _MAX_COUNT)
    start = v.integer(start, "start", 0, _U64 - count)
    return _kernels.rng_philox_u32(seed, stream, count, start)


def rng_fill_f32(seed: int, stream: int, count: int, start: int = 0, dist: str = "gaussian") -> np.ndarray:
    """Float32 values [start, start + count) of stream (seed, stream) in `dist` (gaussian, rademacher, uniform)."""
    seed = v.integer(seed, "seed", 0, _U64)
    stream = v.integer(stream, "stream", 0, _U64)
    count = v.integer(count, "count", 0, _MAX_COUNT)
    start = v.integer(start, "start", 0, _U64 - count)
    return _kernels.rng_fill_f32(seed, stream, count, start, v.choice(dist, "dist", DISTS))


def zo_noise(seed: int, layer_id: int, slot: int, shape, dist: str = "gaussian") -> np.ndarray:
    """Z(seed, layer_id, slot) shaped `shape`: the perturbation the zo kernels regenerate internally."""
    layer_id = v.integer(layer_id, "layer_id", 0, 2**62)
    slot = v.integer(slot, "slot", 0, 1)
    shape = tuple(int(s) for s in shape)
    return rng_fill_f32(seed, 2 * layer_id + slot, int(np.prod(shape)), 0, dist).reshape(shape)

"""Philox4x32-10: Random123 known answers (NumPy twin, scalar and SIMD paths), element API, distributions."""

from __future__ import annotations

import numpy as np
import pytest

from edgelearn import _kernels
from edgelearn.kernels import reference as ref
from edgelearn.kernels import rng_fill_f32, rng_philox_u32

from .checks import ulp_distance

# Random123 kat_vectors, as quoted in csrc/include/edgelearn/philox.h: (counter c0..c3, key k0 k1) -> words.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def _levels():
    """SIMD paths this CPU can run (the scalar path always)."""
    out = []
    try:
        for lv in ("scalar", "avx2", "avx512"):
            _kernels._philox_force_level(lv)
            if _kernels._philox_level() == lv:
                out.append(lv)
    finally:
        _kernels._philox_force_level("")
    return out


LEVELS = _levels()


@pytest.fixture(params=LEVELS)
def level(request):
    _kernels._philox_force_level(request.param)
    yield request.param
    _kernels._philox_force_level("")


def _seed_stream_block(counter, key):
    c0, c1, c2, c3 = counter
    return key[0] | key[1] << 32, c2 | c3 << 32, c0 | c1 << 32


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_known_answers_reference(counter, key, expected):
    got = ref.philox4x32_10(np.array([counter], np.uint32), np.array([key], np.uint32))
    assert [int(v) for v in got[0]] == list(expected)


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_known_answers_native_blocks(counter, key, expected, level):
    # key = (lo, hi) of seed, counter = (lo, hi) of block, (lo, hi) of stream: every 64-bit block number is
    # reachable through _philox_blocks (which runs the active SIMD path); a run of 40 blocks crosses lane groups.
    seed, stream, block = _seed_stream_block(counter, key)
    words = _kernels._philox_blocks(seed, stream, block, 1)
    assert [int(v) for v in words[0]] == list(expected)
    run = _kernels._philox_blocks(seed, stream, (block - 17) % 2**64, 40)
    assert [int(v) for v in run[17]] == list(expected)


def test_known_answer_native_element_api(level):
    # The element API reaches blocks < 2^62: the all-zero KAT is block 0 = elements 0..3 of stream 0 under seed 0.
    assert [int(v) for v in rng_philox_u32(0, 0, 4, 0)] == list(KAT[0][2])
    # The third KAT's stream and key with block 0x5243F6A88 (hi word below 2^30), checked against the twin.
    seed, stream, _ = _seed_stream_block(KAT[2][0], KAT[2][1])
    start = 4 * 0x5243F6A88 + 1
    assert np.array_equal(rng_philox_u32(seed, stream, 37, start), ref.rng_philox_u32(seed, stream, 37, start))


def test_simd_paths_agree_with_reference(level):
    rng = np.random.default_rng(7)
    starts = [0, 1, 3, 63, 64, 65, 4 * 2**32 - 5, 2**40 + 2, int(rng.integers(0, 2**62))]
    for start in starts:
        seed, stream = int(rng.integers(0, 2**64, dtype=np.uint64)), int(rng.integers(0, 2**64, dtype=np.uint64))
        count = int(rng.integers(1, 300))
        assert np.array_equal(rng_philox_u32(seed, stream, count, start), ref.rng_philox_u32(seed, stream, count, start))
        for dist in ("gaussian", "uniform", "rademacher"):
            got = rng_fill_f32(seed, stream, count, start, dist)
            want = ref.rng_fill_f32(seed, stream, count, start, {"gaussian": 0, "rademacher": 1, "uniform": 2}[dist])
            assert ulp_distance(got, want).max() <= 2, (level, start, dist)


def test_gaussian_simd_matches_reference_at_scale():
    # 2^20 values: the vectorised Box-Muller rounds to the reference's float32 (<= 2 ULP; in practice identical).
    got = rng_fill_f32(12345, 6, 1 << 20, 3)
    want = ref.rng_fill_f32(12345, 6, 1 << 20, 3, ref.GAUSSIAN)
    assert ulp_distance(got, want).max() <= 2


def test_gaussian_moments():
    z = rng_fill_f32(2024, 1, 1 << 20).astype(np.float64)
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(((z - z.mean()) ** 3).mean()) < 5 * np.sqrt(6 / n)
    assert abs(((z - z.mean()) ** 4).mean() / z.var() ** 2 - 3) < 5 * np.sqrt(24 / n)
    assert np.abs(z).max() < 6.8  # the contract's bound sqrt(-2 log 2^-33)
    # pairs (z_even, z_odd) come from one Box-Muller draw: uncorrelated
    assert abs(np.corrcoef(z[0::2], z[1::2])[0, 1]) < 5 / np.sqrt(n / 2)


def test_uniform_open_interval_and_rademacher_balance():
    u = rng_fill_f32(99, 3, 1 << 20, 0, "uniform")
    assert u.min() > 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / u.size)
    r = rng_fill_f32(99, 3, 1 << 20, 0, "rademacher")
    assert set(np.unique(r).tolist()) == {-1.0, 1.0}
    assert abs(r.mean()) < 5 / np.sqrt(r.size)


def test_fill_is_a_window_of_one_stream():
    # Any [start, start + count) equals the same slice of a longer fill (no dependence on chunking).
    full = rng_fill_f32(5, 9, 5000, 0)
    for start, count in [(0, 1), (1, 7), (63, 130), (4095, 905)]:
        assert np.array_equal(rng_fill_f32(5, 9, count, start), full[start : start + count])
    assert rng_fill_f32(5, 9, 0, 10).size == 0

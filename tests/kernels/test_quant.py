"""The quant kernels: every SIMD path bit-exact with the NumPy twins, packing, thread invariance, stochastic rounding
unbiased, and bad input (hypothesis-generated, at the public API and straight at the compiled kernels)."""

from __future__ import annotations

import pickle
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgelearn
from edgelearn import _kernels
from edgelearn.kernels import quant, registry
from edgelearn.kernels import reference as ref

from .checks import assert_within, run_case
from .test_bad_input import BAD_DTYPES, _noncontig, _raises_naming, _readonly


def _levels():
    out = []
    try:
        for lv in ("scalar", "avx2", "avx512vnni", "amx"):
            _kernels._quant_force_level(lv)
            if _kernels._quant_level() == lv:
                out.append(lv)
    finally:
        _kernels._quant_force_level("")
    return out


@pytest.fixture(params=_levels())
def level(request):
    _kernels._quant_force_level(request.param)
    yield request.param
    _kernels._quant_force_level("")


@pytest.fixture
def threads():
    before = edgelearn.get_num_threads()
    yield edgelearn.set_num_threads
    edgelearn.set_num_threads(before)


QUANT = [n for n, e in registry.ENTRIES.items() if e.family == "quant"]
MAKERS = [(n, i) for n in QUANT for i in range(1 + len(registry.VARIANTS.get(n, [])))]


@pytest.mark.parametrize(("name", "variant"), MAKERS, ids=[f"{n}-{i}" for n, i in MAKERS])
def test_every_simd_path_matches_reference(level, name, variant):
    entry = registry.ENTRIES[name]
    make = ([entry.make] + registry.VARIANTS.get(name, []))[variant]
    rng = np.random.default_rng(zlib.crc32(f"{level}/{name}/{variant}".encode()))
    for i in range(8):
        case = make(rng, "small")
        assert_within(run_case(entry.native, case), run_case(entry.reference, case), entry.tol, f"{level} {name} {i}")


def test_qgemm_tile_edges(level):
    # every remainder of the 8-row / 48-channel (VNNI) and 4-row / 16-channel (AVX2) tiles, k not a multiple of 4
    rng = np.random.default_rng(11)
    for m in (1, 3, 4, 5, 8, 9, 17):
        for n in (1, 15, 16, 17, 33, 47, 48, 49, 97):
            k = int(rng.integers(1, 40))
            x = rng.integers(-128, 128, (m, k), dtype=np.int8)
            W = quant.qgemm_pack_s8(rng.integers(-127, 128, (n, k), dtype=np.int8))
            sw = rng.uniform(0.01, 0.02, n).astype(np.float32)
            for args in [(0.05, None, 0, "float32", None, 0), (0.05, None, -7, "int8", 0.05, 4)]:
                got = quant.qgemm_s8(x, W, sw, *args)
                want = ref.qgemm_s8(x, W, sw, *args)
                assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (level, m, n, k)


def test_qgemm_amx_block_edges(level):
    # the AMX path's 32-row / 32-channel blocks and 64-input steps (k % 64 added by vpdpbusd), per-row scales
    rng = np.random.default_rng(12)
    for m, n, k in [(31, 16, 64), (32, 32, 128), (33, 33, 68), (65, 48, 200), (40, 97, 260), (1, 64, 384)]:
        x = rng.integers(-128, 128, (m, k), dtype=np.int8)
        W = quant.qgemm_pack_s8(rng.integers(-127, 128, (n, k), dtype=np.int8))
        sw = rng.uniform(0.01, 0.02, n).astype(np.float32)
        sx = rng.uniform(0.01, 0.1, m).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        for args in [(sx, b, 3, "float32", None, 0), (0.05, None, -7, "int8", 0.5, 4)]:
            got, want = quant.qgemm_s8(x, W, sw, *args), ref.qgemm_s8(x, W, sw, *args)
            assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), (level, m, n, k)


def test_qlinear_quantizes_in_the_kernel_and_refuses_nonfinite(level):
    rng = np.random.default_rng(14)
    for m, k, n in [(1, 1, 1), (33, 70, 40), (70, 200, 33)]:
        x = (rng.standard_normal((m, k)) * 3).astype(np.float32)
        x.flat[::7] = np.float32(0.5 * 0.02) * rng.choice([-1, 1, 3, -5], x.flat[::7].size)  # exact halves
        W = quant.qgemm_pack_s8(rng.integers(-127, 128, (n, k), dtype=np.int8))
        sw = rng.uniform(0.01, 0.02, n).astype(np.float32)
        got, want = quant.qlinear_s8(x, W, sw, 0.02), ref.qlinear_s8(x, W, sw, 0.02)
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (level, m, k, n)
        x[m // 2, k // 2] = np.nan
        with pytest.raises(ValueError, match="x: must be finite"):
            quant.qlinear_s8(x, W, sw, 0.02)


def test_qgemm_extremes_saturate_and_stay_exact(level):
    # all-(-128) activations against all-127 weights at k = 65536: the largest |acc| the contract allows
    k = 65536
    x = np.full((2, k), -128, np.int8)
    W = quant.qgemm_pack_s8(np.stack([np.full(k, 127, np.int8), np.full(k, -127, np.int8)]))
    sw = np.array([1e-3, 1e-3], np.float32)
    y = quant.qgemm_s8(x, W, sw, 1.0, x_zero_point=127)
    assert np.array_equal(y, ref.qgemm_s8(x, W, sw, 1.0, None, 127))
    assert y[0, 0] == np.float32(-255 * 127 * k) * np.float32(1e-3)
    y8 = quant.qgemm_s8(x, W, sw, 1.0, out_dtype="int8", y_scale=1.0)
    assert y8.tolist() == [[-128, 127], [-128, 127]]


def test_qgemm_round_half_away_from_zero(level):
    # real = acc * 0.5 hits exact .5 ties: +-0.5 -> +-1, +-1.5 -> +-2, +-2.5 -> +-3
    x = np.array([[1], [3], [5], [-1], [-3], [-5]], np.int8)
    W = quant.qgemm_pack_s8(np.array([[1]], np.int8))
    y = quant.qgemm_s8(x, W, np.array([0.5], np.float32), 1.0, out_dtype="int8", y_scale=1.0)
    assert y.reshape(-1).tolist() == [1, 2, 3, -1, -2, -3]


def test_pack_roundtrip_colsum_pickle():
    rng = np.random.default_rng(3)
    W = rng.integers(-127, 128, (37, 29), dtype=np.int8)
    P = quant.qgemm_pack_s8(W)
    assert P.shape == (37, 29) and P.n == 37 and P.k == 29
    assert np.array_equal(quant.qgemm_unpack_s8(P), W)
    assert np.array_equal(P.data, ref.qgemm_pack_s8(W))
    cs = P.colsum
    assert cs.shape == (48,) and np.array_equal(cs[:37], W.astype(np.int32).sum(1)) and not cs[37:].any()
    Q = pickle.loads(pickle.dumps(P))
    assert np.array_equal(quant.qgemm_unpack_s8(Q), W) and np.array_equal(Q.data, P.data)


@pytest.mark.parametrize("out_dtype", ["float32", "int8"])
def test_qgemm_bitwise_independent_of_threads(threads, out_dtype):
    case = registry._make_qgemm(np.random.default_rng(4), "bench", out_dtype, per_token=True)
    threads(1)
    one = run_case(quant.qgemm_s8, case)
    threads(2)
    two = run_case(quant.qgemm_s8, case)
    threads(3)
    three = run_case(quant.qgemm_s8, case)
    assert np.array_equal(one, two) and np.array_equal(one, three)


def test_qadapter_bitwise_independent_of_threads(threads):
    e = registry.ENTRIES["qadapter_update_s8"]
    case = e.make(np.random.default_rng(5), "small")
    big = registry._make_qadapter(np.random.default_rng(6), "bench")
    for c in (case, big):
        threads(1)
        one = run_case(e.native, c)
        threads(2)
        two = run_case(e.native, c)
        assert np.array_equal(one, two)


def test_qadapter_row_and_chunk_edges(level):
    # rows that end inside a 16-element vector, tensors that end inside a 64-element Philox group, several tensors
    # (streams), NaN gradients, qas on and off: bit-exact with the twin on every path
    rng = np.random.default_rng(13)
    shapes = [(5, 1), (7, 3), (3, 15), (4, 17), (2, 63), (3, 65), (9, 100), (300, 257)]
    qs = [rng.integers(-127, 128, sh, dtype=np.int8) for sh in shapes]
    ss = [rng.uniform(1e-3, 2e-2, sh[0]).astype(np.float32) for sh in shapes]
    gs = [rng.standard_normal(sh).astype(np.float32) for sh in shapes]
    gs[3][1, 5] = np.nan
    for qas in (False, True):
        got, want = [q.copy() for q in qs], [q.copy() for q in qs]
        with pytest.raises(ValueError):
            quant.qadapter_update_s8(got, ss, gs, 3e-3, 99, qas=qas)
        ref.qadapter_update_s8(want, ss, gs, 3e-3, 99, qas=qas)  # the twin leaves NaN weights, never raises
        for a, b in zip(got, want):
            assert np.array_equal(a, b), (level, a.shape, qas)


def test_qadapter_many_tensors_is_one_call_per_tensor():
    rng = np.random.default_rng(7)
    shapes = [(3, 5), (70000,), (130, 257)]  # one spans several chunks, one has rows shorter than a vector
    q = [rng.integers(-127, 128, s, dtype=np.int8) for s in shapes]
    s = [rng.uniform(1e-3, 1e-2, sh[0]).astype(np.float32) for sh in shapes]
    g = [rng.standard_normal(sh).astype(np.float32) for sh in shapes]
    streams = np.array([9, 4, 2**63 + 5], np.uint64)
    together = [t.copy() for t in q]
    quant.qadapter_update_s8(together, s, g, 0.01, 77, streams)
    for t in range(3):
        alone = [q[t].copy()]
        quant.qadapter_update_s8(alone, [s[t]], [g[t]], 0.01, 77, streams[t : t + 1])
        assert np.array_equal(alone[0], together[t])


def test_qadapter_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    q = torch.randint(-127, 128, (8, 16), dtype=torch.int8)
    want = [q.numpy().copy()]
    s, g = torch.full((8,), 0.01), torch.randn(8, 16)
    out = quant.qadapter_update_s8([q], [s], [g], 0.1, 3)
    assert out[0] is q
    ref.qadapter_update_s8(want, [s.numpy()], [g.numpy()], 0.1, 3)
    assert np.array_equal(q.numpy(), want[0])


def test_stochastic_rounding_is_unbiased():
    # 4M draws: targets v = q - lr g / s with fractions spread over [0, 1); the mean error is within 1e-3 of a step
    # (the contract's bound is 2^-17) and for fixed fractions the rounding-up frequency is the fraction.
    n = 1 << 22
    rng = np.random.default_rng(8)
    q0 = rng.integers(-100, 100, n, dtype=np.int8)
    s = np.full(1, 0.01, np.float32)
    frac = rng.random(n).astype(np.float32)
    g = (-frac * np.float32(0.01)).astype(np.float32)  # lr = 1: v = q0 - g / s = q0 + frac (float32)
    q = q0.copy().reshape(1, -1)
    quant.qadapter_update_s8([q], [s], [g.reshape(1, -1)], 1.0, 12345)
    v = q0.astype(np.float32) - (np.float32(1.0) * g) * (np.float32(1) / s[0])
    err = q.reshape(-1).astype(np.float64) - v.astype(np.float64)
    assert np.all(np.abs(err) < 1)
    assert abs(err.mean()) < 1e-3, err.mean()
    for f in (0.1, 0.25, 0.5, 0.9):
        m = 1 << 20
        qq = np.zeros((1, m), np.int8)
        gg = np.full((1, m), -f, np.float32)
        quant.qadapter_update_s8([qq], [np.ones(1, np.float32)], [gg], 1.0, 99)
        p = qq.mean()
        assert abs(p - np.float32(f)) < 5 * np.sqrt(f * (1 - f) / m), (f, p)


def test_qadapter_clips_to_symmetric_range_and_qas_scales():
    q = np.array([[120, -120, 0, 5]], np.int8)
    s = np.array([0.5], np.float32)
    g = np.array([[-1e6, 1e6, 0.0, 0.0]], np.float32)
    quant.qadapter_update_s8([q], [s], [g], 1.0, 1)
    assert q.tolist() == [[127, -127, 0, 5]]
    # qas: delta = lr g / s^2 in q units; g = 0.25 (with s = 0.5) moves q by exactly 1
    q = np.zeros((1, 4), np.int8)
    quant.qadapter_update_s8([q], [s], [np.full((1, 4), -0.25, np.float32)], 1.0, 1, qas=True)
    assert q.tolist() == [[1, 1, 1, 1]]


def test_qadapter_nonfinite_gradients_raise_and_leave_those_weights():
    rng = np.random.default_rng(9)
    q = rng.integers(-127, 128, (4, 50), dtype=np.int8)
    s = np.full(4, 0.01, np.float32)
    g = rng.standard_normal((4, 50)).astype(np.float32)
    g[1, 3], g[2, 40] = np.nan, -np.inf
    before = q.copy()
    want = [q.copy()]
    ref.qadapter_update_s8(want, [s], [g], 0.01, 5)
    for call in (lambda: quant.qadapter_update_s8([q], [s], [g], 0.01, 5),):
        _raises_naming(call, {"grads[0]"})
    assert q[1, 3] == before[1, 3] and q[2, 40] == before[2, 40]
    assert np.array_equal(q, want[0])


# ------------------------------------------------------------------------------------------- bad input
QARGS = ["x", "W", "w_scale", "x_scale", "bias", "x_zero_point", "out_dtype", "y_scale", "y_zero_point", "out"]
OUTS = {"float32": 0, "int8": 1}


def _qgemm_args(draw) -> dict:
    m, k, n = (draw(st.integers(2, 9)) for _ in range(3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    od = draw(st.sampled_from(["float32", "int8"]))
    Wq = rng.integers(-127, 128, (n, k), dtype=np.int8)
    return dict(x=rng.integers(-128, 128, (m, k), dtype=np.int8), W=quant.qgemm_pack_s8(Wq), Wq=Wq,
                w_scale=rng.uniform(0.01, 0.02, n).astype(np.float32),
                x_scale=draw(st.sampled_from([0.05, "per_token"])), bias=rng.standard_normal(n).astype(np.float32),
                x_zero_point=3, out_dtype=od, y_scale=0.1, y_zero_point=-2,
                out=np.empty((m, n), np.float32 if od == "float32" else np.int8))


def _mutations_qgemm(a: dict):
    both = ("public", "kernel")
    x, sw, b, out = a["x"], a["w_scale"], a["bias"], a["out"]
    m, k = x.shape
    n = sw.shape[0]
    m_ = []
    for name, arr in [("x", x), ("w_scale", sw), ("bias", b), ("out", out)]:
        m_ += [({name: np.zeros(arr.shape, dt)}, {name}, both) for dt in BAD_DTYPES + [np.int8, np.float32]
               if np.dtype(dt) != arr.dtype]
        m_ += [({name: _noncontig(arr)}, {name}, both), ({name: arr.tolist()}, {name}, both),
               ({name: arr[None]}, {name}, both), ({name: "array"}, {name}, both)]
    m_ += [({"x": np.zeros((m, k + 1), np.int8)}, {"x"}, both), ({"x": x[:, :0]}, {"x"}, both),
           ({"w_scale": np.ones(n + 1, np.float32)}, {"w_scale"}, both),
           ({"bias": np.ones(n + 1, np.float32)}, {"bias"}, both),
           ({"out": np.empty((m + 1, n), out.dtype)}, {"out"}, both), ({"out": _readonly(out)}, {"out"}, both),
           # unpacked weights, or anything else, where packed weights belong
           ({"W": a["Wq"]}, {"W"}, both), ({"W": a["Wq"].astype(np.float32)}, {"W"}, both),
           ({"W": None}, {"W"}, both), ({"W": "W"}, {"W"}, both),
           ({"W": quant.qgemm_pack_s8(np.ones((n, k + 4), np.int8))}, {"x", "W"}, both)]
    for bad in [0.0, -1.0, np.nan, np.inf, 1e-40]:
        s2 = sw.copy()
        s2[-1] = bad
        m_ += [({"w_scale": s2}, {"w_scale"}, both), ({"x_scale": bad}, {"x_scale"}, both),
               ({"x_scale": np.full(m, bad, np.float32)}, {"x_scale"}, both)]
        if a["out_dtype"] == "int8":
            m_.append(({"y_scale": bad}, {"y_scale"}, both))
    m_ += [({"x_scale": np.ones(m + 1, np.float32)}, {"x_scale"}, both),
           ({"x_scale": np.ones(m, np.float64)}, {"x_scale"}, both), ({"x_scale": "0.1"}, {"x_scale"}, both),
           ({"x_scale": None}, {"x_scale"}, both), ({"x_scale": 1e30, "w_scale": np.full(n, 1e30, np.float32)},
                                                    {"x_scale"}, both)]
    bb = b.copy()
    bb[0] = np.nan
    m_ += [({"bias": bb}, {"bias"}, both)]
    for bad in [-129, 128, 2**40, 1.5, "0", None, True]:
        m_ += [({"x_zero_point": bad}, {"x_zero_point"}, both)]
        if a["out_dtype"] == "int8":
            m_.append(({"y_zero_point": bad}, {"y_zero_point"}, both))
    m_ += [({"out_dtype": bad}, {"out_dtype"}, ("public",)) for bad in ["int32", "float64", 0, None]]
    m_ += [({"out_dtype": bad}, {"out_dtype"}, ("kernel",)) for bad in [2, -1, "int8", None]]
    return m_


def _call_qgemm(a: dict, change: dict, target: str):
    k = {**a, **change}
    if isinstance(k["x_scale"], str) and k["x_scale"] == "per_token":
        k["x_scale"] = np.full(a["x"].shape[0], 0.05, np.float32)
    if target == "public":
        return quant.qgemm_s8(*(k[n] for n in QARGS))
    if "out_dtype" not in change:
        k["out_dtype"] = OUTS[a["out_dtype"]]
    return _kernels.qgemm_s8(*(k[n] for n in QARGS))


def test_qgemm_bad_calls_raise_naming_the_argument():
    calls = []

    @settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.data())
    def check(data):
        a = _qgemm_args(data.draw)
        assert _call_qgemm(a, {}, "public").shape == a["out"].shape
        assert _call_qgemm(a, {}, "kernel").shape == a["out"].shape
        change, names, targets = data.draw(st.sampled_from(_mutations_qgemm(a)))
        for target in targets:
            _raises_naming(lambda: _call_qgemm(a, change, target), names)
            calls.append(target)

    check()
    assert len(calls) >= 1000, len(calls)


@pytest.mark.parametrize(("W", "names"), [
    (np.full((3, 4), -128, np.int8), {"W"}), (np.zeros((3, 4), np.int16), {"W"}), (np.zeros((3, 0), np.int8), {"W"}),
    (np.zeros(4, np.int8), {"W"}), (np.zeros((2, 65537), np.int8), {"W"}), ([[1, 2]], {"W"}),
    (np.zeros((4, 6), np.int8)[:, ::2], {"W"}),
])
def test_pack_bad_input(W, names):
    _raises_naming(lambda: quant.qgemm_pack_s8(W), names)
    _raises_naming(lambda: _kernels.qgemm_pack_s8(W), names)


UARGS = ["q", "scales", "grads", "lr", "seed", "streams", "qas"]


def _qadapter_args(draw) -> dict:
    T = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shapes = [(draw(st.integers(1, 6)), draw(st.integers(1, 9))) for _ in range(T)]
    return dict(q=[rng.integers(-127, 128, s, dtype=np.int8) for s in shapes],
                scales=[rng.uniform(0.01, 0.02, s[0]).astype(np.float32) for s in shapes],
                grads=[rng.standard_normal(s).astype(np.float32) for s in shapes], lr=0.01, seed=5,
                streams=np.arange(T, dtype=np.uint64), qas=False)


def _mutations_qadapter(a: dict):
    both = ("public", "kernel")
    q, s, g = a["q"], a["scales"], a["grads"]
    t = len(q) - 1
    at = f"[{t}]"

    def repl(lst, i, val):
        lst = list(lst)
        lst[i] = val
        return lst

    m = []
    for name, lst in [("q", q), ("scales", s), ("grads", g)]:
        arr = lst[t]
        m += [({name: repl(lst, t, np.zeros(arr.shape, dt))}, {name + at}, both) for dt in BAD_DTYPES + [np.int8]
              if np.dtype(dt) != arr.dtype]
        m += [({name: repl(lst, t, arr.tolist())}, {name + at}, both), ({name: repl(lst, t, None)}, {name + at}, both),
              ({name: tuple(lst)[:0] if name == "q" else lst[:-1]}, {name, "q"}, both),
              ({name: arr}, {name}, both), ({name: "x"}, {name}, both)]
        if arr.shape[-1] > 1:
            m.append(({name: repl(lst, t, _noncontig(arr))}, {name + at}, both))
    m += [({"q": repl(q, t, _readonly(q[t]))}, {"q" + at}, both),
          ({"grads": repl(g, t, np.zeros((q[t].shape[0], q[t].shape[1] + 1), np.float32))}, {"grads" + at}, both),
          ({"scales": repl(s, t, np.ones(q[t].shape[0] + 1, np.float32))}, {"scales" + at}, both)]
    for bad in [0.0, -1.0, np.nan, np.inf, 1e-40]:
        ss = s[t].copy()
        ss[-1] = bad
        m.append(({"scales": repl(s, t, ss)}, {"scales" + at}, both))
    if len(q) > 1:
        # the same tensor twice (refused as overlapping, or first for a shape that does not fit grads / scales)
        m.append(({"q": repl(q, t, q[0])}, {"q" + at, "q[0]", "grads" + at, "scales" + at}, both))
    for bad in [np.nan, np.inf, "0.1", None, True]:
        m.append(({"lr": bad}, {"lr"}, both))
    for bad in [-1, 2**64, 1.5, "1", None, True]:
        m.append(({"seed": bad}, {"seed"}, both))
    m += [({"streams": np.arange(len(q) + 1, dtype=np.uint64)}, {"streams"}, both),
          ({"streams": np.arange(len(q), dtype=np.int64)}, {"streams"}, both), ({"streams": "1"}, {"streams"}, both)]
    m += [({"qas": bad}, {"qas"}, both) for bad in [1, "yes", None, 0.0]]
    return m


def _call_qadapter(a: dict, change: dict, target: str):
    k = {**a, **change}
    fn = quant.qadapter_update_s8 if target == "public" else _kernels.qadapter_update_s8
    return fn(*(k[n] for n in UARGS))


def test_qadapter_bad_calls_raise_naming_the_argument():
    calls = []

    @settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.data())
    def check(data):
        a = _qadapter_args(data.draw)
        before = [t.copy() for t in a["q"]]
        change, names, targets = data.draw(st.sampled_from(_mutations_qadapter(a)))
        for target in targets:
            _raises_naming(lambda: _call_qadapter(a, change, target), names)
            calls.append(target)
        assert all(np.array_equal(x, y) for x, y in zip(a["q"], before))  # a refused call writes nothing

    check()
    assert len(calls) >= 800, len(calls)


@pytest.mark.parametrize(("call", "names"), [
    (lambda: _kernels._quant_force_level("sse9"), {"level"}),
])
def test_quant_kernel_checks(call, names):
    _raises_naming(call, names)


def test_qlinear_gelu_matches_torch_gelu_and_checks_its_argument():
    import torch

    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 64)).astype(np.float32)
    W = quant.qgemm_pack_s8(rng.integers(-127, 128, (48, 64), dtype=np.int8))
    sw = rng.uniform(1e-3, 2e-2, 48).astype(np.float32)
    y = quant.qlinear_s8(x, W, sw, 3.0 / 127)
    g = quant.qlinear_s8(x, W, sw, 3.0 / 127, activation="gelu")
    want = torch.nn.functional.gelu(torch.from_numpy(y)).numpy()  # exact erf GELU
    assert np.abs(g - want).max() <= 1e-6 * max(1.0, float(np.abs(y).max()))
    assert (g < 0).any() and (g > 0).any()
    with pytest.raises(ValueError, match="^activation:"):
        quant.qlinear_s8(x, W, sw, 3.0 / 127, activation="relu")
    with pytest.raises(TypeError, match="^gelu:"):
        _kernels.qlinear_s8(x, W, sw, 3.0 / 127, None, None, 1)

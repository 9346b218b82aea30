"""qlinear_lora_s8: the int8 layer + LoRA adapter agrees with the float zo kernel on the dequantised layer, S = P with
equal inputs is bit-identical to S = 1, results do not depend on threads, and bad input (hypothesis-generated, at
the public API and straight at the compiled kernel) raises naming the argument. Parity with the NumPy twin on every
SIMD path runs in test_quant.py (the registry enrolls it)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgelearn
from edgelearn import _kernels
from edgelearn.kernels import quant, zo

from .test_bad_input import BAD_DTYPES, _noncontig, _raises_naming, _readonly


def _layer(rng, m=13, k=40, n=24, r=4):
    Wq = rng.integers(-127, 128, (n, k), dtype=np.int8)
    sw = rng.uniform(0.5, 1.5, n).astype(np.float32) / np.float32(127 * np.sqrt(k))
    sx = np.float32(4.0 / 127)
    xq = rng.integers(-127, 128, (1, m, k)).astype(np.float32)
    x = xq * sx  # exactly on the quantisation grid: quantising gives xq back
    return dict(x=x, W=quant.qgemm_pack_s8(Wq), Wq=Wq, w_scale=sw, x_scale=float(sx),
                bias=rng.standard_normal(n).astype(np.float32), A=rng.standard_normal((r, k)).astype(np.float32) / 6,
                B=rng.standard_normal((n, r)).astype(np.float32), scale=2.0)


@pytest.mark.parametrize("mode", ["central", "forward"])
def test_matches_zo_kernel_on_the_dequantised_layer(mode):
    a = _layer(np.random.default_rng(1))
    seeds = np.array([3, 99, 2**63 + 5], np.uint64)
    Wf = a["Wq"].astype(np.float32) * a["w_scale"][:, None]
    y = quant.qlinear_lora_s8(a["x"], a["W"], a["w_scale"], a["x_scale"], a["bias"], a["A"], a["B"], a["scale"],
                              seeds, 1e-2, 7, mode)
    want = zo.zo_perturbed_linear_f32(a["x"], Wf, a["bias"], a["A"], a["B"], a["scale"], seeds, 1e-2, 7, mode)
    assert y.shape == want.shape == (zo.num_streams(mode, 3), 13, 24)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


def test_plain_layer_is_the_unperturbed_stream_and_2d_input():
    a = _layer(np.random.default_rng(2))
    args = (a["W"], a["w_scale"], a["x_scale"], a["bias"], a["A"], a["B"], a["scale"])
    plain = quant.qlinear_lora_s8(a["x"][0], *args)
    assert plain.shape == (13, 24)
    fwd = quant.qlinear_lora_s8(a["x"], *args, seeds=np.array([1, 2], np.uint64), mode="forward")
    assert np.array_equal(plain, fwd[0])


def test_stacked_equal_inputs_bitwise_equal_shared():
    a = _layer(np.random.default_rng(3))
    seeds = np.array([11, 12], np.uint64)
    args = (a["W"], a["w_scale"], a["x_scale"], a["bias"], a["A"], a["B"], a["scale"], seeds, 1e-2, 4)
    shared = quant.qlinear_lora_s8(a["x"], *args)
    stacked = quant.qlinear_lora_s8(np.repeat(a["x"], 4, 0), *args)
    assert np.array_equal(shared, stacked)


def test_bitwise_independent_of_threads():
    a = _layer(np.random.default_rng(4), m=300, k=96, n=200, r=8)
    seeds = np.arange(6, dtype=np.uint64)
    args = (a["x"], a["W"], a["w_scale"], a["x_scale"], a["bias"], a["A"], a["B"], a["scale"], seeds, 1e-2, 1)
    before = edgelearn.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            edgelearn.set_num_threads(t)
            outs.append(quant.qlinear_lora_s8(*args))
    finally:
        edgelearn.set_num_threads(before)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


# ------------------------------------------------------------------------------------------- bad input
LARGS = ["x", "W", "w_scale", "x_scale", "bias", "A", "B", "scale", "seeds", "eps", "layer_id", "mode", "dist", "out"]
MODE_I = {"central": 0, "forward": 1}
DIST_I = {"gaussian": 0, "rademacher": 1}


def _lora_args(draw) -> dict:
    m, k, n, r, K = (draw(st.integers(2, 7)) for _ in range(5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mode = draw(st.sampled_from(["central", "forward"]))
    P = zo.num_streams(mode, K)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    Wq = rng.integers(-127, 128, (n, k), dtype=np.int8)
    return dict(x=f(1, m, k), W=quant.qgemm_pack_s8(Wq), Wq=Wq, w_scale=rng.uniform(0.01, 0.02, n).astype(np.float32),
                x_scale=0.03, bias=f(n), A=f(r, k), B=f(n, r), scale=2.0,
                seeds=rng.integers(0, 2**64, K, dtype=np.uint64), eps=1e-2, layer_id=3, mode=mode,
                dist=draw(st.sampled_from(["gaussian", "rademacher"])), out=np.empty((P, m, n), np.float32))


def _mutations_lora(a: dict):
    both = ("public", "kernel")
    x, sw, b, A, B, out, seeds = a["x"], a["w_scale"], a["bias"], a["A"], a["B"], a["out"], a["seeds"]
    _, m, k = x.shape
    n, r = B.shape
    m_ = []
    for name, arr in [("x", x), ("w_scale", sw), ("bias", b), ("A", A), ("B", B), ("out", out), ("seeds", seeds)]:
        m_ += [({name: np.zeros(arr.shape, dt)}, {name}, both) for dt in BAD_DTYPES + [np.int8, np.float32]
               if np.dtype(dt) != arr.dtype]
        # the public API takes seeds as a list of ints or any uint64 array (copied); the kernel does not
        lenient = ("kernel",) if name == "seeds" else both
        m_ += [({name: arr.tolist()}, {name}, lenient), ({name: "array"}, {name}, both)]
        if arr.shape[-1] > 1:
            m_.append(({name: _noncontig(arr)}, {name}, lenient))
    m_ += [({"x": np.zeros((1, m, k + 1), np.float32)}, {"x"}, both), ({"x": x[:, :, :0]}, {"x"}, both),
           ({"x": np.repeat(x, 3 + len(seeds) * 2, 0)}, {"x"}, both),
           ({"w_scale": np.ones(n + 1, np.float32)}, {"w_scale"}, both),
           ({"bias": np.ones(n + 1, np.float32)}, {"bias"}, both),
           ({"A": np.ones((r + 1, k), np.float32)}, {"A"}, both), ({"A": np.ones((r, k + 1), np.float32)}, {"A"}, both),
           ({"B": np.ones((n + 1, r), np.float32)}, {"B"}, both),
           ({"out": np.empty((out.shape[0] + 1, m, n), np.float32)}, {"out"}, both),
           ({"out": _readonly(out)}, {"out"}, both), ({"seeds": seeds[:0]}, {"seeds"}, both),
           ({"W": a["Wq"]}, {"W"}, both), ({"W": a["Wq"].astype(np.float32)}, {"W"}, both), ({"W": None}, {"W"}, both),
           ({"W": quant.qgemm_pack_s8(np.ones((n, k + 4), np.int8))}, {"x", "W"}, both)]
    for bad in [0.0, -1.0, np.nan, np.inf, 1e-40]:
        s2 = sw.copy()
        s2[-1] = bad
        m_ += [({"w_scale": s2}, {"w_scale"}, both), ({"x_scale": bad}, {"x_scale"}, both)]
    for name, arr in [("x", x), ("bias", b)]:
        for bad in [np.nan, np.inf]:
            t = arr.copy()
            t.reshape(-1)[-1] = bad
            m_.append(({name: t}, {name}, both))
    m_ += [({"x_scale": bad}, {"x_scale"}, both) for bad in ["0.1", None, True]]
    m_ += [({"scale": bad}, {"scale"}, both) for bad in [np.nan, np.inf, "1", None]]
    m_ += [({"eps": bad}, {"eps"}, both) for bad in [np.nan, np.inf, "1", None]]
    m_ += [({"eps": bad}, {"eps"}, ("public",)) for bad in [0.0, -1e-3]]
    m_ += [({"layer_id": bad}, {"layer_id"}, both) for bad in [-1, 2**62 + 1, 1.5, None]]
    m_ += [({"mode": bad}, {"mode"}, ("public",)) for bad in ["sideways", 0, None]]
    m_ += [({"mode": bad}, {"mode"}, ("kernel",)) for bad in [2, -1, "central"]]
    m_ += [({"dist": bad}, {"dist"}, ("public",)) for bad in ["uniform", 1, None]]
    m_ += [({"dist": bad}, {"dist"}, ("kernel",)) for bad in [2, -1]]
    return m_


def _call_lora(a: dict, change: dict, target: str):
    k = {**a, **change}
    if target == "public":
        return quant.qlinear_lora_s8(*(k[n] for n in LARGS))
    if "mode" not in change:
        k["mode"] = MODE_I[a["mode"]]
    if "dist" not in change:
        k["dist"] = DIST_I[a["dist"]]
    return _kernels.qlinear_lora_s8(*(k[n] for n in LARGS))


def test_qlinear_lora_bad_calls_raise_naming_the_argument():
    calls = []

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.data())
    def check(data):
        a = _lora_args(data.draw)
        assert _call_lora(a, {}, "public").shape == a["out"].shape
        assert _call_lora(a, {}, "kernel").shape == a["out"].shape
        change, names, targets = data.draw(st.sampled_from(_mutations_lora(a)))
        for target in targets:
            _raises_naming(lambda: _call_lora(a, change, target), names)
            calls.append(target)

    check()
    assert len(calls) >= 600, len(calls)

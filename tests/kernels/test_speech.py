"""Speech kernels beyond the registry parity runs: streaming and SIMD-path invariance, outside references
(librosa, CMSIS-DSP), integer details of the q15 front-end, masks, the gate network's format and quantisation,
bad input, op counts."""

from __future__ import annotations

import numpy as np
import pytest

from edgelearn import _kernels
from edgelearn.kernels import reference as ref
from edgelearn.kernels import speech
from edgelearn.kernels.registry import speech_random_gate_net, speech_test_audio


@pytest.fixture(scope="module")
def audio():
    return speech_test_audio(np.random.default_rng(6), 16000 * 3)


def _chunks(rng, n, hi):
    i = 0
    while i < n:
        c = int(rng.integers(0, hi))
        yield i, min(n, i + c)
        i += c


# ------------------------------------------------------------------------------------------------ front-end
@pytest.mark.parametrize("dtype", ["float32", "int16"])
def test_stream_equals_offline_for_any_chunking(audio, dtype):
    rng = np.random.default_rng(1)
    x = audio if dtype == "float32" else speech.float_to_q15(audio)
    offline = speech.speech_logmel_f32(x) if dtype == "float32" else speech.speech_logmel_q15(x)
    for hi in (7, 320, 1500, 20000):
        st = speech.LogMelStream(dtype)
        got = np.concatenate([st.push(x[a:b]) for a, b in _chunks(rng, x.size, hi)])
        assert got.dtype == offline.dtype and np.array_equal(got, offline), hi
        assert st.frames == offline.shape[0]
    st = speech.LogMelStream(dtype)  # 20 ms pushes: one frame each once primed
    counts = [st.push(x[i: i + 320]).shape[0] for i in range(0, 320 * 10, 320)]
    assert counts == [0] + [1] * 9


def test_float_paths_and_lane_widths_identical(audio):
    want = speech.speech_logmel_f32(audio)
    try:
        for level in ("baseline", "avx2", "avx512"):
            _kernels._speech_force_level(level)
            assert np.array_equal(speech.speech_logmel_f32(audio), want), level
            for n in (480, 800, 480 + 320 * 17):  # tails that do not fill a lane group
                assert np.array_equal(speech.speech_logmel_f32(audio[:n]), want[: speech.num_frames(n)])
            st = speech.LogMelStream("float32")  # one frame at a time (L = 1) under this level
            assert np.array_equal(np.concatenate([st.push(audio[:4000]), st.push(audio[4000:8000])]),
                                  want[: speech.num_frames(8000)]), level
    finally:
        _kernels._speech_force_level("")


def test_float_within_1e5_of_reference(audio):
    got, want = speech.speech_logmel_f32(audio), ref.speech_logmel_f32(audio)
    assert np.abs(got - want).max() <= 1e-5
    loud = np.clip(audio * 8, -4, 4)  # beyond [-1, 1]: processed as is (2 ln a shift), no clipping
    assert np.abs(speech.speech_logmel_f32(loud) - ref.speech_logmel_f32(loud)).max() <= 1e-5


def test_float_matches_librosa(audio):
    librosa = pytest.importorskip("librosa")
    # librosa centres the 480-sample window in its 512-sample frame: 16 leading zeros align its frames with ours
    y = np.concatenate([np.zeros(16, np.float32), audio])
    M = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, win_length=480, hop_length=320,
                                       window="hann", center=False, power=2.0, n_mels=40, fmin=0.0, fmax=8000.0,
                                       htk=True, norm=None)
    lib = np.log(M.T + 2.0**-20)
    assert np.allclose(librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=0, fmax=8000, htk=True, norm=None),
                       ref.speech_mel_weights(), atol=1e-6)
    T = min(lib.shape[0], speech.num_frames(audio.size))
    ours = speech.speech_logmel_f32(audio)[:T]
    assert np.abs(ours - lib[:T]).max() < 1e-4  # librosa computes in float32 too


def test_rfft_matches_cmsis_dsp():
    dsp = pytest.importorskip("cmsisdsp")
    rng = np.random.default_rng(2)
    inst = dsp.arm_rfft_fast_instance_f32()
    assert dsp.arm_rfft_fast_init_f32(inst, 512) == 0
    for _ in range(5):
        x = rng.standard_normal(512).astype(np.float32)
        ours = _kernels._speech_rfft512_f32(x)
        cm = dsp.arm_rfft_fast_f32(inst, x, 0)  # [X0.re, X256.re, X1.re, X1.im, ...]
        cm_full = np.concatenate([[cm[0], 0.0], cm[2:], [cm[1], 0.0]])
        assert np.abs(ours - cm_full).max() <= 2e-5 * np.abs(cm_full).max()
        assert np.allclose(ours.view(np.complex64), np.fft.rfft(x), atol=2e-5 * 40)
    # CMSIS-DSP's mel scale is the HTK one we document (1127 ln(1 + f/700) = 2595 log10(1 + f/700))
    import cmsisdsp.mfcc as mfcc

    f = np.linspace(0, 8000, 50)
    assert np.allclose(mfcc.frequencyToMelSpace(f), 2595 * np.log10(1 + f / 700), rtol=1e-4)  # 1127 is rounded


def test_tables_equal_twin_formulas():
    t = _kernels._speech_tables()
    M = ref.speech_mel_weights()
    assert np.array_equal(t["winq"], ref._q(ref.speech_hann(), 32767.0))
    assert np.array_equal(t["log2_tab"], ref.speech_log2_table())
    nz = [np.flatnonzero(M[b]) for b in range(40)]
    assert np.array_equal(t["mel_lo"], [z[0] for z in nz]) and np.array_equal(t["mel_len"], [z.size for z in nz])
    assert np.array_equal(t["mel_wq"], np.concatenate([ref._q(M[b, z], 32768.0) for b, z in enumerate(nz)]))
    assert np.allclose(t["win"], ref.speech_hann(), atol=6e-8)


def test_q15_fft_and_log_bit_exact():
    rng = np.random.default_rng(3)
    for amp in (1, 300, 32767):
        x = rng.integers(-amp, amp + 1, size=512).astype(np.int32)
        got = _kernels._speech_rfft512_q15(x)
        re, im = ref.speech_rfft512_q15(x)
        assert np.array_equal(got[0::2], re) and np.array_equal(got[1::2], im)
        assert np.abs(got.view(np.int32)[0::2] / 2 - np.fft.rfft(x).real).max() <= 8  # a few LSB of rounding
    edges = [2**25, 2**25 + 1, 2**30 - 1, 2**30, 2**45, 2**62 + 12345, 2**63 - 1, 2**64 - 1]
    acc = np.concatenate([np.array(edges, np.uint64),
                          rng.integers(2**25, 2**63, size=2000, dtype=np.uint64)])
    got = _kernels._speech_log_q10(acc)
    assert np.array_equal(got, ref.speech_log_q10(acc))
    exact = 1024 * (np.log(acc.astype(np.float64)) - 45 * np.log(2))
    assert np.abs(got - np.clip(exact, -32768, 32767)).max() <= 1.0  # within 1 LSB of the exact log


def test_q15_tracks_float(audio):
    x = speech.float_to_q15(audio)
    q = speech.speech_logmel_q15(x) / 1024.0
    f = ref.speech_logmel_f32(x / 32768.0)
    assert np.abs(q - f)[f > -8].max() < 0.005  # ~3 LSB of Q10 where the band has energy
    assert np.abs(q - f).max() < 0.1  # near the floor, int16 rounding noise dominates
    silent = speech.speech_logmel_q15(np.zeros(960, np.int16))
    assert (silent == -14196).all()
    full = speech.speech_logmel_q15(np.where(np.arange(16000) % 2, 32767, -32768).astype(np.int16))
    assert full.max() <= 12776  # no overflow at full scale (the top bin is all the energy)


# ------------------------------------------------------------------------------------------------ masks
def test_mask_keeps_drops_and_ramps():
    rng = np.random.default_rng(4)
    x = rng.integers(-20000, 20000, size=6400, dtype=np.int16)
    gates = np.array([1, 0, 0, 1, 1, 0, 1, 1, 0, 1], np.uint8)
    y = speech.speech_mask_segments_s16(x, gates, 640, 80)
    gain = ref.speech_mask_gains(x.size, gates, 640, 80)
    assert np.array_equal(y[gain == 32768], x[gain == 32768]) and (y[gain == 0] == 0).all()
    assert np.abs(np.diff(gain)).max() <= 32768 * np.pi / 2 / 80 + 1  # smooth edges: no clicks
    assert np.array_equal(speech.speech_mask_segments_s16(x, np.ones(10, bool), 640), x)


@pytest.mark.parametrize("late", [0, 1, 3])
def test_mask_stream_equals_offline(late):
    rng = np.random.default_rng(5 + late)
    for _ in range(8):
        L = int(rng.integers(2, 700))
        R = 2 * int(rng.integers(1, min(L, 512) // 2 + 1))
        n = int(rng.integers(1, 5000))
        x = rng.integers(-32768, 32768, size=n, dtype=np.int16)
        g = (rng.random(speech.num_segments(n, L)) < 0.5).astype(np.uint8)
        want = ref.speech_mask_segments_s16(x, g, L, R)
        st = speech.MaskStream(L, R, capacity=n + 1)
        outs, gi = [], 0
        for a, b in _chunks(rng, n, 900):
            ready = max(0, min(g.size, b // L - late))  # gates of completed segments, `late` segments behind
            outs.append(st.push(x[a:b], g[gi:ready]))
            gi = max(gi, ready)
        outs.append(st.push(None, g[gi:]))
        outs.append(st.finish())
        assert np.array_equal(np.concatenate(outs), want)


def test_mask_stream_delay_and_limits():
    st = speech.MaskStream(640, 80)
    x = np.ones(640, np.int16)
    assert st.push(x, np.ones(1, np.uint8)).size == 640 - 40  # the last ramp/2 samples wait for the next gate
    assert st.push(None, np.ones(1, bool)).size == 0  # ... and for segment 1 to begin (it may be past the end)
    assert st.push(x[:1]).size == 41
    assert st.finish().size == 0
    st = speech.MaskStream(640, 80, capacity=1000)
    with pytest.raises(ValueError, match="^x:"):
        st.push(np.zeros(2000, np.int16))  # no gates: more than capacity would have to wait
    st = speech.MaskStream(640, 80)
    st.push(np.zeros(700, np.int16))
    with pytest.raises(ValueError, match="^gates:"):
        st.finish()
    with pytest.raises(ValueError, match="^gates:"):
        speech.MaskStream(640, 80).push(None, np.ones(100, np.uint8))


# ------------------------------------------------------------------------------------------------ gate network
def test_gate_net_blob_roundtrip_and_bad_blobs():
    rng = np.random.default_rng(7)
    net = speech_random_gate_net(rng, F=2, hidden=[16, 8], k=3)
    blob = speech.gate_net_pack(net)
    back = speech.gate_net_unpack(blob)
    assert np.array_equal(speech.gate_net_pack(back), blob)
    feat = rng.integers(-14000, 12000, size=(37, 40)).astype(np.int16)
    logits, gates = speech.speech_gate_net_s8(feat, blob)
    assert logits.shape == (19,) and np.array_equal(gates, (logits > 0).astype(np.uint8))
    assert np.array_equal(speech.speech_gate_net_s8(feat, net)[0], logits)
    bad = [blob[:-1], blob[:10], np.concatenate([blob, np.zeros(4, np.uint8)]), np.zeros(400, np.uint8)]
    b2 = blob.copy()
    b2[4 * (6 + 80) + 4: 4 * (6 + 80) + 8] = np.frombuffer(np.int32(99).tobytes(), np.uint8)  # cout 99
    bad.append(b2)
    for b in bad:
        with pytest.raises(ValueError, match="^net:"):
            speech.speech_gate_net_s8(feat, b)
    for key, val in (("F", 0), ("F", 65)):
        with pytest.raises(ValueError, match="^net:"):
            speech.gate_net_pack({**net, key: val})


def test_gate_net_paths_bit_exact_with_twin():
    # every SIMD build of the int8 dots (whole vectors, masked and scalar tails, outputs not a multiple of 4),
    # the division-free pooling at its extremes (|feat| = 32768, F up to 64, short last segments)
    rng = np.random.default_rng(11)
    cases = []
    for F, hidden, k in ((1, [64, 7], 9), (3, [5], 1), (64, [33, 32], 3), (7, [], 5), (2, [32, 32], 5)):
        net = speech_random_gate_net(rng, F=F, hidden=hidden, k=k)
        for T in (1, F, 3 * F + 1, 130):
            feat = rng.integers(-32768, 32768, size=(T, 40)).astype(np.int16)
            feat[: T // 2, ::3] = -32768
            feat[T // 2:, 1::3] = 32767
            cases.append((feat, net))
    for _ in range(20):
        net = speech_random_gate_net(rng)
        cases.append((rng.integers(-14196, 12776, size=(int(rng.integers(1, 150)), 40)).astype(np.int16), net))
    try:
        for level in ("baseline", "avx2", "avx512"):
            _kernels._speech_force_level(level)
            for feat, net in cases:
                want = ref.speech_gate_net_s8(feat, net)[0]
                got, gates = speech.speech_gate_net_s8(feat, net)
                assert np.array_equal(got, want), level
                assert np.array_equal(gates, (want > 0).astype(np.uint8)), level
    finally:
        _kernels._speech_force_level("")


def test_gate_net_block_gates():
    rng = np.random.default_rng(12)
    net = speech_random_gate_net(rng, F=2, hidden=[16], k=3)
    blob = speech.gate_net_pack(net)
    feat = rng.integers(-14196, 12776, size=(61, 40)).astype(np.int16)  # S = 31
    logits, g1 = speech.speech_gate_net_s8(feat, blob)
    assert np.array_equal(speech.speech_gate_net_s8(feat, blob, block=1)[1], g1)
    for B in (2, 3, 7, 31, 32, 10**9):
        got, gates = speech.speech_gate_net_s8(feat, blob, block=B)
        assert np.array_equal(got, logits)  # the logits do not depend on the block
        want = ref.speech_gate_net_s8(feat, net, block=B)
        assert np.array_equal(gates, want[1]) and np.array_equal(got, want[0])
        for b0 in range(0, logits.size, B):  # the rule, spelled out
            assert (gates[b0: b0 + B] == int(logits[b0: b0 + B].astype(np.int64).sum() > 0)).all()
    for sign in (1, -1):  # logits of 2^30 - 1: a block of 4 sums past int32 (int64 sums do not wrap)
        top = {**net["layers"][-1], "bias": np.array([sign * (2**30 - 1)], np.int32),
               "W": np.zeros_like(net["layers"][-1]["W"])}
        loud = {**net, "layers": [*net["layers"][:-1], top]}
        got, gates = speech.speech_gate_net_s8(feat, loud, block=4)
        assert (got == sign * (2**30 - 1)).all() and (gates == (sign > 0)).all()
    for bad, err in ((0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(err, match="^block"):
            speech.speech_gate_net_s8(feat, blob, block=bad)
    with pytest.raises(ValueError, match="^block"):  # the C++ kernel checks too
        _kernels.speech_gate_net_s8(feat, blob, 0)


def test_gate_net_quantize_follows_the_float_network(audio):
    rng = np.random.default_rng(8)
    feats = [speech.speech_logmel_q15(speech.float_to_q15(speech_test_audio(rng, 16000 * 2))) for _ in range(6)]
    allf = np.concatenate(feats) / 1024.0
    mean, std = allf.mean(0), allf.std(0) + 1e-3
    dims, layers = [40, 24, 16, 1], []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append({"weight": rng.standard_normal((b, a, 3)) / np.sqrt(3 * a), "bias": 0.1 * rng.standard_normal(b),
                       "relu": i < 2})
    net = speech.gate_net_quantize(mean, std, layers, feats[:4], F=2)
    for f in feats[4:]:
        got, _ = speech.speech_gate_net_s8(f, net)
        want = speech.gate_net_float(f / 1024.0, mean, std, layers, 2)
        real = got * net["scales"]["logit"]
        assert np.corrcoef(real, want)[0, 1] > 0.98
        assert np.abs(real - want).max() < 0.1 * np.abs(want).max() + 1e-3
        assert np.array_equal(got, ref.speech_gate_net_s8(f, speech.gate_net_unpack(speech.gate_net_pack(net)))[0])


def test_cost_counts():
    c = speech.speech_cost(4.0)
    assert c["frames"] == 199 and c["segments"] == 100
    assert c["gate_macs"] == 100 * 5 * (40 * 32 + 32 * 32 + 32)
    assert c["ram_bytes"] < 64 * 1024 and c["tables_bytes"] < 16 * 1024
    net = speech_random_gate_net(np.random.default_rng(0), F=2, hidden=[32, 32], k=5)
    assert speech.speech_cost(4.0, net=net)["gate_macs"] == c["gate_macs"]


# ------------------------------------------------------------------------------------------------ bad input
BAD = [
    (lambda: speech.speech_logmel_f32(np.zeros(1000, np.float32), sample_rate=44100), "sample_rate", ValueError),
    (lambda: speech.speech_logmel_f32(np.zeros(1000, np.float32), sample_rate=16000.0), "sample_rate", TypeError),
    (lambda: speech.speech_logmel_f32(np.zeros((1000, 2), np.float32)), "x", ValueError),
    (lambda: speech.speech_logmel_f32(np.zeros(0, np.float32)), "x", ValueError),
    (lambda: speech.speech_logmel_f32(np.zeros(479, np.float32)), "x", ValueError),
    (lambda: speech.speech_logmel_f32(np.full(1000, np.nan, np.float32)), "x", ValueError),
    (lambda: speech.speech_logmel_f32(np.r_[np.zeros(999), np.inf].astype(np.float32)), "x", ValueError),
    (lambda: speech.speech_logmel_f32(np.full(1000, 40000, np.float32)), "x", ValueError),
    (lambda: speech.speech_logmel_f32(np.zeros(1000, np.float64)), "x", TypeError),
    (lambda: speech.speech_logmel_f32([0.0] * 1000), "x", TypeError),
    (lambda: speech.speech_logmel_q15(np.zeros(1000, np.float32)), "x", TypeError),
    (lambda: speech.speech_logmel_q15(np.zeros((2, 1000), np.int16)), "x", ValueError),
    (lambda: speech.speech_logmel_q15(np.zeros(100, np.int16)), "x", ValueError),
    (lambda: speech.LogMelStream("int8"), "dtype", ValueError),
    (lambda: speech.LogMelStream(sample_rate=8000), "sample_rate", ValueError),
    (lambda: speech.LogMelStream().push(np.full(10, np.nan, np.float32)), "x", ValueError),
    (lambda: speech.LogMelStream().push(np.zeros(10, np.int16)), "x", TypeError),
    (lambda: speech.float_to_q15(np.full(10, np.nan)), "x", ValueError),
    (lambda: speech.speech_mask_segments_s16(np.zeros(100, np.int16), [1], 64, 8), "gates", TypeError),
    (lambda: speech.speech_mask_segments_s16(np.zeros(100, np.int16), np.ones(1, np.uint8), 64, 8), "gates",
     ValueError),
    (lambda: speech.speech_mask_segments_s16(np.zeros(100, np.int16), np.full(2, 2, np.uint8), 64, 8), "gates",
     ValueError),
    (lambda: speech.speech_mask_segments_s16(np.zeros(100, np.int16), np.ones(2, np.uint8), 64, 7), "ramp",
     ValueError),
    (lambda: speech.speech_mask_segments_s16(np.zeros(100, np.int16), np.ones(2, np.uint8), 64, 66), "ramp",
     ValueError),
    (lambda: speech.speech_mask_segments_s16(np.zeros(100, np.int16), np.ones(2, np.uint8), 1, 2), "seg_len",
     ValueError),
    (lambda: speech.speech_mask_segments_s16(np.zeros(100, np.float32), np.ones(2, np.uint8), 64), "x", TypeError),
    (lambda: speech.speech_mask_segments_s16(np.zeros(0, np.int16), np.ones(2, np.uint8), 64), "x", ValueError),
    (lambda: speech.speech_gate_net_s8(np.zeros((5, 39), np.int16), np.zeros(8, np.uint8)), "feat", ValueError),
    (lambda: speech.speech_gate_net_s8(np.zeros((5, 40), np.float32), np.zeros(8, np.uint8)), "feat", TypeError),
    (lambda: speech.speech_gate_net_s8(np.zeros((5, 40), np.int16), np.zeros(8, np.int8)), "net", TypeError),
    (lambda: speech.speech_cost(-1.0), "seconds", ValueError),
]


@pytest.mark.parametrize("i", range(len(BAD)))
def test_bad_input_names_the_argument(i):
    fn, name, exc = BAD[i]
    with pytest.raises(exc) as info:
        fn()
    assert str(info.value).startswith(f"{name}:"), str(info.value)


# straight at the compiled kernels: their C++ checks stand alone
KBAD = [
    (lambda: _kernels.speech_logmel_f32(np.full(1000, np.nan, np.float32)), "x"),
    (lambda: _kernels.speech_logmel_f32(np.zeros(100, np.float32)), "x"),
    (lambda: _kernels.speech_logmel_f32(np.zeros((10, 100), np.float32)), "x"),
    (lambda: _kernels.speech_logmel_q15(np.zeros(100, np.float32)), "x"),
    (lambda: _kernels._LogMelStreamF32().push(np.full(10, np.inf, np.float32)), "x"),
    (lambda: _kernels.speech_mask_segments_s16(np.zeros(100, np.int16), np.ones(1, np.uint8), 64, 8), "gates"),
    (lambda: _kernels.speech_mask_segments_s16(np.zeros(100, np.int16), np.full(2, 3, np.uint8), 64, 8), "gates"),
    (lambda: _kernels.speech_mask_segments_s16(np.zeros(100, np.int16), np.ones(2, np.uint8), 64, 9), "ramp"),
    (lambda: _kernels._MaskStream(64, 8, 10).push(np.zeros(5, np.int16), np.full(1, 5, np.uint8)), "gates"),
    (lambda: _kernels.speech_gate_net_s8(np.zeros((5, 40), np.int16), np.zeros(3, np.uint8)), "net"),
    (lambda: _kernels._speech_rfft512_q15(np.full(512, 40000, np.int32)), "x"),
]


@pytest.mark.parametrize("i", range(len(KBAD)))
def test_compiled_kernels_check_alone(i):
    fn, name = KBAD[i]
    with pytest.raises((ValueError, TypeError)) as info:
        fn()
    assert str(info.value).startswith(f"{name}:"), str(info.value)


def test_clipped_float_audio_is_documented_behaviour():
    x = np.linspace(-3, 3, 2000).astype(np.float32)  # clipped / over-range float audio
    q = speech.float_to_q15(x)
    assert q.min() == -32768 and q.max() == 32767  # saturates
    a = speech.speech_logmel_f32(x)
    b = speech.speech_logmel_f32(x / np.float32(3))
    loud = b > -4  # away from the 2^-20 floor
    assert np.abs((a - b)[loud] - 2 * np.log(3)).max() < 1e-3  # linear: processed as is, no clipping


def test_mutated_gate_blobs_never_crash():
    rng = np.random.default_rng(9)
    blob = speech.gate_net_pack(speech_random_gate_net(rng, F=3, hidden=[8], k=3))
    feat = rng.integers(-14000, 12000, size=(20, 40)).astype(np.int16)
    for i in range(400):
        b = blob.copy()
        if i % 4 == 0:
            b = b[: int(rng.integers(0, b.size))]
        else:
            idx = rng.integers(0, b.size, size=int(rng.integers(1, 6)))
            b[idx] = rng.integers(0, 256, size=idx.size, dtype=np.uint8)
        try:
            logits, gates = _kernels.speech_gate_net_s8(feat, b)
            assert logits.shape == gates.shape
        except ValueError as e:
            assert str(e).startswith("net:")


def test_float_offline_same_bits_for_any_thread_count():
    # 20 s: enough frame blocks for the OpenMP split (from 5 s on); blocks are independent, so bits must not change
    import edgelearn

    x = speech_test_audio(np.random.default_rng(9), 320000)
    before = edgelearn.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            edgelearn.set_num_threads(n)
            outs.append(speech.speech_logmel_f32(x))
    finally:
        edgelearn.set_num_threads(before)
    assert all(np.array_equal(o.view(np.uint32), outs[0].view(np.uint32)) for o in outs[1:])

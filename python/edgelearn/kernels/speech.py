"""Speech kernels: log-mel front-end (float32 and q15, offline and streaming), keep/drop segment masks on int16
audio, the int8 gate network of the SILENCE mask generator, its weight format and an op/memory count
(contract: csrc/include/edgelearn/speech.h; NumPy twins in edgelearn.kernels.reference).

Audio is 16 kHz mono. Frames: 30 ms window (480 samples), 20 ms hop (320): n samples give
T = 1 + (n - 480) // 320 frames. Features: ln(mel + 2^-20) over 40 HTK mel bands (0-8000 Hz, librosa
htk=True, norm=None) of |rfft512(periodic Hann * frame)|^2. The q15 front-end returns the same quantity in Q10
(int16 / 1024) from int16 audio (its integer algorithm is defined bit for bit in speech.h).

Float audio is nominally in [-1, 1]; samples beyond are processed unchanged (no clipping: a gain a shifts every
feature by 2 ln a); |x| > 32768, NaN and inf are refused. float_to_q15() is the documented conversion to int16
(x * 32768 rounded, saturating: clipped audio saturates at +-1).

Gate network: features are pooled per segment of F frames (segment s = frames [s F, s F + F) = samples
[320 s F, 320 (s + 1) F) for the mask kernel, so use seg_len = 320 F there), normalised per band, then int8
temporal convolutions (per-channel weight scales, int32 accumulators, multiplier/shift requantisation); the
last layer's int32 accumulator is the logit and gate = logit > 0. Train in torch as
  z = (pool_F(logmel) - mean) / std  ->  Conv1d(40, H, k1, padding=k1 // 2) -> ReLU -> ... -> Conv1d(H, 1, kL)
with logmel = speech_logmel_f32(audio) (or speech_logmel_q15(audio) / 1024: within ~0.002 of it), then
gate_net_quantize(mean, std, layers, calibration_features, F) -> gate_net_pack(...) -> bytes for the firmware.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _kernels
from . import _validate as v

SAMPLE_RATE = 16000
FRAME, HOP, NFFT, N_MELS = 480, 320, 512, 40
LOG_EPS = 2.0**-20
Q15_OUT_SCALE = 1024  # q15 features are Q10: feature = value / 1024
GATE_MAGIC = 0x38534E47
GATE_MAX_LAYERS, GATE_MAX_CH, GATE_MAX_K = 4, 64, 9
MASK_MAX_RAMP = 512
DEFAULT_RAMP = 80  # 5 ms raised-cosine ramp


def num_frames(n_samples: int) -> int:
    """Frames of n samples (0 below one frame)."""
    return 0 if n_samples < FRAME else 1 + (n_samples - FRAME) // HOP


def num_segments(n: int, per_segment: int) -> int:
    """ceil(n / per_segment): gates needed for n samples (per_segment = seg_len) or n frames (per_segment = F)."""
    return -(-int(n) // int(per_segment))


def _sample_rate(sample_rate) -> None:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise TypeError(f"sample_rate: expected an integer (Hz), got {type(sample_rate).__name__}")
    if int(sample_rate) != SAMPLE_RATE:
        raise ValueError(f"sample_rate: the front-end is defined at {SAMPLE_RATE} Hz, got {int(sample_rate)} "
                         "(resample first, e.g. soxr.resample(x, sr, 16000))")


def _audio(x, dtype, name: str = "x", min_len: int = 1, allow_empty: bool = False,
           check_values: bool = True) -> np.ndarray:
    a = v.as_array(x, name)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected mono audio with 1 dimension, got shape {a.shape} "
                         "(stereo: mix down, e.g. x.mean(axis=1), or pick a channel)")
    if a.dtype != np.dtype(dtype):
        hint = " (convert with float_to_q15)" if dtype == np.int16 and a.dtype.kind == "f" else ""
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {a.dtype}{hint}")
    if a.size == 0 and allow_empty:
        return np.ascontiguousarray(a)
    if a.size < min_len:
        raise ValueError(f"{name}: need at least {min_len} samples"
                         + (" (one 30 ms frame at 16 kHz)" if min_len == FRAME else "") + f", got {a.size}")
    a = np.ascontiguousarray(a)
    if a.dtype.kind == "f" and check_values:  # the float kernels check in C++ (same message), once
        bad = ~(np.abs(a) <= 32768.0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            what = "NaN or inf" if not np.isfinite(a[i]) else f"|value| > 32768 ({a[i]})"
            raise ValueError(f"{name}: {what} at sample {i} (float audio is expected in [-1, 1]; "
                             "int16-scaled floats: divide by 32768)")
    return a


def float_to_q15(x) -> np.ndarray:
    """Float audio [-1, 1] -> int16: round(x * 32768), saturating to [-32768, 32767] (clipped audio saturates;
    NaN/inf refused)."""
    a = _audio(x, np.float32 if v.as_array(x, "x").dtype == np.float32 else np.float64)
    return np.clip(np.rint(a.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)


_F32 = np.dtype(np.float32)


def speech_logmel_f32(x, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """float32 audio [n] (n >= 480) -> ln(mel + 2^-20) float32 [T, 40]; within 1e-5 of the float64 twin."""
    if (type(x) is np.ndarray and x.dtype == _F32 and x.ndim == 1 and x.size >= FRAME and x.flags.c_contiguous
            and type(sample_rate) is int and sample_rate == SAMPLE_RATE):
        return _kernels.speech_logmel_f32(x)  # the common case, ~2 us sooner; the kernel checks the values
    _sample_rate(sample_rate)
    return _kernels.speech_logmel_f32(_audio(x, np.float32, min_len=FRAME, check_values=False))


def speech_logmel_q15(x, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """int16 audio [n] (n >= 480) -> Q10 log-mel int16 [T, 40] (value / 1024 ~ speech_logmel_f32(x / 32768));
    bit-exact with its integer twin."""
    _sample_rate(sample_rate)
    return _kernels.speech_logmel_q15(_audio(x, np.int16, min_len=FRAME))


class LogMelStream:
    """Streaming front-end: push any number of samples, get the frames that completed ([k, 40]). The output for
    any chunking equals the offline call on the concatenated audio. State: 480 samples + counters (fixed)."""

    def __init__(self, dtype: str = "float32", sample_rate: int = SAMPLE_RATE):
        _sample_rate(sample_rate)
        kinds = {"float32": (_kernels._LogMelStreamF32, np.float32), "int16": (_kernels._LogMelStreamQ15, np.int16)}
        cls, self.dtype = v.choice(dtype, "dtype", kinds)
        self._st = cls()

    @property
    def frames(self) -> int:
        return self._st.frames

    def push(self, x) -> np.ndarray:
        return self._st.push(_audio(x, self.dtype, allow_empty=True, check_values=False))


def _gates(gates, name: str = "gates", allow_empty: bool = False) -> np.ndarray:
    g = v.as_array(gates, name)
    if g.ndim != 1:
        raise ValueError(f"{name}: expected 1 dimension, got shape {g.shape}")
    if g.dtype == np.bool_:
        return np.ascontiguousarray(g.view(np.uint8))
    if g.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected bool or integer 0/1 gates, got {g.dtype}")
    if g.size == 0 and not allow_empty:
        raise ValueError(f"{name}: must not be empty")
    if g.size and ((g < 0) | (g > 1)).any():
        raise ValueError(f"{name}: values must be 0 or 1")
    return np.ascontiguousarray(g.astype(np.uint8))


def _mask_params(seg_len, ramp) -> tuple[int, int]:
    seg_len = v.integer(seg_len, "seg_len", 2, 1 << 20)
    ramp = v.integer(ramp, "ramp", 2, MASK_MAX_RAMP)
    if ramp % 2 or ramp > seg_len:
        raise ValueError(f"ramp: must be even and <= seg_len ({seg_len}), got {ramp}")
    return seg_len, ramp


def speech_mask_segments_s16(x, gates, seg_len: int, ramp: int = DEFAULT_RAMP,
                             sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Masked int16 audio [n]: segment s = [s seg_len, (s + 1) seg_len) kept (gate 1, samples unchanged) or
    dropped (0), raised-cosine ramps of `ramp` samples centred on each gate change. gates: bool/0-1 array of
    >= ceil(n / seg_len) entries (extra ignored). Bit-exact with its twin."""
    _sample_rate(sample_rate)
    x = _audio(x, np.int16)
    seg_len, ramp = _mask_params(seg_len, ramp)
    g = _gates(gates)
    need = num_segments(x.size, seg_len)
    if g.size < need:
        raise ValueError(f"gates: need ceil(len(x) / seg_len) = {need} gates, got {g.size}")
    return _kernels.speech_mask_segments_s16(x, g, seg_len, ramp)


class MaskStream:
    """Streaming segment mask: push(x, gates) in any chunking (either may be empty), get the samples whose gains
    are known; finish() returns the rest. Sample n leaves once it is in, the gate of segment
    s' = (n + ramp / 2) // seg_len is in and segment s' has begun: a delay of ramp / 2 samples. Up to `capacity` samples wait (default
    4 segments; more raises ValueError), up to 62 gates may be queued ahead. Output equals the offline kernel."""

    def __init__(self, seg_len: int, ramp: int = DEFAULT_RAMP, capacity: int | None = None,
                 sample_rate: int = SAMPLE_RATE):
        _sample_rate(sample_rate)
        seg_len, ramp = _mask_params(seg_len, ramp)
        capacity = 4 * seg_len if capacity is None else v.integer(capacity, "capacity", 1, 1 << 26)
        self._st = _kernels._MaskStream(seg_len, ramp, capacity)

    @property
    def pending(self) -> int:
        return self._st.pending

    def push(self, x=None, gates=None) -> np.ndarray:
        x = np.zeros(0, np.int16) if x is None else _audio(x, np.int16, allow_empty=True)
        g = np.zeros(0, np.uint8) if gates is None else _gates(gates, allow_empty=True)
        return self._st.push(x, g)

    def finish(self) -> np.ndarray:
        return self._st.finish()


# ------------------------------------------------------------------------------------------------ gate network
def _i32(a) -> bytes:
    return np.ascontiguousarray(a, dtype="<i4").tobytes()


def gate_net_pack(net: dict) -> np.ndarray:
    """The firmware blob (uint8) of an int8 gate network dict (keys F, in_shift, in_offset[40], in_mult[40],
    layers: [{W int8 [cout, k, cin], bias, mult, shift int32 [cout], relu}]); format in speech.h."""
    if not isinstance(net, dict):
        raise TypeError(f"net: expected a dict, got {type(net).__name__}")
    try:
        layers = net["layers"]
        parts = [_i32([GATE_MAGIC, 1, N_MELS, int(net["F"]), len(layers), int(net["in_shift"])]),
                 _i32(np.asarray(net["in_offset"]).reshape(N_MELS)), _i32(np.asarray(net["in_mult"]).reshape(N_MELS))]
        for L in layers:
            W = np.asarray(L["W"])
            if W.ndim != 3 or W.dtype != np.int8:
                raise ValueError("net: layer W must be int8 [cout, k, cin]")
            cout, k, cin = W.shape
            parts += [_i32([cin, cout, k, int(bool(L["relu"]))]), _i32(np.asarray(L["bias"]).reshape(cout)),
                      _i32(np.asarray(L.get("mult", np.ones(cout))).reshape(cout)),
                      _i32(np.asarray(L.get("shift", np.ones(cout))).reshape(cout)), W.tobytes(),
                      bytes((4 - W.size % 4) % 4)]
    except (KeyError, TypeError) as e:
        raise ValueError(f"net: malformed gate network dict ({e})") from None
    blob = np.frombuffer(b"".join(parts), np.uint8).copy()
    _kernels._speech_gate_net_parse(blob)  # validates ranges, names 'net'
    return blob


def gate_net_unpack(blob) -> dict:
    """The dict of a blob (inverse of gate_net_pack; validated first)."""
    b = v.array(blob, "net", np.uint8, 1)
    _kernels._speech_gate_net_parse(b)
    w = lambda i, n: np.frombuffer(b.tobytes(), "<i4", count=n, offset=4 * i).astype(np.int32)  # noqa: E731
    hdr = w(0, 6)
    net = {"F": int(hdr[3]), "in_shift": int(hdr[5]), "in_offset": w(6, N_MELS), "in_mult": w(6 + N_MELS, N_MELS),
           "layers": []}
    pos = 4 * (6 + 2 * N_MELS)
    for _ in range(int(hdr[4])):
        cin, cout, k, relu = w(pos // 4, 4)
        pos += 16
        bias, mult, shift = (w(pos // 4 + i * cout, cout) for i in range(3))
        pos += 12 * cout
        W = np.frombuffer(b.tobytes(), np.int8, count=cout * k * cin, offset=pos).reshape(cout, k, cin).copy()
        pos += cout * k * cin + (4 - (cout * k * cin) % 4) % 4
        net["layers"].append({"W": W, "bias": bias, "mult": mult, "shift": shift, "relu": bool(relu)})
    return net


def _net_blob(net) -> np.ndarray:
    if isinstance(net, dict):
        return gate_net_pack(net)
    return v.array(net, "net", np.uint8, 1)


def speech_gate_net_s8(feat, net, block: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """q15 log-mel features int16 [T, 40] and a gate network (blob or dict) -> (logits int32 [S], gates uint8
    [S]), S = ceil(T / F); gate = logit > 0. block B > 1: the gates of B consecutive segments (blocks from segment
    0, the last one may be shorter) are decided together: all kept when the block's logits sum (int64) to > 0.
    Bit-exact with its twin."""
    f = v.array(feat, "feat", np.int16, 2)
    if f.shape[1] != N_MELS:
        raise ValueError(f"feat: expected shape [T, 40], got {f.shape}")
    block = v.integer(block, "block", 1)
    return _kernels.speech_gate_net_s8(f, _net_blob(net), block)


def _pool(feat: np.ndarray, F: int) -> np.ndarray:
    T = feat.shape[0]
    S = num_segments(T, F)
    seg = np.arange(T) // F
    out = np.zeros((S, feat.shape[1]))
    np.add.at(out, seg, feat)
    return out / np.bincount(seg, minlength=S)[:, None]


def _conv_same(a: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a [S, cin], W [cout, cin, k] (torch layout), 'same' zero padding -> [S, cout] (float64)."""
    cout, cin, k = W.shape
    S = a.shape[0]
    pad = np.zeros((S + k - 1, cin))
    pad[k // 2: k // 2 + S] = a
    return b[None, :] + sum(pad[j: j + S] @ W[:, :, j].T for j in range(k))


def gate_net_float(logmel, mean, std, layers, F: int) -> np.ndarray:
    """The float network the int8 one approximates: logits [S] of float log-mel [T, 40] (speech_logmel_f32, or
    q15 features / 1024). layers: [{"weight": [cout, cin, k] (torch Conv1d), "bias": [cout], "relu": bool}]."""
    a = (_pool(np.asarray(logmel, np.float64), F) - np.asarray(mean)) / np.asarray(std)
    for L in layers:
        a = _conv_same(a, np.asarray(L["weight"], np.float64), np.asarray(L["bias"], np.float64))
        if L.get("relu", False):
            a = np.maximum(a, 0.0)
    return a[:, 0]


def _mult_shift(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """real = mult 2^-shift with mult in [2^30, 2^31) (int32), shift in [1, 62]."""
    real = np.asarray(real, np.float64)
    e = np.floor(np.log2(real)).astype(np.int64)
    shift = np.clip(30 - e, 1, 62)
    mult = np.rint(real * 2.0 ** shift).astype(np.int64)
    over = mult >= 2**31
    mult, shift = np.where(over, mult // 2, mult), np.where(over, shift - 1, shift)
    if (shift < 1).any() or (mult < 1).any():
        raise ValueError("layers: a requantisation multiplier is out of range (check the weights and calibration)")
    return mult.astype(np.int32), shift.astype(np.int32)


def gate_net_quantize(mean, std, layers, calibration, F: int, in_shift: int = 20, percentile: float = 99.99) -> dict:
    """Post-training int8 quantisation of a float gate network (torch-trained) into the kernel's format.

    mean, std: [40] per-band normalisation of the pooled float log-mel; layers: [{"weight": [cout, cin, k]
    (torch Conv1d.weight), "bias": [cout], "relu": bool}], last cout = 1; calibration: a list of q15 feature
    arrays [T, 40] (int16, speech_logmel_q15) from representative audio; F frames per segment. Weights: symmetric
    per output channel; activations: per tensor, scale from the `percentile` of |activation| on the calibration
    set. Returns the dict for gate_net_pack / speech_gate_net_s8, plus "scales" (activation scales and the logit
    scale: logit_real ~ logit_int * scales['logit'])."""
    F = v.integer(F, "F", 1, 64)
    mean = np.asarray(mean, np.float64).reshape(N_MELS)
    std = np.asarray(std, np.float64).reshape(N_MELS)
    if not (np.isfinite(std).all() and (std > 0).all()):
        raise ValueError("std: must be finite and > 0")
    if not isinstance(layers, (list, tuple)) or not 1 <= len(layers) <= GATE_MAX_LAYERS:
        raise ValueError(f"layers: expected 1..{GATE_MAX_LAYERS} layers")
    if not isinstance(calibration, (list, tuple)) or not calibration:
        raise ValueError("calibration: expected a non-empty list of q15 feature arrays [T, 40]")
    acts = [_pool(v.array(c, "calibration", np.int16, 2) / 1024.0, F) for c in calibration]
    z = [(p - mean) / std for p in acts]
    s_in = max(np.percentile(np.abs(np.concatenate(z)), percentile), 1e-6) / 127
    net = {"F": F, "in_shift": int(in_shift), "in_offset": np.rint(1024 * mean).astype(np.int32),
           "in_mult": np.rint(2.0**in_shift / (1024 * std * s_in)).astype(np.int32), "layers": [],
           "scales": {"input": float(s_in)}}
    a = [np.clip(np.rint(t / s_in), -128, 127) * s_in for t in z]  # what the int8 network sees
    for i, L in enumerate(layers):
        W = np.asarray(L["weight"], np.float64)
        b = np.asarray(L["bias"], np.float64)
        cout, cin, k = W.shape
        ws = np.maximum(np.abs(W).reshape(cout, -1).max(1), 1e-12) / 127
        Wq = np.clip(np.rint(W / ws[:, None, None]), -127, 127).astype(np.int8)
        bias = np.rint(b / (s_in * ws)).astype(np.int64)
        if (np.abs(bias) >= 2**30).any():
            raise ValueError(f"layers[{i}]: bias too large for int32 at this scale")
        out = [_conv_same(t, Wq.astype(np.float64) * ws[:, None, None], b) for t in a]
        layer = {"W": np.ascontiguousarray(Wq.transpose(0, 2, 1)), "bias": bias.astype(np.int32),
                 "relu": bool(L.get("relu", False))}
        if i == len(layers) - 1:
            layer["mult"], layer["shift"] = np.ones(cout, np.int32), np.ones(cout, np.int32)
            net["scales"]["logit"] = float(s_in * ws[0])
        else:
            if layer["relu"]:
                out = [np.maximum(t, 0) for t in out]
            s_out = max(np.percentile(np.abs(np.concatenate(out)), percentile), 1e-6) / 127
            layer["mult"], layer["shift"] = _mult_shift(s_in * ws / s_out)
            a = [np.clip(np.rint(t / s_out), 0 if layer["relu"] else -128, 127) * s_out for t in out]
            s_in = s_out
            net["scales"][f"layer{i}"] = float(s_out)
        net["layers"].append(layer)
    return net


# ------------------------------------------------------------------------------------------------ costs
def speech_cost(seconds: float = 4.0, net=None, F: int = 2, hidden: tuple[int, ...] = (32, 32), k: int = 5) -> dict:
    """Operation counts and memory of the on-device path (q15 front-end + int8 gate network) for `seconds` of
    audio, from the kernels' own constants (edgelearn._kernels._speech_info and the network's shapes).

    net: a gate network (blob or dict); without it, a network with `hidden` channels, kernel k everywhere and F
    frames per segment is costed. MACs are multiply(-accumulate)s; RAM counts what must live at once when the
    utterance is processed offline after streaming its features (stream state, one frame's scratch, pooled int8
    features... see 'ram_breakdown'); tables are read-only (flash or RAM)."""
    seconds = v.real(seconds, "seconds", positive=True)
    info = _kernels._speech_info()
    n = int(round(seconds * SAMPLE_RATE))
    T = num_frames(n)
    per_frame = {"window": FRAME, "fft256_butterflies": 8 * 128 * 4, "split": 257 * 4, "power": 257 * 2,
                 "mel": int(info["mel_nnz"])}
    fe_macs = T * sum(per_frame.values())
    if net is not None:
        parsed = _kernels._speech_gate_net_parse(_net_blob(net))
        F, macs_seg, n_layers = parsed.F, parsed.macs_per_segment, parsed.n_layers
        chans = [L["W"].shape[0] for L in gate_net_unpack(_net_blob(net))["layers"]]
    else:
        dims = [N_MELS, *hidden, 1]
        macs_seg = sum(k * a * b for a, b in zip(dims[:-1], dims[1:]))
        n_layers, chans = len(dims) - 1, dims[1:]
    S = num_segments(T, F)
    max_ch = max([N_MELS, *chans])
    ram = {"stream_state_q15": int(info["sizeof_stream_q15"]), "frame_scratch_q15": int(info["q15_frame_scratch_bytes"]),
           "features_q15": T * N_MELS * 2, "gate_scratch_int8": 2 * S * max_ch, "logits_gates": S * 5}
    return {"seconds": seconds, "samples": n, "frames": T, "segments": S, "frames_per_segment": F,
            "frontend_macs": fe_macs, "frontend_macs_per_frame": per_frame, "log_evals": T * N_MELS,
            "gate_macs": S * macs_seg, "gate_layers": n_layers, "total_macs": fe_macs + S * macs_seg,
            "ram_bytes": sum(ram.values()), "ram_breakdown": ram,
            "ram_bytes_streaming_features": sum(ram.values()) - ram["features_q15"] + S * N_MELS,
            "tables_bytes": int(info["sizeof_tables"]),
            "gate_weight_bytes": None if net is None else int(_net_blob(net).size),
            "mask_stream_state_bytes": int(info["sizeof_mask_stream"])}


__all__ = ["SAMPLE_RATE", "FRAME", "HOP", "NFFT", "N_MELS", "LOG_EPS", "Q15_OUT_SCALE", "DEFAULT_RAMP",
           "num_frames", "num_segments", "float_to_q15", "speech_logmel_f32", "speech_logmel_q15", "LogMelStream",
           "speech_mask_segments_s16", "MaskStream", "gate_net_pack", "gate_net_unpack", "speech_gate_net_s8",
           "gate_net_float", "gate_net_quantize", "speech_cost"]

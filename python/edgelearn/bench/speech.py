"""Benchmark of the speech kernels (issue 6's kernel goals as claims).

speech_logmel_f32 on 10 s of speech-like audio against librosa's log-mel with the same parameters
(librosa.feature.melspectrogram(sr=16000, n_fft=512, win_length=480, hop_length=320, window="hann",
center=False, htk=True, norm=None, fmin=0, fmax=8000) then log(+2^-20), fed 16 leading zeros so its frames are
ours), against the same with librosa's mel matrix precomputed (stft + matmul: its fastest use), and against the
float64 NumPy twin; results checked against both. speech_logmel_q15, speech_mask_segments_s16 and
speech_gate_net_s8 against their bit-exact NumPy twins; streams against the offline calls. Timings: interleaved
rounds, best of N, every contender on one thread: librosa's mel product and NumPy's BLAS are pinned to one thread
with threadpoolctl, and so is the kernels' OpenMP (on a shared 2-core machine a two-thread OpenBLAS call stalls at
its barrier behind a busy core and makes librosa look several times slower than it is); so every speed-up claim is a
one-thread ratio, except one: speech_logmel_f32 at the default thread count (its OpenMP over blocks of 16 frames
from 5 s of audio on) against librosa at its own default, measured after the one-thread part.
Costs for 4 s of audio from the kernels' constants (speech_cost): MACs and RAM of the q15 front-end + int8 gate
network.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..kernels import reference as ref
from ..kernels import registry, speech
from . import Report, best_interleaved


def _librosa_fns(x: np.ndarray):
    try:
        import librosa
    except ImportError:
        return None, {}
    y = np.concatenate([np.zeros(16, np.float32), x])
    kw = dict(sr=16000, n_fft=512, win_length=480, hop_length=320, window="hann", center=False, n_mels=40,
              fmin=0.0, fmax=8000.0, htk=True, norm=None)
    mel = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=0.0, fmax=8000.0, htk=True, norm=None)

    def lib():
        return np.log(librosa.feature.melspectrogram(y=y, power=2.0, **kw) + 2.0**-20).T

    def lib_pre():
        S = np.abs(librosa.stft(y, n_fft=512, win_length=480, hop_length=320, window="hann", center=False)) ** 2
        return np.log(mel @ S + 2.0**-20).T

    return lib, {"librosa": lib, "librosa_premel": lib_pre}


def _stream_identical(x, dtype, rng) -> bool:
    st = speech.LogMelStream(dtype)
    outs, i = [], 0
    while i < x.size:
        c = int(rng.integers(1, 2000))
        outs.append(st.push(x[i: i + c]))
        i += c
    off = speech.speech_logmel_f32(x) if dtype == "float32" else speech.speech_logmel_q15(x)
    return bool(np.array_equal(np.concatenate(outs), off))


def _one_thread():
    """Every BLAS/OpenMP pool of the process on one thread inside the block (no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext(False)
    return threadpool_limits(1)


def run(quick: bool = False) -> Report:
    with _one_thread() as limited:
        report = _run(quick)
    report.add(kernel="threads", one_thread=limited is not False)
    _logmel_default_threads(report, quick)
    return report


def _logmel_default_threads(report: Report, quick: bool) -> None:
    """speech_logmel_f32 on 10 s with the kernels' default threads against librosa with its defaults."""
    from .. import get_num_threads

    x = registry.speech_test_audio(np.random.default_rng(6), 160000)
    lib, lib_fns = _librosa_fns(x)
    if lib is None:
        return
    best = best_interleaved({"native": lambda: speech.speech_logmel_f32(x), "librosa": lib},
                            3 if quick else 7, 0.05 if quick else 0.2)
    report.add(kernel="speech_logmel_f32", seconds=10.0, threads=get_num_threads(), native_ms=best["native"] * 1e3,
               librosa_ms=best["librosa"] * 1e3)
    report.claim(f"speech_logmel_f32 speed-up over librosa log-mel (10 s, default threads: {get_num_threads()})",
                 best["librosa"] / best["native"], ">= 20")


def _run(quick: bool) -> Report:
    report = Report("speech")
    rng = np.random.default_rng(6)
    rounds, min_time = (3, 0.05) if quick else (7, 0.2)

    # ---- float front-end, 10 s
    x = registry.speech_test_audio(rng, 160000)
    got = speech.speech_logmel_f32(x)
    want = ref.speech_logmel_f32(x)
    err_ref = float(np.abs(got - want).max())
    lib, lib_fns = _librosa_fns(x)
    fns = {"native": lambda: speech.speech_logmel_f32(x), **lib_fns}
    best = best_interleaved(fns, rounds, min_time)
    best_ref = best_interleaved({"reference": lambda: ref.speech_logmel_f32(x)}, 2 if quick else 3, min_time)
    row = dict(kernel="speech_logmel_f32", seconds=10.0, frames=got.shape[0], native_ms=best["native"] * 1e3,
               reference_ms=best_ref["reference"] * 1e3, max_abs_err_vs_reference=err_ref,
               stream_identical=_stream_identical(x, "float32", rng))
    report.claim("speech_logmel_f32 max |native - float64 reference| (10 s)", err_ref, "<= 1e-5")
    report.claim("speech_logmel_f32 reference time / native time (10 s)",
                 best_ref["reference"] / best["native"], ">= 5")
    if lib is not None:
        T = min(got.shape[0], lib().shape[0])
        err_lib = float(np.abs(got[:T] - lib()[:T]).max())
        row.update(librosa_ms=best["librosa"] * 1e3, librosa_premel_ms=best["librosa_premel"] * 1e3,
                   max_abs_err_vs_librosa=err_lib)
        ok = err_lib < 1e-4
        report.claim("speech_logmel_f32 speed-up over librosa log-mel (10 s, same parameters)",
                     best["librosa"] / best["native"] if ok else 0.0, ">= 20")
        report.claim("speech_logmel_f32 speed-up over librosa stft + precomputed mel matrix (10 s)",
                     best["librosa_premel"] / best["native"] if ok else 0.0, ">= 5")
    report.claim("speech_logmel_f32 stream (random chunks) differs from offline (frames)",
                 0.0 if row["stream_identical"] else 1.0, "<= 0")
    report.add(**row)

    # ---- q15 front-end, 10 s
    xq = speech.float_to_q15(x)
    gq = speech.speech_logmel_q15(xq)
    mism = int((gq != ref.speech_logmel_q15(xq)).sum())
    best = best_interleaved({"native": lambda: speech.speech_logmel_q15(xq)}, rounds, min_time)
    best_ref = best_interleaved({"reference": lambda: ref.speech_logmel_q15(xq)}, 2 if quick else 3, min_time)
    dev = np.abs(gq / 1024.0 - want)[want > -8]
    report.add(kernel="speech_logmel_q15", seconds=10.0, native_ms=best["native"] * 1e3,
               reference_ms=best_ref["reference"] * 1e3, mismatches=mism,
               max_abs_dev_from_float_where_energy=float(dev.max()),
               stream_identical=_stream_identical(xq, "int16", rng))
    report.claim("speech_logmel_q15 elements differing from its integer twin (10 s)", mism, "<= 0")
    report.claim("speech_logmel_q15 reference time / native time (10 s)", best_ref["reference"] / best["native"],
                 ">= 5")
    report.claim("speech_logmel_q15 |Q10 / 1024 - float log-mel| where band energy > e^-8", float(dev.max()),
                 "<= 0.01")

    # ---- masks, 10 s, 40 ms segments, 5 ms ramps
    case = registry.ENTRIES["speech_mask_segments_s16"].make(rng, "bench")
    xm, gm, L, R = case.args
    ym = speech.speech_mask_segments_s16(xm, gm, L, R)
    mism = int((ym != ref.speech_mask_segments_s16(xm, gm, L, R)).sum())
    best = best_interleaved({"native": lambda: speech.speech_mask_segments_s16(xm, gm, L, R),
                             "reference": lambda: ref.speech_mask_segments_s16(xm, gm, L, R)}, rounds, min_time)
    st = speech.MaskStream(L, R)
    parts, i, gi = [], 0, 0
    while i < xm.size:  # 20 ms pushes, each segment's gate as soon as its audio is complete
        parts.append(st.push(xm[i: i + 320], gm[gi: (i + 320) // L]))
        gi = max(gi, (i + 320) // L)
        i += 320
    parts += [st.push(None, gm[gi:]), st.finish()]
    report.add(kernel="speech_mask_segments_s16", samples=xm.size, seg_len=L, ramp=R,
               native_ms=best["native"] * 1e3, reference_ms=best["reference"] * 1e3, mismatches=mism,
               stream_identical=bool(np.array_equal(np.concatenate(parts), ym)), stream_delay_samples=R // 2)
    report.claim("speech_mask_segments_s16 samples differing from its twin (10 s)", mism, "<= 0")
    report.claim("speech_mask_segments_s16 reference time / native time (10 s)",
                 best["reference"] / best["native"], ">= 5")

    # ---- gate network, 4 s (199 frames, F = 2, 40 -> 32 -> 32 -> 1, k = 5)
    case = registry.ENTRIES["speech_gate_net_s8"].make(rng, "bench")
    feat, blob = case.args
    logits, _ = speech.speech_gate_net_s8(feat, blob)
    net = speech.gate_net_unpack(blob)
    mism = int((logits != ref.speech_gate_net_s8(feat, net)[0]).sum())
    best = best_interleaved({"native": lambda: speech.speech_gate_net_s8(feat, blob),
                             "reference": lambda: ref.speech_gate_net_s8(feat, net)}, rounds, min_time)
    report.add(kernel="speech_gate_net_s8", frames=feat.shape[0], segments=logits.size,
               native_ms=best["native"] * 1e3, reference_ms=best["reference"] * 1e3, mismatches=mism)
    report.claim("speech_gate_net_s8 logits differing from its twin (4 s)", mism, "<= 0")
    report.claim("speech_gate_net_s8 reference time / native time (4 s)", best["reference"] / best["native"],
                 ">= 5")

    # ---- on-device cost of 4 s from the kernels' constants
    cost = speech.speech_cost(4.0, net=blob)
    report.add(kernel="speech_cost_4s", **{k: v for k, v in cost.items() if not isinstance(v, dict)},
               **{f"ram_{k}": v for k, v in cost["ram_breakdown"].items()})
    report.claim("q15 front-end + int8 gate network RAM for 4 s of audio (bytes)", cost["ram_bytes"], "<= 65536")
    return report

"""Speaker normalisation before upload (optional): a per-utterance frequency warp that moves the speaker's median
pitch to a fixed target, scaling the formants by the same factor (a VTLN-like warp tied to pitch).

The device estimates the median F0 of the utterance's voiced frames (autocorrelation over 40 ms frames, 60-400 Hz)
and resamples the audio by alpha = F0 / TARGET_F0 (clamped to [1 / MAX_WARP, MAX_WARP]): every frequency is
multiplied by 1 / alpha and the duration by alpha. Pitch and vocal-tract length are the speaker cues it removes;
voice quality, rhythm and accent remain. Intent survives (the cloud model is fine-tuned on normalised audio).
"""

from __future__ import annotations

import numpy as np

TARGET_F0 = 140.0   # Hz
MAX_WARP = 1.6


def median_f0(x: np.ndarray, sr: int = 16000, frame: int = 640, hop: int = 320, fmin: float = 60.0,
              fmax: float = 400.0) -> float | None:
    """Median F0 (Hz) over voiced frames (energy within 20 dB of the loudest frame and normalised autocorrelation
    peak > 0.5), or None when no frame is voiced."""
    y = np.asarray(x, np.float64)
    if y.size < frame:
        return None
    n = 1 + (y.size - frame) // hop
    fr = np.stack([y[i * hop: i * hop + frame] for i in range(n)])
    fr = fr - fr.mean(1, keepdims=True)
    e = (fr ** 2).sum(1) + 1e-9
    lo, hi = int(sr / fmax), int(sr / fmin)
    voiced = 10 * np.log10(e / e.max()) >= -20
    spec = np.fft.rfft(fr[voiced], 2 * frame)                  # autocorrelation of every voiced frame by FFT
    ac = np.fft.irfft(np.abs(spec) ** 2, 2 * frame)[:, : hi + 1] / e[voiced, None]
    lag = lo + np.argmax(ac[:, lo: hi + 1], 1)
    f0s = sr / lag[ac[np.arange(lag.size), lag] > 0.5]
    return float(np.median(f0s)) if f0s.size else None


def speaker_normalise(x: np.ndarray, target_f0: float = TARGET_F0, sr: int = 16000) -> np.ndarray:
    """int16 audio warped so its median F0 becomes target_f0 (unchanged when no voiced frame is found)."""
    x = np.asarray(x, np.int16)
    f0 = median_f0(x, sr)
    if f0 is None:
        return x.copy()
    alpha = float(np.clip(f0 / target_f0, 1 / MAX_WARP, MAX_WARP))
    m = max(1, int(round(x.size * alpha)))
    t = np.arange(m) / alpha                       # output sample k takes the input at time k / alpha
    y = x.astype(np.float64)
    if alpha < 1:   # read out faster: frequencies rise by 1 / alpha; a box low-pass first against aliasing
        k = int(np.ceil(1 / alpha))
        y = np.convolve(np.pad(y, (k // 2, k - 1 - k // 2), mode="edge"), np.ones(k) / k, "valid")
    y = np.interp(t, np.arange(x.size), y)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)

"""Log-mel front-end: 30 ms Hann window, 20 ms hop, 512-point FFT, 40 mel bands (HTK mel, 0 - 8 kHz, as edgelearn.kernels.speech), log.

Frame t covers samples [t*HOP, t*HOP + WIN) (no centring/padding): n_frames = 1 + (n - WIN) // HOP.
``logmel_torch`` is differentiable (the mask generator trains through it). ``FEATURES`` names the function the
rest of the package uses; switching to the C++ kernel (``edgelearn.kernels.speech``) is a one-line change of
``set_feature_fn``.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from edgelearn.speech.audio import HOP, SAMPLE_RATE, WIN

N_FFT = 512
N_MEL = 40
FMIN, FMAX = 0.0, SAMPLE_RATE / 2
LOG_FLOOR = 2.0 ** -20   # as the C++ front-end


def n_frames(n_samples: int) -> int:
    return 0 if n_samples < WIN else 1 + (n_samples - WIN) // HOP


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank() -> np.ndarray:
    """[N_MEL, N_FFT//2+1] triangular filters on the HTK mel scale."""
    bins = np.arange(N_FFT // 2 + 1) * SAMPLE_RATE / N_FFT
    edges = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), N_MEL + 2))
    fb = np.zeros((N_MEL, bins.size))
    for m in range(N_MEL):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        fb[m] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None)
    return fb.astype(np.float32)


_FB = torch.from_numpy(mel_filterbank())
_WINDOW = torch.from_numpy((0.5 - 0.5 * np.cos(2 * math.pi * np.arange(WIN) / WIN)).astype(np.float32))


def logmel_torch(wave: torch.Tensor) -> torch.Tensor:
    """[B, n] float waveform (int16 scale / 32768) -> [B, T, 40] log-mel; differentiable."""
    if wave.dim() == 1:
        wave = wave[None]
    frames = wave.unfold(-1, WIN, HOP) * _WINDOW              # [B, T, WIN]
    spec = torch.fft.rfft(frames, n=N_FFT).abs() ** 2          # [B, T, 257]
    return torch.log(spec @ _FB.T + LOG_FLOOR)


def logmel_numpy(x: np.ndarray) -> np.ndarray:
    """int16 [n] -> float32 [T, 40]: the torch front-end on one utterance."""
    with torch.no_grad():
        return logmel_torch(torch.from_numpy(x.astype(np.float32) / 32768.0))[0].numpy()


def logmel_kernel(x: np.ndarray) -> np.ndarray:
    """The C++ float front-end (edgelearn.kernels.speech.speech_logmel_f32) on int16 audio."""
    from edgelearn.kernels.speech import speech_logmel_f32

    return speech_logmel_f32(x.astype(np.float32) / 32768.0)


def _default():
    try:
        from edgelearn.kernels.speech import speech_logmel_f32  # noqa: F401
        return logmel_kernel
    except (ImportError, AttributeError):
        return logmel_numpy


FEATURES: Callable[[np.ndarray], np.ndarray] = _default()


def set_feature_fn(fn: Callable[[np.ndarray], np.ndarray]) -> None:
    """Use another front-end (int16 [n] -> float32 [T, 40]) for the on-device gate inputs and cost accounting."""
    global FEATURES
    FEATURES = fn


def features(x: np.ndarray) -> np.ndarray:
    return FEATURES(x)

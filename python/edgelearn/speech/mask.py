"""Applying keep/drop gates to int16 audio (the NumPy definition used until the C++ kernel
``speech_mask_segments_s16`` is wired in), and computing the gates of an utterance with a trained GateNet.

Gain: the binary keep signal repeated over SEG samples, smoothed by a length-RAMP box filter, so each keep/drop
boundary becomes a linear ramp of RAMP samples centred on it (no clicks). Output = round(x * gain) as int16.
Gates cover ceil(n / SEG) segments; segments without two full feature frames take the last computed gate.
"""

from __future__ import annotations

import numpy as np
import torch

from edgelearn.speech.audio import as_int16
from edgelearn.speech.features import features
from edgelearn.speech.models import FRAMES_PER_SEG, RAMP, SEG, hard_concrete_deterministic, pool_gates


def n_segments(n_samples: int) -> int:
    return -(-n_samples // SEG)


def apply_mask(x, keep) -> np.ndarray:
    """int16 [n], keep bool/0-1 [ceil(n/SEG)] -> masked int16 [n] with ramps at the boundaries
    (the C++ kernel speech_mask_segments_s16 when built, else the NumPy box-ramp below)."""
    x = as_int16(x, name="x")
    keep = np.asarray(keep).astype(np.float64).ravel()
    if keep.size != n_segments(x.size):
        raise ValueError(f"keep: expected {n_segments(x.size)} gates for {x.size} samples, got {keep.size}")
    try:
        from edgelearn.kernels.speech import speech_mask_segments_s16
    except ImportError:
        pass
    else:
        return speech_mask_segments_s16(x, (keep > 0.5).astype(np.uint8), SEG)
    g = np.repeat(keep, SEG)[: x.size]
    pad = RAMP // 2
    gp = np.pad(g, (pad, RAMP - pad), mode="edge")
    c = np.cumsum(np.concatenate([[0.0], gp]))
    gain = (c[RAMP:] - c[:-RAMP])[: x.size] / RAMP
    return np.round(x * gain).astype(np.int16)


def extend_gates(g: np.ndarray, n_samples: int) -> np.ndarray:
    S = n_segments(n_samples)
    if g.size == 0:
        return np.ones(S, g.dtype)
    return np.concatenate([g, np.repeat(g[-1:], max(0, S - g.size))])[:S]


def gates_for(gatenet, x: np.ndarray, block: int = 1) -> np.ndarray:
    """Binary keep decisions [ceil(n/SEG)] of a trained GateNet on int16 audio x (blocks of `block` segments
    share one decision: ``pool_gates``)."""
    x = as_int16(x, name="x")
    with torch.no_grad():
        la = pool_gates(gatenet(torch.from_numpy(features(x))[None]), block)[0]
    keep = (hard_concrete_deterministic(la) > 0.5).numpy()
    return extend_gates(keep, x.size)


def random_gates(n_samples: int, keep_fraction: float, rng: np.random.Generator, block: int = 1) -> np.ndarray:
    """The random-mask baseline: each block of `block` segments kept independently with probability keep_fraction."""
    S = n_segments(n_samples)
    return np.repeat(rng.random(-(-S // block)) < keep_fraction, block)[:S]


__all__ = ["apply_mask", "gates_for", "random_gates", "n_segments", "extend_gates", "FRAMES_PER_SEG"]

"""Reading and checking audio: every function here takes or returns 16 kHz mono int16.

Conversions that are done (documented, never silent about the ones that are refused):
- float audio in [-1, 1] -> int16 by scaling with 32767 and rounding; values outside [-1, 1] are *refused*
  (clipped float audio is an error, not something to saturate quietly), NaN/inf refused.
- int16 2-D arrays of shape [n, 1] are flattened; any other multi-channel audio is refused (stereo: mix it down
  yourself, e.g. ``sox in.wav -c 1 out.wav``).
- a sample rate other than 16000 Hz is refused (resample with ``sox in.wav -r 16000 out.wav``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
WIN = 480   # 30 ms
HOP = 320   # 20 ms


def as_int16(x, sample_rate: int = SAMPLE_RATE, name: str = "audio") -> np.ndarray:
    """Check and convert an audio array to 1-D int16 at 16 kHz (see the module doc for the conversions)."""
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"{name}: sample rate {sample_rate} Hz, expected {SAMPLE_RATE}; "
                         f"resample first (sox in.wav -r {SAMPLE_RATE} out.wav)")
    a = np.asarray(x)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{name}: expected mono audio (1-D), got shape {a.shape}; mix down first (sox in.wav -c 1 out.wav)")
    if a.size == 0:
        raise ValueError(f"{name}: empty audio")
    if a.dtype == np.int16:
        out = a
    elif np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: float audio contains NaN or inf")
        peak = float(np.max(np.abs(a)))
        if peak > 1.0:
            raise ValueError(f"{name}: float audio outside [-1, 1] (peak {peak:.3g}): clipped or not normalised")
        out = np.round(a * 32767.0).astype(np.int16)
    elif np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name}: integer audio must be int16, got {a.dtype}")
    else:
        raise ValueError(f"{name}: unsupported dtype {a.dtype}")
    if out.size < WIN:
        raise ValueError(f"{name}: {out.size} samples is shorter than one 30 ms frame ({WIN} samples)")
    return np.ascontiguousarray(out)


def read_wav(path) -> np.ndarray:
    """Read a WAV file as 1-D int16 at 16 kHz; FileNotFoundError / ValueError one-liners otherwise."""
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such audio file")
    try:
        data, sr = sf.read(str(p), dtype="int16", always_2d=True)
    except Exception as e:  # soundfile raises its own error types for unreadable files
        raise ValueError(f"{p}: unreadable audio ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    if data.shape[1] != 1:
        raise ValueError(f"{p}: {data.shape[1]} channels, expected mono; mix down first (sox in.wav -c 1 out.wav)")
    return as_int16(data[:, 0], sr, name=str(p))


def write_wav(path, x: np.ndarray) -> None:
    import soundfile as sf

    sf.write(str(path), as_int16(x), SAMPLE_RATE, subtype="PCM_16")

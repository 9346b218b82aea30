"""Argument checks shared by the public kernel functions: one-line errors that name the argument."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

_U64_MAX = 2**64 - 1


def as_array(obj, name: str) -> np.ndarray:
    """A NumPy view of a NumPy array or a torch CPU tensor (zero-copy); TypeError for anything else."""
    if isinstance(obj, np.ndarray):
        return obj
    if type(obj).__module__.startswith("torch") and hasattr(obj, "detach"):
        if obj.device.type != "cpu":
            raise ValueError(f"{name}: tensor must be on the CPU, got {obj.device}")
        return obj.detach().numpy()
    raise TypeError(f"{name}: expected a numpy array or torch CPU tensor, got {type(obj).__name__}")


def array(obj, name: str, dtype, ndim: int | None = None, writeable: bool = False) -> np.ndarray:
    """`obj` as an exact-dtype, C-contiguous, non-empty array of rank `ndim`; no silent conversion."""
    a = as_array(obj, name)
    if a.dtype != np.dtype(dtype):
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got {a.ndim} (shape {a.shape})")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: must be C-contiguous (use np.ascontiguousarray)")
    if a.size == 0:
        raise ValueError(f"{name}: must not be empty (shape {a.shape})")
    if writeable and not a.flags.writeable:
        raise ValueError(f"{name}: must be writeable")
    return a


def integer(value, name: str, lo: int = 0, hi: int = 2**62) -> int:
    if isinstance(value, bool) or not isinstance(value, (Integral, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    v = int(value)
    if not lo <= v <= hi:
        raise ValueError(f"{name}: must be in [{lo}, {hi}], got {v}")
    return v


def real(value, name: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name}: must be finite, got {v}")
    if positive and v <= 0:
        raise ValueError(f"{name}: must be > 0, got {v}")
    if abs(v) > 3.0e38:
        raise ValueError(f"{name}: out of float32 range, got {v}")
    return v


def seeds(obj, name: str = "seeds") -> np.ndarray:
    """A 1-D uint64 array of seeds from a uint64 array or a sequence of non-negative Python ints."""
    if isinstance(obj, np.ndarray):
        if obj.dtype != np.uint64:
            raise TypeError(f"{name}: expected dtype uint64, got {obj.dtype}")
        a = obj
    elif isinstance(obj, (list, tuple)):
        for s in obj:
            integer(s, name, 0, _U64_MAX)
        a = np.array([int(s) for s in obj], dtype=np.uint64)
    else:
        raise TypeError(f"{name}: expected a uint64 array or a list of ints, got {type(obj).__name__}")
    if a.ndim != 1:
        raise ValueError(f"{name}: expected 1 dimension, got {a.ndim}")
    if a.size == 0:
        raise ValueError(f"{name}: need at least one seed (K >= 1)")
    return np.ascontiguousarray(a)


def choice(value, name: str, options: dict):
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected one of {sorted(options)}, got {type(value).__name__}")
    if value not in options:
        raise ValueError(f"{name}: expected one of {sorted(options)}, got {value!r}")
    return options[value]

"""edgelearn: learning on edge devices, in C++-backed Python.

Kernels live in :mod:`edgelearn.kernels` (validated NumPy API over the compiled ``edgelearn._kernels``),
forward-gradient training in :mod:`edgelearn.zo`, the command line in :mod:`edgelearn.cli`.
"""

from __future__ import annotations

__version__ = "0.1.0"

import os as _os

# OpenBLAS's idle workers spin for ~2^28 cycles after each GEMM, taking a core from torch and OpenMP between the
# kernels' GEMMs; a short timeout lets them sleep. Read once when the library loads; set it yourself to override.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import scipy_openblas32 as _openblas  # noqa: E402,F401  (loads the OpenBLAS the compiled module links)

from . import _kernels  # noqa: E402


def set_num_threads(n: int) -> None:
    """Threads used by edgelearn's kernels (OpenMP loops and OpenBLAS GEMMs). Default: OMP_NUM_THREADS or all cores."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n: expected int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n: number of threads must be >= 1, got {n}")
    _kernels._set_num_threads(n)


def get_num_threads() -> int:
    """Threads edgelearn's kernels use now."""
    return _kernels._get_num_threads()


def simd_level() -> str:
    """Widest SIMD path the kernels use on this CPU: 'avx512', 'avx2' or 'scalar'."""
    return _kernels._simd_level()


__all__ = ["__version__", "set_num_threads", "get_num_threads", "simd_level"]

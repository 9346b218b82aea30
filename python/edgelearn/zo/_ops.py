"""The zo kernels as seen from torch: tensors in, tensors out, zero-copy where the kernels allow it.

Every call goes to ``edgelearn.kernels`` (validated, compiled): torch CPU tensors are passed zero-copy and the
kernel's NumPy output is wrapped without a copy.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from .. import _kernels
from .. import kernels as K

_DISTS = ("gaussian", "rademacher")


def _openblas():
    try:
        import scipy_openblas32 as sob

        lib = sob.dll if hasattr(sob, "dll") and hasattr(sob.dll, "scipy_openblas_set_num_threads") else None
        if lib is None:
            import ctypes

            lib = ctypes.CDLL(str(Path(sob.get_lib_dir()) / f"lib{sob.get_library()}.so"))
        return lib
    except (ImportError, OSError, AttributeError):  # pragma: no cover
        return None


_BLAS = _openblas()


@contextmanager
def quiet_blas():
    """Run the kernels' OpenBLAS GEMMs on the calling thread inside the block.

    OpenBLAS's pthread workers busy-wait for a while after each GEMM; interleaved with torch's OpenMP ops (a
    perturbed forward alternates kernel calls and torch ops many times per step) they steal a core from torch
    on a 2-core machine (measured: a top-2-LoRA step 2.6 s -> 1.0 s with single-threaded OpenBLAS). The kernels'
    own OpenMP loops keep all threads (they share torch's OpenMP runtime).
    """
    if _BLAS is None:
        yield
        return
    n = _BLAS.scipy_openblas_get_num_threads()
    _BLAS.scipy_openblas_set_num_threads(1)
    try:
        yield
    finally:
        _BLAS.scipy_openblas_set_num_threads(n)


def native() -> bool:
    """True when the compiled zo kernels are bound."""
    return hasattr(_kernels, "zo_perturbed_linear_f32") and hasattr(_kernels, "zo_replay_seeds_f32")


def noise(seed: int, layer_id: int, slot: int, shape, dist: str = "gaussian") -> torch.Tensor:
    """Z(seed, layer_id, slot) as a float32 tensor (the perturbation the kernels regenerate internally)."""
    return torch.from_numpy(K.zo_noise(int(seed), layer_id, slot, shape, dist))


def noise_stack(seeds: np.ndarray, layer_id: int, slot: int, shape, dist: str = "gaussian") -> torch.Tensor:
    """Z(seeds[k], layer_id, slot) for every k: [K, *shape]."""
    out = torch.empty((len(seeds), *shape), dtype=torch.float32)
    for i, s in enumerate(seeds):
        out[i] = noise(int(s), layer_id, slot, shape, dist)
    return out


def signs(mode: str, num_seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """Seed index and sigma of each stream p (kernel order): central (+k, -k) pairs; forward 0 then +k."""
    if mode == "central":
        return np.repeat(np.arange(num_seeds), 2), np.tile(np.array([1.0, -1.0], dtype=np.float32), num_seeds)
    return np.concatenate([[0], np.arange(num_seeds)]), np.concatenate([[0.0], np.ones(num_seeds)]).astype(np.float32)


def perturbed_linear(x: torch.Tensor, W, b, A, B, scale: float, seeds: np.ndarray, eps: float, layer_id: int,
                     mode: str, dist: str = "gaussian") -> torch.Tensor:
    """kernels.zo_perturbed_linear_f32 on torch tensors: x [S, n, d] -> y [P, n, o] (shares the kernel's buffer)."""
    y = K.zo_perturbed_linear_f32(x.contiguous(), W, b, A, B, float(scale), seeds, float(eps), layer_id, mode, dist)
    return torch.from_numpy(y)


def replay(param: torch.Tensor, seeds: np.ndarray, coefs: np.ndarray, layer_id: int, slot: int,
           dist: str = "gaussian") -> None:
    """In place: param += sum_k coefs[k] Z(seeds[k], layer_id, slot) (kernels.zo_replay_seeds_f32)."""
    K.zo_replay_seeds_f32(param.data, seeds, np.ascontiguousarray(coefs, dtype=np.float32), layer_id, slot, dist)

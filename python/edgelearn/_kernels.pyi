"""Type stubs of edgelearn._kernels, the compiled module. Call kernels through edgelearn.kernels, which validates.

Contracts: csrc/include/edgelearn/{philox.h, zo.h}. Every function raises TypeError (wrong type or dtype) or
ValueError (shape, range, size) with a message that starts with the argument's name.
"""

import numpy as np
import numpy.typing as npt

# --- threads and SIMD
def _set_num_threads(n: int) -> None: ...
def _get_num_threads() -> int: ...
def _simd_level() -> str: ...

# --- rng (philox.h)
def rng_philox_u32(seed: int, stream: int, count: int, start: int = 0) -> npt.NDArray[np.uint32]:
    """Raw Philox4x32-10 words [start, start + count) of stream (seed, stream)."""

def rng_fill_f32(seed: int, stream: int, count: int, start: int = 0, dist: int = 0) -> npt.NDArray[np.float32]:
    """Float32 values [start, start + count) of stream (seed, stream): dist 0 gaussian, 1 rademacher, 2 uniform."""

def _philox_blocks(seed: int, stream: int, first_block: int, nblocks: int) -> npt.NDArray[np.uint32]:
    """For tests: words [nblocks, 4] of counter blocks first_block, ... (wrapping mod 2^64), active SIMD path."""

def _philox_level() -> str:
    """SIMD path of the philox fills: 'avx512', 'avx2' or 'scalar'."""

def _philox_force_level(level: str) -> None:
    """For tests and benchmarks: 'scalar', 'avx2', 'avx512' (clamped to the CPU) or '' (the best one)."""

# --- zo (zo.h)
def zo_perturbed_linear_f32(
    x: npt.NDArray[np.float32],  # [S, n, d], S = 1 or P
    W: npt.NDArray[np.float32],  # [o, d]
    b: npt.NDArray[np.float32] | None,  # [o]
    A: npt.NDArray[np.float32],  # [r, d]
    B: npt.NDArray[np.float32],  # [o, r]
    scale: float,
    seeds: npt.NDArray[np.uint64],  # [K], K >= 1
    eps: float,  # finite, > 0
    layer_id: int,  # [0, 2^62]
    mode: int,  # 0 central (P = 2K), 1 forward (P = K + 1)
    dist: int,  # 0 gaussian, 1 rademacher
    out: npt.NDArray[np.float32] | None = None,  # [P, n, o], must not overlap an input
) -> npt.NDArray[np.float32]:
    """y[p] = x[p or 0] W^T + b + scale * (x A_p^T) B_p^T for all P streams; returns `out` when given."""

def zo_replay_seeds_f32(
    param: npt.NDArray[np.float32],  # any shape, C-contiguous, writeable; updated in place
    seeds: npt.NDArray[np.uint64],  # [K]
    coefs: npt.NDArray[np.float32],  # [K], finite
    layer_id: int,
    slot: int,  # 0 (A / weight) or 1 (B / bias)
    dist: int,  # 0 gaussian, 1 rademacher
) -> None:
    """In place: param += sum_k coefs[k] * Z(seeds[k], layer_id, slot), summed in double, rounded once."""

def zo_attention_packed_f32(
    q: npt.NDArray[np.float32],  # [S or 1, N, d], finite
    k: npt.NDArray[np.float32],  # [S or 1, N, d], finite
    v: npt.NDArray[np.float32],  # [S or 1, N, d], finite
    lengths: npt.NDArray[np.int64],  # [B], each >= 1, summing to N
    heads: int,  # divides d
    scale: float,
    out: npt.NDArray[np.float32] | None = None,  # [S, N, d], must not overlap an input
) -> npt.NDArray[np.float32]:
    """out[s, i] = softmax(scale q_i K^T) V per head over the rows of i's sequence; returns `out` when given."""

# --- quant (quant.h)
class _QWeightS8:
    """Packed int8 weights [n, k] (from qgemm_pack_s8): the layout of the qgemm micro-kernels; picklable."""

    @property
    def n(self) -> int: ...
    @property
    def k(self) -> int: ...
    @property
    def shape(self) -> tuple[int, int]: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def data(self) -> npt.NDArray[np.int8]:
        """A copy of the packed bytes, [np/16, kp/4, 16, 4]."""
    @property
    def colsum(self) -> npt.NDArray[np.int32]:
        """Per-channel sums of W, [np] (0 for padding)."""

def _quant_level() -> str:
    """SIMD path of the quant kernels: 'amx', 'avx512vnni', 'avx2' or 'scalar'."""

def _quant_force_level(level: str) -> None:
    """For tests and benchmarks: 'scalar', 'avx2', 'avx512vnni', 'amx' (clamped to the CPU) or '' (the best one)."""

def qgemm_pack_s8(W: npt.NDArray[np.int8]) -> _QWeightS8:
    """Packs W [n, k] (values in [-127, 127], k <= 65536) once for qgemm_s8 / qlinear_lora_s8."""

def qgemm_unpack_s8(W: _QWeightS8) -> npt.NDArray[np.int8]:
    """W [n, k] back from the packed layout, exactly (the inverse of qgemm_pack_s8)."""

def qgemm_s8(
    x: npt.NDArray[np.int8],  # [m, k]
    W: _QWeightS8,  # [n, k], packed
    w_scale: npt.NDArray[np.float32],  # [n], finite, > 0, normal
    x_scale: float | npt.NDArray[np.float32],  # per tensor, or [1] / [m] per token
    bias: npt.NDArray[np.float32] | None,  # [n], finite
    x_zero_point: int,  # [-128, 127]
    out_dtype: int,  # 0 float32, 1 int8
    y_scale: float,  # int8 output: > 0, normal
    y_zero_point: int,  # int8 output: [-128, 127]
    out: npt.NDArray[np.float32] | npt.NDArray[np.int8] | None = None,  # [m, n]
) -> npt.NDArray[np.float32] | npt.NDArray[np.int8]:
    """((x - zx) W^T) * (x_scale * w_scale) + bias, float32 or requantised int8 (half away, saturating)."""

def qlinear_s8(
    x: npt.NDArray[np.float32],  # [m, k], finite
    W: _QWeightS8,  # [n, k], packed
    w_scale: npt.NDArray[np.float32],  # [n], finite, > 0, normal
    x_scale: float,  # per tensor, > 0, normal
    bias: npt.NDArray[np.float32] | None,  # [n], finite
    out: npt.NDArray[np.float32] | None = None,  # [m, n]
    gelu: bool = False,  # y = gelu(y) in the epilogue
) -> npt.NDArray[np.float32]:
    """qgemm_s8(clip(round_half_away(x / x_scale), -127, 127), W, w_scale, x_scale, bias), quantized in the kernel."""

def qlinear_lora_s8(
    x: npt.NDArray[np.float32],  # [S, m, k], finite; S = 1 or P
    W: _QWeightS8,  # [n, k], packed
    w_scale: npt.NDArray[np.float32],  # [n], finite, > 0, normal
    x_scale: float,  # per tensor, > 0, normal
    bias: npt.NDArray[np.float32] | None,  # [n], finite
    A: npt.NDArray[np.float32],  # [r, k]
    B: npt.NDArray[np.float32],  # [n, r]
    scale: float,
    seeds: npt.NDArray[np.uint64] | None,  # [K]; None = plain layer (P = 1)
    eps: float,  # > 0
    layer_id: int,  # [0, 2^62]
    mode: int,  # 0 central (P = 2K), 1 forward (P = K + 1)
    dist: int,  # 0 gaussian, 1 rademacher
    out: npt.NDArray[np.float32] | None = None,  # [P, m, n]
) -> npt.NDArray[np.float32]:
    """qgemm_s8(quantize(x), W) + bias + scale (x A_p^T) B_p^T for every perturbation stream p of the adapter."""

def qadapter_update_s8(
    q: list[npt.NDArray[np.int8]],  # each [rows, ...], updated in place
    scales: list[npt.NDArray[np.float32]],  # each [rows], finite, > 0, normal
    grads: list[npt.NDArray[np.float32]],  # each of q[t]'s shape
    lr: float,
    seed: int,  # uint64
    streams: npt.NDArray[np.uint64] | None,  # [T], default t
    qas: bool,  # grads are dL/dq, scaled by s^-2
) -> None:
    """In place: q = clip(SR(q - lr g s^-1 (qas: s^-2)), -127, 127); NaN/inf gradients: ValueError after the pass."""

# --- speech (speech.h)
def speech_logmel_f32(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """float32 audio [n >= 480] at 16 kHz -> ln(mel + 2^-20) [T, 40], T = 1 + (n - 480) // 320."""

def speech_logmel_q15(x: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """int16 audio [n >= 480] at 16 kHz -> Q10 ln(mel) [T, 40] (integer algorithm of speech.h)."""

class _LogMelStreamF32:
    fill: int
    frames: int
    def __init__(self) -> None: ...
    def push(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...

class _LogMelStreamQ15:
    fill: int
    frames: int
    def __init__(self) -> None: ...
    def push(self, x: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]: ...

def speech_mask_segments_s16(
    x: npt.NDArray[np.int16], gates: npt.NDArray[np.uint8], seg_len: int, ramp: int
) -> npt.NDArray[np.int16]:
    """Keep/drop gates over segments of seg_len samples, raised-cosine ramps of `ramp` samples (even)."""

class _MaskStream:
    pending: int
    n_in: int
    n_gates: int
    def __init__(self, seg_len: int, ramp: int, capacity: int) -> None: ...
    def push(self, x: npt.NDArray[np.int16], gates: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]: ...
    def finish(self) -> npt.NDArray[np.int16]: ...

class _GateNet:
    F: int
    n_layers: int
    macs_per_segment: int

def _speech_gate_net_parse(net: npt.NDArray[np.uint8]) -> _GateNet:
    """Parse and validate a gate-network blob (ValueError naming 'net')."""

def speech_gate_net_s8(
    feat: npt.NDArray[np.int16], net: npt.NDArray[np.uint8], block: int = 1
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint8]]:
    """q15 log-mel [T, 40] + blob -> (logits int32 [S], gates uint8 [S]), S = ceil(T / F); gates per block of
    `block` segments (kept when the block's logits sum to > 0)."""

def _speech_level() -> str:
    """Lane path of the float front-end: 'avx512', 'avx2' or 'baseline'."""

def _speech_force_level(level: str) -> None:
    """For tests and benchmarks: 'baseline', 'avx2', 'avx512' (clamped to the CPU) or '' (the best one)."""

def _speech_rfft512_f32(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The front-end's float 512-point real FFT: [514] interleaved re, im of X[0..256]."""

def _speech_rfft512_q15(x: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """The q15 front-end's integer 512-point real FFT (2X): [514] interleaved; inputs in (-2^15, 2^15)."""

def _speech_log_q10(acc: npt.NDArray[np.uint64]) -> npt.NDArray[np.int16]:
    """Q10 ln(acc 2^-45) of mel accumulators (the q15 front-end's integer log)."""

def _speech_tables() -> dict[str, np.ndarray]:
    """The front-end tables (window, Q30 twiddles, sparse mel weights, log2 table)."""

def _speech_info() -> dict[str, int]:
    """Constants and struct sizes of the speech kernels (for costing)."""

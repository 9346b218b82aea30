// The quant family: int8 GEMM over a frozen, packed int8 backbone; int8 linear + float LoRA adapter (and its
// perturbed form for forward-gradient training); quantized adapter update with stochastic rounding.
//
// ---------------------------------------------------------------------------------------------- weights, packed
// A frozen weight W [n, k] (n output channels, k inputs) is int8, symmetric per output channel, with values in
// [-127, 127] (-128 is refused: symmetric quantization never produces it, and excluding it keeps the AVX2 path's
// 16-bit pair sums exact). qgemm_pack_s8 copies it once into the layout the micro-kernels read:
//   np = ceil(n / 16) * 16,  kp = ceil(k / 4) * 4              (zero padding)
//   data[(jb * kp/4 + g) * 64 + 4 * c + t] = W[16 jb + c, 4 g + t]   for jb < np/16, g < kp/4, c < 16, t < 4
// i.e. for every block of 16 channels, each group of 4 inputs is one 64-byte row: exactly one zmm operand of
// vpdpbusd (16 int32 lanes, each the dot product of 4 bytes), or two ymm operands on AVX2.
//   colsum[j] = sum_t W[j, t]   (int32, 0 for padding channels)   -- for the zero-point and +128 corrections.
// The packed form does not depend on the SIMD level; unpacking gives W back exactly.
//
// ---------------------------------------------------------------------------------------------- qgemm_s8
// x int8 [m, k] with activation zero point zx (one integer in [-128, 127]) and activation scale sx: one per tensor
// or one per row ("per token"); weight scales sw [n] (per output channel); bias [n] float32 (optional).
//   acc[i, j]  = sum_t (x[i, t] - zx) * W[j, t]                       int32, exact (k <= 65536 keeps it in range)
//   real[i, j] = (float(acc[i, j]) * (sx[i] * sw[j])) + bias[j]        float32 ops in this order, each rounded
//                                                                       to nearest even, no FMA
// Output float32: y = real. Output int8 with output scale sy > 0 and zero point zy in [-128, 127]:
//   inv = 1 / sy (float32);  v = real * inv;  r = round_half_away_from_zero(v) as float32
//   y = int8(clamp(r + zy, -128, 127))                                 saturating (inf clamps too)
// Every step is an exactly rounded float32 operation, so the NumPy twin (which performs the same operations in
// the same order) gives the same bits: both outputs are bit-exact, on every SIMD path and thread count.
//
// Paths (run-time dispatch; a scalar path is always compiled):
//   amx         AMX-INT8 tdpbusd (u8 x s8 as vpdpbusd, the same +128 correction): blocks of 32 rows x 32 channels
//               in four int32 tiles, 64 inputs per step (a B tile is 16 groups of the packed layout as is); inputs
//               past the last multiple of 64 are added with vpdpbusd, then the VNNI epilogue. Used when the CPU
//               has AMX-TILE + AMX-INT8 and Linux grants tile data (arch_prctl(ARCH_REQ_XCOMP_PERM)).
//               Tasks are bands of 32 rows (x quantized / copied per band, every channel panel, whole output rows
//               written) when W fits in L2; otherwise panel-major over one copy of x.
//   avx512vnni  vpdpbusd multiplies unsigned by signed bytes: x is copied once per call as x + 128 (u8) and the
//               +128 is taken back exactly with (128 + zx) * colsum[j]. Tiles of 8 rows x 48 channels,
//               24 zmm accumulators, OpenMP over tiles.
//   avx2        |x| (u8) times sign(x) * W (s8) with vpmaddubsw (pair sums <= 2 * 128 * 127, no saturation),
//               vpmaddwd to int32. Tiles of 4 rows x 16 channels.
//   scalar      the same sums in int32 from the packed layout.
// Integer sums are exact, so every path, tiling and thread count gives identical results.
//
// Ranges: m, n, k >= 1; k <= 65536; m * n and m * k within int64; scales finite and > 0 with 1/scale finite
// (float32 normal numbers); bias finite. Violations throw ArgError naming the argument.
//
// Cost: m * n * k multiply-adds (vpdpbusd: 64 per instruction), plus one pass over x (the u8 copy) and the
// m * n epilogue (scale, bias, requantise) done on the tile in registers.
//
// ---------------------------------------------------------------------------------------------- qlinear_s8
// The frozen int8 linear layer from float32 activations, quantized inside the kernel with a calibrated per-tensor
// scale (as qlinear_lora_s8 quantizes):
//   xq[i, t] = int8(clamp(round_half_away(x[i, t] * (1 / sx)), -127, 127))       (zx = 0; float32 ops)
//   y        = qgemm_s8(xq, W, sw, sx, bias) as float32                          bit-exact with the twin
// x must be finite: NaN/inf have no int8 value (ArgError after the pass; y is then unspecified).
// gelu = true applies GELU to y in the epilogue, on the registers (a BERT FFN's first layer: no second pass over
// y), with float32 operations in a fixed order (no FMA), bit-exact with the twin's qlinear_gelu_f32:
//   gelu(y) = (0.5 y) (1 + erf(y / sqrt 2)),  erf(z) = sign(z) (1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) e^(-z^2)),
//   t = 1 / (1 + p |z|)  (Abramowitz & Stegun 7.1.26, |erf error| <= 1.5e-7), e^u for u <= 0 as zo.h's attention
//   computes it (degree-6 polynomial, 2^n from exponent bits), u clamped at -32 (erf is 1.0f there already;
//   no denormal intermediates).
// AMX path: the quantization is fused into the copy of x the tiles read (x is read once, no int8 copy in memory);
// other paths quantize into a scratch first. Cost: qgemm_s8's, with x read as float32.
//
// ---------------------------------------------------------------------------------------------- qlinear_lora_s8
// The frozen int8 linear layer (x quantized with a calibrated per-tensor scale) plus a float LoRA adapter:
//   xq[i, t] = int8(clamp(round_half_away(x[i, t] * (1 / sx)), -127, 127))       (zx = 0; float32 ops)
//   base     = qgemm_s8(xq, W, sw, sx, bias) as float32
//   y        = base + s * (x A^T) B^T       (A [r, k], B [n, r] float32, s finite)
// Perturbed form: P streams over the adapter exactly as zo_perturbed_linear_f32 (zo.h): the same seeds, streams
// Z(seed, layer_id, slot), modes (central P = 2K, forward P = K + 1) and distributions; x is [S, m, k] with S = 1
// (the int8 base product is computed once and shared by all streams) or S = P (one base product of P*m rows).
// The low-rank term uses the zo family's small kernels (float32, FMA), so it agrees with the float64 NumPy twin to
// rtol = atol = 1e-4 (registry tolerance); the base term is the exact qgemm_s8 result.
// K = 0 (seeds None in the binding) is the plain layer: P = 1, S = 1. x must be finite (NaN/inf have no int8
// value: ArgError), x_scale finite, normal and > 0, w_scale as for qgemm_s8.
// Cost: one pass over x (quantize), the qgemm_s8 of S*m rows, then the zo kernel's low-rank work (zo.h) over n
// outputs; y is written once per stream (S = 1: base read from an m x n scratch).
//
// ---------------------------------------------------------------------------------------------- qadapter_update_s8
// Int8 adapter weights q [rows, cols] with per-row (output channel) scales s [rows] (the real weight is s * q),
// updated in place in one pass from a float32 gradient g [rows, cols], learning rate lr, for a list of tensors:
//   inv   = 1 / s[row]                                                  (float32)
//   delta = (lr * g) * inv                 qas = false: g is dL/dW of the real weight W = s q; then
//                                          s (q - delta) = W - lr g: dequantise, step, requantise (scale kept)
//   delta = ((lr * g) * inv) * inv         qas = true: g is dL/dq (the int8 graph's gradient), scaled by s^-2 as
//                                          tiny-training's quantization-aware scaling does (Lin et al., 2022)
//   v     = float(q) - delta
//   fl = floor(v);  f = v - fl
//   h(i)  = 16-bit half i % 2 (0: low, 1: high) of Philox word bits(i / 2) of stream (seed, streams[tensor])
//           (philox.h), i the row-major flat index of the element: two elements per word
//   u(i)  = (h(i) + 0.5) * 2^-16                                       exact float32, in (0, 1)
//   q'    = int8(clamp(fl + (u < f ? 1 : 0), -127, 127))              stochastic rounding, saturating
// Every step is an exactly rounded float32 operation (no FMA): bit-exact with the NumPy twin.
// Unbiased: E[q'] = fl + P(u < f) and P(u < f) = ceil(f 2^16 - 1/2) / 2^16, within 2^-17 of f (before clipping):
// the expected rounding error is below 8e-6 of a step for any f. (16 bits per element, not 32: the Philox words,
// not memory, would otherwise bound the pass.)
// Clipping to [-127, 127] (not -128) keeps weights symmetric, as qgemm_s8's packing requires.
// A gradient element that is NaN or inf leaves its weight unchanged and is counted; the count per tensor is
// returned (the bindings raise ValueError naming the tensor after the pass: the other elements are updated).
// Work is split into fixed chunks (parallel over chunks of all tensors): results do not depend on thread count.
// AVX-512: the Philox blocks are computed in registers inside the update loop (16 blocks = 128 elements at a time,
// no random buffer); other paths generate the words of 4096 elements into an L1 buffer first.
// Ranges: scales finite and normal (> 0, 1/s finite); lr finite; rows, cols >= 1; streams any uint64.
// Cost: reads q (1 byte) and g (4 bytes), writes q (1 byte) per element: 6 bytes, and half a Philox word.
#pragma once

#include <cstdint>
#include <vector>

#include "edgelearn/philox.h"
#include "edgelearn/zo.h"

namespace edgelearn {

// ---------------------------------------------------------------------------------------------- packed weights
struct QWeightS8 {
  int64_t n = 0, k = 0;    // logical shape [n, k]
  int64_t np = 0, kp = 0;  // padded: multiples of 16 and 4
  std::vector<int8_t> data;     // np * kp bytes, layout above
  std::vector<int32_t> colsum;  // [np]
};

// Packs W [n, k] (row-major). Checks n, k and that every value is in [-127, 127].
QWeightS8 qgemm_pack_s8(const int8_t* W, int64_t n, int64_t k);
// W [n, k] back from the packed form.
void qgemm_unpack_s8(const QWeightS8& w, int8_t* W);
// Checks the internal consistency of a packed weight (sizes, padding); throws ArgError naming `name`.
void qgemm_check_packed(const QWeightS8& w, const char* name);

enum class QOut : int { F32 = 0, S8 = 1 };

struct QGemmArgs {
  const int8_t* x = nullptr;  // [m, k]
  int64_t m = 0, k = 0;
  int32_t x_zero_point = 0;
  const float* x_scale = nullptr;  // [1] or [m]
  int64_t x_scale_len = 0;
  const QWeightS8* w = nullptr;  // packed [n, k]
  const float* w_scale = nullptr;  // [n]
  const float* bias = nullptr;     // [n] or nullptr
  QOut out = QOut::F32;
  float y_scale = 1.0f;  // int8 output only
  int32_t y_zero_point = 0;
  // Float32 input instead of x (qlinear_s8): quantized per tensor with x_scale[0]; x_zero_point must be 0.
  const float* xf = nullptr;
  bool gelu = false;  // float32 output only: GELU in the epilogue (qlinear_s8)
};

void qgemm_check_args(const QGemmArgs& a);
// y: float32 [m, n] (out = F32) or int8 [m, n] (out = S8). Checks its arguments.
void qgemm_s8(const QGemmArgs& a, void* y);

// qlinear_s8: x float32 [m, k] (finite), per-tensor x_scale; y float32 [m, n]. Checks its arguments.
struct QLinearArgs {
  const float* x = nullptr;
  int64_t m = 0, k = 0;
  float x_scale = 1.0f;
  const QWeightS8* w = nullptr;
  const float* w_scale = nullptr;  // [n]
  const float* bias = nullptr;     // [n] or nullptr
  bool gelu = false;               // y = gelu(y) in the epilogue
};
void qlinear_s8(const QLinearArgs& a, float* y);

// Active SIMD path of the quant kernels: "amx", "avx512vnni", "avx2" or "scalar"; force_level for tests and benchmarks
// ("" = the best this CPU supports; others are clamped to it).
const char* quant_level();
void quant_force_level(const char* level);

// ---------------------------------------------------------------------------------------------- qlinear_lora_s8
struct QLoraArgs {
  const float* x = nullptr;  // [S, m, k]
  int64_t S = 1, m = 0, k = 0;
  float x_scale = 1.0f;  // per-tensor, calibrated
  const QWeightS8* w = nullptr;
  const float* w_scale = nullptr;  // [n]
  const float* bias = nullptr;     // [n] or nullptr
  const float* A = nullptr;        // [r, k]
  const float* B = nullptr;        // [n, r]
  int64_t r = 0;
  float scale = 1.0f;
  // perturbation (K = 0: plain layer, P = 1, S must be 1)
  const uint64_t* seeds = nullptr;
  int64_t K = 0;
  float eps = 0.0f;
  uint64_t layer_id = 0;
  ZoMode mode = ZoMode::Central;
  Dist dist = Dist::Gaussian;
};

inline int64_t qlora_num_streams(const QLoraArgs& a) { return a.K == 0 ? 1 : zo_num_streams(a.mode, a.K); }
void qlinear_lora_check_args(const QLoraArgs& a);
// y: float32 [P, m, n]. Checks its arguments.
void qlinear_lora_s8(const QLoraArgs& a, float* y);

// ---------------------------------------------------------------------------------------------- qadapter_update_s8
struct QAdapterTensor {
  int8_t* q = nullptr;            // [rows, cols], updated in place
  const float* scale = nullptr;   // [rows]
  const float* grad = nullptr;    // [rows, cols]
  int64_t rows = 0, cols = 0;
  uint64_t stream = 0;
};

// Updates every tensor; nonfinite[t] = number of gradient elements of tensor t that were NaN or inf (those
// weights are left unchanged). Checks its arguments (scales, lr, sizes) before writing anything.
void qadapter_update_s8(const QAdapterTensor* tensors, int64_t T, float lr, uint64_t seed, bool qas,
                        int64_t* nonfinite);

}  // namespace edgelearn

// The zo family: perturbed forward passes and seed replay for backpropagation-free fine-tuning.
//
// A LoRA-adapted linear layer computes  y = x W^T + b + s * (x A^T) B^T  with a frozen W [o, d], bias b [o]
// (optional), adapter A [r, d], B [o, r] and scale s. Forward-gradient training evaluates it under P
// perturbations of the adapter at once; each perturbation is regenerated from a seed (philox.h), never stored:
//
//   Z_A(k) = Z(seeds[k], layer_id, slot 0)  shaped [r, d]     Z_B(k) = Z(seeds[k], layer_id, slot 1)  shaped [o, r]
//   stream p:  A_p = A + sigma_p * eps * Z_A(k_p),   B_p = B + sigma_p * eps * Z_B(k_p)
//              y_p = x_p W^T + b + s * (x_p A_p^T) B_p^T
//
// Modes (K = number of seeds):
//   central  P = 2K; stream 2k uses seed k with sigma = +1, stream 2k+1 seed k with sigma = -1
//   forward  P = K+1; stream 0 is unperturbed (sigma = 0), stream k+1 uses seed k with sigma = +1
//
// Inputs x [S, n, d] with S = 1 (one input shared by all P streams; the frozen product x W^T + b is computed
// once) or S = P (stream p reads x[p]; the frozen product is one stacked GEMM of P*n rows). Output y [P, n, o].
// Perturbed copies A_p, B_p exist for one stream at a time per thread, never for all streams at once.
//
// Replay: param += sum_k coefs[k] * Z(seeds[k], layer_id, slot), in one pass over param, in place. Summation
// over k runs in double in seed order and is rounded once to float32 (the NumPy twin does the same).
//
// Ranges: n, d, o, r >= 1; K >= 1; eps finite and > 0; s finite; layer_id <= 2^62 (so 2 * layer_id + 1 fits);
// all sizes and products within int64, the output P*n*o <= 2^40 elements, and GEMM dimensions (d, o, S*n) within
// int32 (the BLAS interface); y must not overlap an input. Violations throw ArgError naming the argument (the
// bindings throw TypeError_ for wrong types and dtypes).
//
// Numerics: float32 throughout, FMA where the loops use it; the frozen product goes to OpenBLAS sgemm. y agrees
// with the float64 NumPy twin to rtol = atol = 1e-4 for inputs of unit scale (registry tolerance). The same
// inputs give the same bits for any thread count. S = P with all x[p] equal matches S = 1 up to the order in which
// BLAS sums x W^T (an n-row and a P*n-row sgemm may take different kernels): often the same bits.
//
// Cost (P streams, n rows): S = 1: one n x d x o sgemm + P*n*o*r FMAs + K*n*r*d FMAs (x Z_A^T) + K*(r*d + o*r)
// noise values; dominated by writing y (P*n*o floats, streamed past the cache when large). S = P: the P*n x d x o
// sgemm, then one more pass over y.
#pragma once

#include <cstdint>

#include "edgelearn/philox.h"

namespace edgelearn {

enum class ZoMode : int { Central = 0, Forward = 1 };

struct ZoLinearArgs {
  const float* x;  // [S, n, d]
  int64_t S, n, d;
  const float* W;  // [o, d]
  const float* b;  // [o] or nullptr
  int64_t o;
  const float* A;  // [r, d]
  const float* B;  // [o, r]
  int64_t r;
  float scale;
  const uint64_t* seeds;  // [K]
  int64_t K;
  float eps;
  uint64_t layer_id;
  ZoMode mode;
  Dist dist;  // Gaussian or Rademacher
};

// Number of streams P for K seeds in `mode`.
inline int64_t zo_num_streams(ZoMode mode, int64_t K) { return mode == ZoMode::Central ? 2 * K : K + 1; }

// y: [P, n, o], written entirely. Checks its arguments.
void zo_perturbed_linear_f32(const ZoLinearArgs& a, float* y);

// The argument checks of zo_perturbed_linear_f32 (everything but y), for bindings and kernels sharing ZoLinearArgs.
void zo_check_linear_args(const ZoLinearArgs& a);

// param: [numel], in place. Checks its arguments (coefs finite, slot 0 or 1, dist Gaussian or Rademacher).
// seeds and coefs are copied first, so they may alias param.
void zo_replay_seeds_f32(float* param, int64_t numel, const uint64_t* seeds, const float* coefs, int64_t K,
                         uint64_t layer_id, uint64_t slot, Dist dist);

// ------------------------------------------------------------------------------------- zo_attention_packed_f32
// Multi-head attention over packed sequences, for P streams at once: the attention of a BERT layer whose hidden
// states hold only the N real tokens of a batch (no padding), as the perturbed forward keeps them.
//
//   q [Sq, N, d], k [Sk, N, d], v [Sv, N, d] with each S in {1, S} (S = the largest; 1 = shared by all streams);
//   lengths [B], >= 1, summing to N: sequence b owns rows off_b .. off_b + lengths[b] - 1 (off_b = sum before b);
//   heads H divides d (dh = d / H); scale finite (BERT: 1 / sqrt(dh)).
//   out[s, i, h dh + c] = sum_j softmax_j(scale * q[s,i,h] . k[s,j,h]) v[s,j,h dh + c], j over i's sequence.
//
// Ranges: N, d, H, B >= 1; a sequence at most 4096 tokens; S*N*d within int64 and <= 2^40; q, k, v finite; out
// must not overlap an input. Violations throw ArgError naming the argument.
// Numerics: float32, FMA where the CPU has it, exp by a degree-6 polynomial (relative error < 2e-7); agrees with
// the float64 NumPy twin to rtol = atol = 1e-5 for inputs of unit scale. Each (stream, sequence, head) block is
// computed by one thread in a fixed order: the same bits for any thread count.
// Cost: sum_b 2 L_b^2 d MACs per stream, L_b^2 H exps; scratch O(L_b (dh + 16)) floats per thread.
struct ZoAttentionArgs {
  const float* q;  // [Sq, N, d]
  const float* k;  // [Sk, N, d]
  const float* v;  // [Sv, N, d]
  int64_t Sq, Sk, Sv, N, d;
  const int64_t* lengths;  // [B]
  int64_t B;
  int64_t heads;
  float scale;
};

// out: [S, N, d], S = max(Sq, Sk, Sv), written entirely. Checks its arguments.
void zo_attention_packed_f32(const ZoAttentionArgs& a, float* out);

}  // namespace edgelearn

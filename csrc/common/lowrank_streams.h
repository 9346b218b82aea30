// The low-rank term of a LoRA linear layer under P seed-regenerated perturbation streams (zo.h's plan), shared
// by zo_perturbed_linear_f32 (float base) and qlinear_lora_s8 (int8 base). Each caller computes its frozen
// product; this adds, per stream p and row i,
//     y[p, i] = src_i + bias + s * u_{p,i} B_p^T,   u_{p,i} = x_i A^T + sigma_p eps x_i Z_A^T,
//     B_p = B + sigma_p eps Z_B,
// with src_i = shared_base[i] when S = 1, y[p, i] itself when base_in_y, else nothing (the caller adds its frozen
// product afterwards). Streams are grouped by seed (central: the +/- pair); each thread regenerates a group's
// noise into its own scratch. Each output row is computed by one thread in a fixed order: results do not depend
// on the thread count. K = 0 means one unperturbed stream.
#pragma once

#include <cstdint>

#include "edgelearn/philox.h"
#include "edgelearn/zo.h"

namespace edgelearn::lowrank {

struct Plan {
  const float* x;  // [S, n, d]
  int64_t S, n, d;
  const float* A;  // [r, d]
  const float* B;  // [o, r]
  int64_t r, o;
  float scale, eps;
  const uint64_t* seeds;  // [K]
  int64_t K;
  uint64_t layer_id;
  ZoMode mode;
  Dist dist;
};

// Number of streams: 1 when K = 0, else zo_num_streams(mode, K).
int64_t num_streams(const Plan& a);

// Adds the low-rank term of every stream to y [P, n, o] as described above. `stream`: write y with non-temporal
// stores (outputs far larger than the caches).
void add_streams(const Plan& a, const float* shared_base, bool base_in_y, const float* bias, float* y, bool stream);

}  // namespace edgelearn::lowrank

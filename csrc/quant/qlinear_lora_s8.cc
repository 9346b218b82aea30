// qlinear_lora_s8: frozen int8 linear (qgemm_s8) + float LoRA adapter, plain or under P seed-regenerated
// perturbations of the adapter (contract: quant.h).
//
// Plan. x [S*m, k] is quantized once inside qgemm_s8 (xq = clamp(round_half_away(x * (1/sx)), -127, 127)); the base product is one
// qgemm_s8 call (float32 output, bias included): S = 1 into a scratch g [m, n] every stream reads, S = P straight
// into y (P*m rows). The low-rank term follows zo_perturbed_linear_f32's plan and its small kernels exactly:
// streams grouped by seed, a thread regenerates Z_A, Z_B when its group changes, per row
//     c = s (x_i A^T + sigma eps x_i Z_A^T),   y[p, i] = (c_0 B_p^T[0] + ... + c_{r-1} B_p^T[r-1]) + base_i
// so the low-rank term has the same numerics as the float zo kernel. Every output row is computed by one thread
// in a fixed order: results do not depend on the thread count.
#include <omp.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "common/lowrank_streams.h"
#include "edgelearn/common.h"
#include "edgelearn/quant.h"

namespace edgelearn {

namespace {

std::unique_ptr<float[]> scratch(int64_t n) { return std::unique_ptr<float[]>(new float[size_t(std::max<int64_t>(n, 1))]); }


bool overlaps(const void* p, int64_t pbytes, const void* q, int64_t qbytes) {
  if (!p || !q) return false;
  const auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(q);
  return a < b + uintptr_t(qbytes) && b < a + uintptr_t(pbytes);
}

}  // namespace

void qlinear_lora_check_args(const QLoraArgs& a) {
  check(a.x && a.w && a.w_scale && a.A && a.B, "x, W, w_scale, A, B: must not be null");
  qgemm_check_packed(*a.w, "W");
  check(a.m >= 1 && a.k >= 1, "x: dimensions m and k must be >= 1");
  check(a.k == a.w->k, "x: k = " + std::to_string(a.k) + " does not match W's k = " + std::to_string(a.w->k));
  check(a.r >= 1, "A: rank r must be >= 1");
  check(std::isfinite(a.x_scale) && a.x_scale >= FLT_MIN, "x_scale: must be finite, > 0 and a normal float32");
  check(std::isfinite(1.0f / a.x_scale), "x_scale: 1 / x_scale overflows float32");
  check(std::isfinite(a.scale), "scale: must be finite");
  check(a.K >= 0, "seeds: K must be >= 0");
  if (a.K > 0) {
    check(a.seeds != nullptr, "seeds: must not be null");
    check(a.mode == ZoMode::Central || a.mode == ZoMode::Forward, "mode: must be 0 (central) or 1 (forward)");
    check(a.dist == Dist::Gaussian || a.dist == Dist::Rademacher, "dist: must be 0 (gaussian) or 1 (rademacher)");
    check(std::isfinite(a.eps) && a.eps > 0.0f, "eps: must be finite and > 0");
    check(a.layer_id <= (uint64_t(1) << 62), "layer_id: must be in [0, 2^62]");
    checked_mul(a.K, 2, "seeds");
  }
  const int64_t P = qlora_num_streams(a);
  check(a.S == 1 || a.S == P, "x: first dimension S must be 1 (shared input) or P = " + std::to_string(P));
  checked_mul(checked_mul(a.S, a.m, "x"), a.k, "x");
  checked_mul(a.r, a.k, "A");
  checked_mul(a.w->n, a.r, "B");
  const int64_t out = checked_mul(checked_mul(P, a.m, "out"), a.w->n, "out");
  checked_mul(out, int64_t(sizeof(float)), "out");
  check(out <= (int64_t(1) << 40), "out: P*m*n = " + std::to_string(out) + " elements exceeds 2^40");
  for (int64_t j = 0; j < a.w->n; ++j)
    if (!(std::isfinite(a.w_scale[j]) && a.w_scale[j] >= FLT_MIN))
      throw ArgError("w_scale: must be finite, > 0 and a normal float32 (found " + std::to_string(a.w_scale[j]) +
                     " at " + std::to_string(j) + ")");
}

void qlinear_lora_s8(const QLoraArgs& a, float* y) {
  qlinear_lora_check_args(a);
  check(y != nullptr, "out: must not be null");
  const int64_t m = a.m, k = a.k, n = a.w->n, r = a.r, S = a.S;
  const int64_t P = qlora_num_streams(a), rows = S * m;
  const int64_t yb = P * m * n * 4;
  check(!overlaps(y, yb, a.x, rows * k * 4), "out: must not overlap x");
  check(!overlaps(y, yb, a.A, r * k * 4), "out: must not overlap A");
  check(!overlaps(y, yb, a.B, n * r * 4), "out: must not overlap B");
  check(!overlaps(y, yb, a.w_scale, n * 4), "out: must not overlap w_scale");
  check(!overlaps(y, yb, a.bias, a.bias ? n * 4 : 0), "out: must not overlap bias");

  // 1-2. the frozen int8 product (bias included) of x quantized inside qgemm_s8 (finite values only: NaN/inf have
  // no int8 value), exact qgemm_s8 float32 output
  QGemmArgs q;
  q.xf = a.x, q.m = rows, q.k = k, q.x_zero_point = 0, q.x_scale = &a.x_scale, q.x_scale_len = 1;
  q.w = a.w, q.w_scale = a.w_scale, q.bias = a.bias, q.out = QOut::F32;
  std::unique_ptr<float[]> g;
  float* base = y;
  if (S == 1) {
    g = scratch(m * n);
    base = g.get();
  }
  qgemm_s8(q, base);

  // 3. the low-rank term of every stream (zo_perturbed_linear_f32's plan), added to the base rows
  lowrank::Plan plan{a.x, S, m, k, a.A, a.B, r, n, a.scale, a.eps, a.seeds, a.K, a.layer_id, a.mode, a.dist};
  lowrank::add_streams(plan, S == 1 ? g.get() : nullptr, S > 1, nullptr, y, false);
}

}  // namespace edgelearn

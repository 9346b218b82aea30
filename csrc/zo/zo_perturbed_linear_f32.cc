// zo_perturbed_linear_f32: a LoRA linear layer under P seed-regenerated perturbations at once (contract: zo.h).
//
// Plan. Streams are grouped by seed (central: the +/- pair of seed k; forward: the unperturbed stream, then one
// stream per seed). A parallel loop runs over (group, row block) tasks; a thread regenerates Z_A, Z_B of a group's
// seed into its own scratch when its group changes and forms that group's perturbed B_p^T. Per row i, stream p
// (sigma = +1, -1 or 0):
//     u = x_i A^T + sigma eps (x_i Z_A^T)         (x_i A^T computed once when S = 1; x_i Z_A^T once per pair)
//     L = b + (s u_0) B_p^T[0] + ... + (s u_{r-1}) B_p^T[r-1]    (one FMA per term, in order)
// The frozen product g = x W^T is one sgemm. S = 1: g of n rows is computed first into a scratch and every
// stream writes y[p, i] = L + g_i. S = P: the loop writes y[p, i] = L, then ONE stacked sgemm of P*n rows adds
// x W^T into y (beta = 1: BLAS adds its accumulator to y with one rounding, and skips its zeroing pass).
// Each output row is computed by one thread in a fixed order, so y does not depend on the thread count; S = P
// with x[p] all equal computes the same low-rank term as S = 1 and differs only where BLAS sums x W^T in another
// order (OpenBLAS picks kernels by size).
// Outputs larger than kStreamBytes are written with non-temporal stores.
#include <omp.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "common/lowrank_streams.h"
#include "edgelearn/common.h"
#include "edgelearn/zo.h"

namespace edgelearn {

namespace {

// Output above this many bytes is written with non-temporal stores (it cannot stay in cache anyway).
constexpr int64_t kStreamBytes = int64_t(64) << 20;

std::unique_ptr<float[]> scratch(int64_t n) { return std::unique_ptr<float[]>(new float[size_t(n)]); }

bool overlaps(const void* p, int64_t pbytes, const void* q, int64_t qbytes) {
  if (!p || !q) return false;
  const auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(q);
  return a < b + uintptr_t(qbytes) && b < a + uintptr_t(pbytes);
}

}  // namespace

void zo_check_linear_args(const ZoLinearArgs& a) {
  check(a.x && a.W && a.A && a.B && a.seeds, "x, W, A, B, seeds: must not be null");
  check(a.n >= 1 && a.d >= 1, "x: dimensions n and d must be >= 1");
  check(a.o >= 1, "W: number of outputs o must be >= 1");
  check(a.r >= 1, "A: rank r must be >= 1");
  check(a.K >= 1, "seeds: need at least one seed (K >= 1)");
  check(a.mode == ZoMode::Central || a.mode == ZoMode::Forward, "mode: must be 0 (central) or 1 (forward)");
  check(a.dist == Dist::Gaussian || a.dist == Dist::Rademacher, "dist: must be 0 (gaussian) or 1 (rademacher)");
  check(std::isfinite(a.eps) && a.eps > 0.0f, "eps: must be finite and > 0");
  check(std::isfinite(a.scale), "scale: must be finite");
  check(a.layer_id <= (uint64_t(1) << 62), "layer_id: must be in [0, 2^62]");
  checked_mul(a.K, 2, "seeds");
  const int64_t P = zo_num_streams(a.mode, a.K);
  check(a.S == 1 || a.S == P, "x: first dimension S must be 1 (shared input) or P = " + std::to_string(P));
  checked_mul(checked_mul(a.S, a.n, "x"), a.d, "x");
  checked_mul(a.o, a.d, "W");
  checked_mul(a.r, a.d, "A");
  checked_mul(a.o, a.r, "B");
  const int64_t out = checked_mul(checked_mul(P, a.n, "out"), a.o, "out");
  checked_mul(out, int64_t(sizeof(float)), "out");
  check(out <= (int64_t(1) << 40), "out: P*n*o = " + std::to_string(out) + " elements exceeds 2^40");
  const int64_t lim = INT_MAX;
  check(a.d <= lim, "x: d exceeds the 32-bit BLAS interface");
  check(a.o <= lim, "W: o exceeds the 32-bit BLAS interface");
  check(a.S * a.n <= lim, "x: S*n rows exceed the 32-bit BLAS interface");
}

void zo_perturbed_linear_f32(const ZoLinearArgs& a, float* y) {
  zo_check_linear_args(a);
  check(y != nullptr, "out: must not be null");
  const int64_t n = a.n, d = a.d, o = a.o, r = a.r, S = a.S;
  const int64_t P = zo_num_streams(a.mode, a.K);
  const int64_t yb = P * n * o * 4;
  check(!overlaps(y, yb, a.x, S * n * d * 4), "out: must not overlap x");
  check(!overlaps(y, yb, a.W, o * d * 4), "out: must not overlap W");
  check(!overlaps(y, yb, a.b, a.b ? o * 4 : 0), "out: must not overlap b");
  check(!overlaps(y, yb, a.A, r * d * 4), "out: must not overlap A");
  check(!overlaps(y, yb, a.B, o * r * 4), "out: must not overlap B");
  check(!overlaps(y, yb, a.seeds, a.K * 8), "out: must not overlap seeds");
  const bool nt = P * n * o * int64_t(sizeof(float)) >= kStreamBytes;

  // Frozen product, S = 1: once, into a scratch every stream reads. (S = P: at the end, accumulated into y.)
  std::unique_ptr<float[]> g;
  if (S == 1) {
    g = scratch(n * o);
    sgemm_rowmajor(false, true, n, o, d, 1.0f, a.x, d, a.W, d, 0.0f, g.get(), o);
  }
  // The low-rank term of every stream, plus b, plus the frozen product when S = 1.
  lowrank::Plan plan{a.x, S, n, d, a.A, a.B, r, o, a.scale, a.eps, a.seeds, a.K, a.layer_id, a.mode, a.dist};
  lowrank::add_streams(plan, S == 1 ? g.get() : nullptr, false, a.b, y, nt);
  // S = P: y holds b + s u_p B_p^T; one stacked sgemm of P*n rows adds x W^T (beta = 1 also spares BLAS its
  // zeroing pass over y).
  if (S > 1) sgemm_rowmajor(false, true, P * n, o, d, 1.0f, a.x, d, a.W, d, 1.0f, y, o);
}

}  // namespace edgelearn

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

#include "common/small_kernels.h"
#include "edgelearn/common.h"
#include "edgelearn/zo.h"

namespace edgelearn {

namespace {

// Output above this many bytes is written with non-temporal stores (it cannot stay in cache anyway).
constexpr int64_t kStreamBytes = int64_t(64) << 20;
// Below this many (multiply-add equivalent) operations the loop runs on the calling thread.
constexpr double kParallelWork = 2e5;

struct Stream {
  int64_t p;    // output stream index
  float sigma;  // +1, -1 or 0 (unperturbed)
};

struct Group {
  int64_t seed;  // index into seeds, -1 for the unperturbed stream
  int nstreams;
  Stream s[2];
};

Group group_of(ZoMode mode, int64_t g) {
  if (mode == ZoMode::Central) return {g, 2, {{2 * g, 1.0f}, {2 * g + 1, -1.0f}}};
  if (g == 0) return {-1, 1, {{0, 0.0f}, {0, 0.0f}}};
  return {g - 1, 1, {{g, 1.0f}, {0, 0.0f}}};
}

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
  const int64_t G = a.mode == ZoMode::Central ? a.K : a.K + 1;
  const uint64_t streamA = zo_stream(a.layer_id, 0), streamB = zo_stream(a.layer_id, 1);
  const bool nt = P * n * o * int64_t(sizeof(float)) >= kStreamBytes;

  // Frozen product, S = 1: once, into a scratch every stream reads. (S = P: at the end, accumulated into y.)
  std::unique_ptr<float[]> g;
  if (S == 1) {
    g = scratch(n * o);
    sgemm_rowmajor(false, true, n, o, d, 1.0f, a.x, d, a.W, d, 0.0f, g.get(), o);
  }
  // B^T [r, o], shared; x A^T [n, r] when S = 1.
  std::unique_ptr<float[]> BT = scratch(r * o), U0;
  small::transpose(a.B, o, r, BT.get());
  if (S == 1) U0 = scratch(n * r);

  // Tasks: (group, row block), group-major, so a thread's contiguous share switches seeds rarely.
  const int nth = std::max(1, omp_get_max_threads());
  int64_t rb = std::max<int64_t>(8, std::min<int64_t>(64, (n * G + 4 * nth - 1) / (4 * nth)));
  rb = (rb + 1) / 2 * 2;
  const int64_t nrb = (n + rb - 1) / rb, ntask = G * nrb;
  const float sc = a.scale, eps = a.eps;

  // Small layers run on the calling thread: waking a team costs more than they take (and a lot more on a busy
  // machine). Results are the same either way.
  const double work = double(P) * double(n) * double(r) * double(o + 2 * d) + double(G) * double(r) * double(d + o) * 20;
#pragma omp parallel if (work > kParallelWork)
  {
    if (S == 1) {
#pragma omp for schedule(static)
      for (int64_t b0 = 0; b0 < nrb; ++b0) {
        const int64_t i0 = b0 * rb, i1 = std::min(n, i0 + rb);
        small::dot_rows(a.x + i0 * d, i1 - i0, d, a.A, r, d, U0.get() + i0 * r, r);
      }
    }
    // AZ = [A; Z_A] (2r x d): S = P computes x_i A^T and x_i Z_A^T in one pass over x_i.
    std::unique_ptr<float[]> AZ = scratch(2 * r * d), ZB = scratch(o * r), ZBT = scratch(r * o),
                             Bp = scratch(2 * r * o);
    std::copy(a.A, a.A + r * d, AZ.get());
    float* const ZA = AZ.get() + r * d;
    std::vector<float> UV(static_cast<size_t>(2 * r * rb)), c(static_cast<size_t>(r));
    int64_t cur = -2;  // group whose noise the scratch holds
    // Dynamic in runs of row blocks of one group: a descheduled thread (shared machines) does not hold up the
    // others, and a thread mostly stays on one seed. Which thread runs a task does not change its result.
#pragma omp for schedule(dynamic, std::max<int64_t>(1, nrb / 2))
    for (int64_t task = 0; task < ntask; ++task) {
      const int64_t gi = task / nrb, i0 = (task % nrb) * rb, i1 = std::min(n, i0 + rb), m = i1 - i0;
      const Group grp = group_of(a.mode, gi);
      const bool perturbed = grp.seed >= 0;
      if (perturbed && cur != gi) {
        const uint64_t seed = a.seeds[grp.seed];
        philox_fill(seed, streamA, 0, r * d, a.dist, ZA);
        philox_fill(seed, streamB, 0, o * r, a.dist, ZB.get());
        small::transpose(ZB.get(), o, r, ZBT.get());
        for (int q = 0; q < grp.nstreams; ++q)
          small::axpy_f32(Bp.get() + q * r * o, BT.get(), grp.s[q].sigma * eps, ZBT.get(), r * o);
      }
      cur = gi;
      if (S == 1 && perturbed) small::dot_rows(a.x + i0 * d, m, d, ZA, r, d, UV.data(), r);
      for (int q = 0; q < grp.nstreams; ++q) {
        const int64_t p = grp.s[q].p;
        const float se = grp.s[q].sigma * eps;
        const float* bt = perturbed ? Bp.get() + q * r * o : BT.get();
        // u0 [m, r] (row stride ld) = x A^T, v = x Z_A^T
        const float *u0, *v;
        int64_t ld;
        if (S == 1) {
          u0 = U0.get() + i0 * r, v = UV.data(), ld = r;
        } else {
          const int64_t rows = perturbed ? 2 * r : r;
          small::dot_rows(a.x + (p * n + i0) * d, m, d, AZ.get(), rows, d, UV.data(), rows);
          u0 = UV.data(), v = UV.data() + r, ld = rows;
        }
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < r; ++j)
            c[j] = sc * (perturbed ? u0[i * ld + j] + se * v[i * ld + j] : u0[i * ld + j]);
          float* dst = y + (p * n + i0 + i) * o;
          small::rank_update_row(S == 1 ? g.get() + (i0 + i) * o : nullptr, a.b, c.data(), bt, r, o, dst, nt);
        }
      }
    }
    if (nt) small::stream_fence();
  }
  // S = P: y holds b + s u_p B_p^T; one stacked sgemm of P*n rows adds x W^T (beta = 1 also spares BLAS its
  // zeroing pass over y).
  if (S > 1) sgemm_rowmajor(false, true, P * n, o, d, 1.0f, a.x, d, a.W, d, 1.0f, y, o);
}

}  // namespace edgelearn

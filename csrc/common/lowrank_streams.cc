// The shared low-rank stream loop (see lowrank_streams.h).
#include "common/lowrank_streams.h"

#include <omp.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "common/small_kernels.h"

namespace edgelearn::lowrank {

namespace {

// Below this many (multiply-add equivalent) operations the loop runs on the calling thread: waking a team costs
// more than small layers take (and a lot more on a busy machine). Results are the same either way.
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

Group group_of(const Plan& a, int64_t g) {
  if (a.K == 0) return {-1, 1, {{0, 0.0f}, {0, 0.0f}}};
  if (a.mode == ZoMode::Central) return {g, 2, {{2 * g, 1.0f}, {2 * g + 1, -1.0f}}};
  if (g == 0) return {-1, 1, {{0, 0.0f}, {0, 0.0f}}};
  return {g - 1, 1, {{g, 1.0f}, {0, 0.0f}}};
}

std::unique_ptr<float[]> scratch(int64_t n) {
  return std::unique_ptr<float[]>(new float[size_t(std::max<int64_t>(n, 1))]);
}

}  // namespace

int64_t num_streams(const Plan& a) { return a.K == 0 ? 1 : zo_num_streams(a.mode, a.K); }

void add_streams(const Plan& a, const float* shared_base, bool base_in_y, const float* bias, float* y, bool stream) {
  const int64_t n = a.n, d = a.d, o = a.o, r = a.r, S = a.S;
  const int64_t P = num_streams(a);
  const int64_t G = a.K == 0 ? 1 : a.mode == ZoMode::Central ? a.K : a.K + 1;
  const uint64_t streamA = zo_stream(a.layer_id, 0), streamB = zo_stream(a.layer_id, 1);

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
    const bool any_noise = a.K > 0;
    std::unique_ptr<float[]> AZ = scratch((any_noise ? 2 : 1) * r * d), ZB, ZBT, Bp;
    if (any_noise) ZB = scratch(o * r), ZBT = scratch(r * o), Bp = scratch(2 * r * o);
    std::copy(a.A, a.A + r * d, AZ.get());
    float* const ZA = AZ.get() + r * d;
    std::vector<float> UV(static_cast<size_t>(2 * r * rb)), c(static_cast<size_t>(r));
    int64_t cur = -2;  // group whose noise the scratch holds
    // Dynamic in runs of row blocks of one group: a descheduled thread (shared machines) does not hold up the
    // others, and a thread mostly stays on one seed. Which thread runs a task does not change its result.
#pragma omp for schedule(dynamic, std::max<int64_t>(1, nrb / 2))
    for (int64_t task = 0; task < ntask; ++task) {
      const int64_t gi = task / nrb, i0 = (task % nrb) * rb, i1 = std::min(n, i0 + rb), m = i1 - i0;
      const Group grp = group_of(a, gi);
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
            c[size_t(j)] = sc * (perturbed ? u0[i * ld + j] + se * v[i * ld + j] : u0[i * ld + j]);
          float* dst = y + (p * n + i0 + i) * o;
          const float* src = S == 1 ? shared_base + (i0 + i) * o : base_in_y ? dst : nullptr;
          small::rank_update_row(src, bias, c.data(), bt, r, o, dst, stream);
        }
      }
    }
    if (stream) small::stream_fence();
  }
}

}  // namespace edgelearn::lowrank

// zo_replay_seeds_f32: param += sum_k coefs[k] * Z(seeds[k], layer_id, slot), in place (contract: zo.h).
//
// One pass over param in fixed chunks (parallel over chunks): per chunk, the noise of each seed is generated
// into a small buffer and accumulated in double in seed order, then param is updated with one rounding, as
// the NumPy twin does. Chunks are fixed, so the result does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "common/small_kernels.h"
#include "edgelearn/common.h"
#include "edgelearn/zo.h"

namespace edgelearn {

namespace {
constexpr int64_t kChunk = 2048;  // elements per task: acc (16 KB) and one seed's noise (8 KB) stay in L1
}  // namespace

void zo_replay_seeds_f32(float* param, int64_t numel, const uint64_t* seeds, const float* coefs, int64_t K,
                         uint64_t layer_id, uint64_t slot, Dist dist) {
  check(param != nullptr && numel >= 1, "param: must be a non-empty array");
  check(seeds != nullptr && K >= 1, "seeds: need at least one seed (K >= 1)");
  check(coefs != nullptr, "coefs: must not be null");
  checked_mul(K, 8, "seeds");
  // Copies: seeds and coefs may alias param.
  const std::vector<uint64_t> sd(seeds, seeds + K);
  const std::vector<float> cf(coefs, coefs + K);
  for (int64_t k = 0; k < K; ++k) check(std::isfinite(cf[k]), "coefs: must be finite (found NaN or inf)");
  check(layer_id <= (uint64_t(1) << 62), "layer_id: must be in [0, 2^62]");
  check(slot <= 1, "slot: must be 0 (A / weight) or 1 (B / bias)");
  check(dist == Dist::Gaussian || dist == Dist::Rademacher, "dist: must be 0 (gaussian) or 1 (rademacher)");
  const uint64_t stream = zo_stream(layer_id, slot);
  const int64_t nchunk = (numel + kChunk - 1) / kChunk;
#pragma omp parallel if (nchunk > 1 && double(numel) * double(K) > 32768.0)
  {
    std::unique_ptr<double[]> acc(new double[kChunk]);
    std::unique_ptr<float[]> z(new float[kChunk]);
#pragma omp for schedule(static)
    for (int64_t ci = 0; ci < nchunk; ++ci) {
      const int64_t i0 = ci * kChunk, m = std::min(kChunk, numel - i0);
      std::fill(acc.get(), acc.get() + m, 0.0);
      for (int64_t k = 0; k < K; ++k) {
        philox_fill(sd[size_t(k)], stream, uint64_t(i0), m, dist, z.get());
        small::axpy_f64(acc.get(), z.get(), double(cf[size_t(k)]), m);
      }
      small::add_round_f32(param + i0, acc.get(), m);
    }
  }
}

}  // namespace edgelearn

// Philox fills (see edgelearn/philox.h for the derivation); the rng_*_f32 / rng_philox_u32 kernels.
#include "edgelearn/philox.h"

#include "edgelearn/common.h"

namespace edgelearn {

void philox_fill(uint64_t seed, uint64_t stream, uint64_t start, int64_t count, Dist dist, float* out) {
  int64_t i = 0;
  while (i < count) {
    const uint64_t idx = start + uint64_t(i);
    const uint64_t block = idx / 4;
    const int w0 = int(idx % 4);
    float v[4];
    philox_block_values(seed, stream, block, dist, v);
    for (int w = w0; w < 4 && i < count; ++w) out[i++] = v[w];
  }
}

void philox_fill_bits(uint64_t seed, uint64_t stream, uint64_t start, int64_t count, uint32_t* out) {
  int64_t i = 0;
  while (i < count) {
    const uint64_t idx = start + uint64_t(i);
    const Philox4x32 b = philox_block(seed, stream, idx / 4);
    for (int w = int(idx % 4); w < 4 && i < count; ++w) out[i++] = b.v[w];
  }
}

}  // namespace edgelearn

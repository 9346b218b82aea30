// Philox fills (see edgelearn/philox.h for the derivation); the rng_*_f32 / rng_philox_u32 kernels.
// The work is done by the run-time dispatched SIMD fills of common/philox_simd.cc (scalar path included).
#include "edgelearn/philox.h"

#include "common/philox_simd.h"

namespace edgelearn {

void philox_fill(uint64_t seed, uint64_t stream, uint64_t start, int64_t count, Dist dist, float* out) {
  simd::philox_fill(seed, stream, start, count, dist, out);
}

void philox_fill_bits(uint64_t seed, uint64_t stream, uint64_t start, int64_t count, uint32_t* out) {
  simd::philox_fill_bits(seed, stream, start, count, out);
}

}  // namespace edgelearn

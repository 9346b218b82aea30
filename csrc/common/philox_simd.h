// Vectorised Philox fills: the same values as philox.h's scalar derivation, 16 (AVX-512) or 8 (AVX2) counter
// blocks at a time, the SIMD level chosen at run time (a scalar path is always compiled).
//
// Integer words and the uniform / rademacher values are bit-exact with the scalar path. Gaussian values run
// Box-Muller in double precision with fdlibm's log, sin and cos kernels (polynomials on reduced arguments,
// < 1 double ULP; the angle is reduced with a three-part pi/2 so values near a zero of cos/sin keep their
// relative accuracy): the float32 results equal libm's / NumPy's except when the double value lies within a
// few double ULP of a float32 rounding boundary (about 1 value in 10^8), and then differ by 1 ULP.
#pragma once

#include <cstdint>

#include "edgelearn/philox.h"

namespace edgelearn::simd {

// Elements [start, start + count) of stream (seed, stream) in `dist`, into out[0..count). Any start.
void philox_fill(uint64_t seed, uint64_t stream, uint64_t start, int64_t count, Dist dist, float* out);

// Raw words [start, start + count) of stream (seed, stream), into out[0..count).
void philox_fill_bits(uint64_t seed, uint64_t stream, uint64_t start, int64_t count, uint32_t* out);

// Words of counter blocks [first_block, first_block + nblocks) (block numbers wrap modulo 2^64): out[4 b + w] is
// word w of block first_block + b. Every 64-bit block number is reachable here (the element API stops at 2^62),
// so the Random123 known answers can be checked through the SIMD paths.
void philox_blocks(uint64_t seed, uint64_t stream, uint64_t first_block, int64_t nblocks, uint32_t* out);

// The path philox_fill takes on this CPU: "avx512", "avx2" or "scalar". force_level(...) is for tests and
// benchmarks: "scalar", "avx2", "avx512" (clamped to what the CPU supports) or "" (the best one).
const char* philox_level();
void philox_force_level(const char* level);

}  // namespace edgelearn::simd

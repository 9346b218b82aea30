// Philox4x32-10 counter-based random numbers: the randomness contract of edgelearn.
//
// Why counter-based: a perturbation direction Z is a pure function of (seed, stream, element index). A client
// and a server that share a seed regenerate the same Z without storing or sending it, each thread computes its
// own slice with no shared state, and results cannot depend on thread count or chunking.
//
// Generator (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11; Random123):
//   counter c = (c0, c1, c2, c3), key k = (k0, k1), all uint32.
//   round:   (hi0, lo0) = mulhilo32(0xD2511F53, c0);  (hi1, lo1) = mulhilo32(0xCD9E8D57, c2)
//            c = (hi1 ^ c1 ^ k0,  lo1,  hi0 ^ c3 ^ k1,  lo0)
//   key bump between rounds: k0 += 0x9E3779B9, k1 += 0xBB67AE85 (before rounds 2..10)
//   Known answers (Random123 kat_vectors), checked by tests/kernels/test_rng.py:
//     c=0,0,0,0 k=0,0                               -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8
//     c=ffffffff x4 k=ffffffff x2                   -> 408f276d 41c83b0e a20bc7c6 6d5451fd
//     c=243f6a88 85a308d3 13198a2e 03707344
//       k=a4093822 299f31d0                         -> d16cfe09 94fdcceb 5001e420 24126ea1
//
// edgelearn's mapping (seed: uint64, stream: uint64, element index i: uint64, 0-based):
//   key     = (lo32(seed), hi32(seed))
//   block   = i / 4, word = i % 4
//   counter = (lo32(block), hi32(block), lo32(stream), hi32(stream))
//   bits(i) = philox(counter, key)[word]                                  -- uint32, bit-exact everywhere
//
// Distributions, element i of stream (seed, stream):
//   uniform     u(i)  = ((bits(i) >> 9) + 0.5) * 2^-23                    -- float32 in (0, 1), exact
//   rademacher  r(i)  = +1 if the top bit of bits(i) is 0, else -1        -- float32, exact
//   gaussian    Box-Muller on the pairs of a block: words (0,1) give elements 4b, 4b+1; words (2,3) give
//               4b+2, 4b+3. For a pair (x, y) of bits, in double precision:
//                 a = (x + 0.5) * 2^-32,  t = (y + 0.5) * 2^-32           -- both exact, in (0, 1)
//                 rho = sqrt(-2 log a)
//                 z_even = rho * cos(2 pi t),  z_odd = rho * sin(2 pi t)  -- then rounded to float32
//               Computed in double, the float32 results agree with any correct double implementation
//               (NumPy's included) to within 1 ULP; |z| <= sqrt(-2 log 2^-33) ~ 6.76.
//
// Perturbation streams of the zo kernels: Z(seed, layer_id, slot) uses stream = 2 * layer_id + slot,
// slot 0 for a LoRA A matrix (or a plain weight), slot 1 for a LoRA B matrix (or a bias). Element i is the
// row-major flat index into the tensor.
#pragma once

#include <cmath>
#include <cstdint>

namespace edgelearn {

enum class Dist : int { Gaussian = 0, Rademacher = 1, Uniform = 2 };

struct Philox4x32 {
  uint32_t v[4];
};

inline void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// Philox4x32-10 of one counter block.
inline Philox4x32 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c0, hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  return {{c0, c1, c2, c3}};
}

// The four uint32 words of block `block` of stream (seed, stream).
inline Philox4x32 philox_block(uint64_t seed, uint64_t stream, uint64_t block) {
  return philox4x32_10(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                       static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32),
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

inline float philox_uniform(uint32_t x) { return (static_cast<float>(x >> 9) + 0.5f) * (1.0f / 8388608.0f); }

inline float philox_rademacher(uint32_t x) { return (x >> 31) ? -1.0f : 1.0f; }

// Box-Muller of one pair of words: writes z_even, z_odd.
inline void philox_gaussian_pair(uint32_t x, uint32_t y, float& z_even, float& z_odd) {
  const double a = (static_cast<double>(x) + 0.5) * (1.0 / 4294967296.0);
  const double t = (static_cast<double>(y) + 0.5) * (1.0 / 4294967296.0);
  const double rho = std::sqrt(-2.0 * std::log(a));
  const double angle = 6.283185307179586 * t;  // 2 pi, rounded to double as NumPy's 2*np.pi
  z_even = static_cast<float>(rho * std::cos(angle));
  z_odd = static_cast<float>(rho * std::sin(angle));
}

// The four float32 values of block `block` in distribution `dist`.
inline void philox_block_values(uint64_t seed, uint64_t stream, uint64_t block, Dist dist, float out[4]) {
  const Philox4x32 b = philox_block(seed, stream, block);
  switch (dist) {
    case Dist::Gaussian:
      philox_gaussian_pair(b.v[0], b.v[1], out[0], out[1]);
      philox_gaussian_pair(b.v[2], b.v[3], out[2], out[3]);
      break;
    case Dist::Rademacher:
      for (int w = 0; w < 4; ++w) out[w] = philox_rademacher(b.v[w]);
      break;
    case Dist::Uniform:
      for (int w = 0; w < 4; ++w) out[w] = philox_uniform(b.v[w]);
      break;
  }
}

// Elements [start, start + count) of stream (seed, stream) in distribution `dist`, written to out[0..count).
// Any start is allowed: the block containing it is generated and the words before start are skipped.
void philox_fill(uint64_t seed, uint64_t stream, uint64_t start, int64_t count, Dist dist, float* out);

// Same for raw uint32 bits.
void philox_fill_bits(uint64_t seed, uint64_t stream, uint64_t start, int64_t count, uint32_t* out);

inline uint64_t zo_stream(uint64_t layer_id, uint64_t slot) { return 2 * layer_id + slot; }

}  // namespace edgelearn

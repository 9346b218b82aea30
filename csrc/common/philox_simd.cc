// Vectorised Philox fills (see philox_simd.h; the derivation is in edgelearn/philox.h).
//
// Layout: a group of L counter blocks (L = 16 for AVX-512, 8 for AVX2) is held as four vectors w0..w3, lane j
// holding word w of block (first + j). Gaussian pairs (w0, w1) and (w2, w3) go through Box-Muller in double,
// L/2 lanes at a time; the four result vectors are then transposed to element order (block-major).
#include "common/philox_simd.h"

#include "edgelearn/common.h"

#include <immintrin.h>

#include <atomic>
#include <cstring>
#include <string>

namespace edgelearn::simd {

namespace {

constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

// fdlibm constants (e_log.c, k_sin.c, k_cos.c, e_rem_pio2.c).
constexpr double kLn2Hi = 6.93147180369123816490e-01, kLn2Lo = 1.90821492927058770002e-10;
constexpr double kLg1 = 6.666666666666735130e-01, kLg2 = 3.999999999940941908e-01,
                 kLg3 = 2.857142874366239149e-01, kLg4 = 2.222219843214978396e-01,
                 kLg5 = 1.818357216161805012e-01, kLg6 = 1.531383769920937332e-01,
                 kLg7 = 1.479819860511658591e-01;
constexpr double kS1 = -1.66666666666666324348e-01, kS2 = 8.33333333332248946124e-03,
                 kS3 = -1.98412698298579493134e-04, kS4 = 2.75573137070700676789e-06,
                 kS5 = -2.50507602534068634195e-08, kS6 = 1.58969099521155010221e-10;
constexpr double kC1 = 4.16666666666666019037e-02, kC2 = -1.38888888888741095749e-03,
                 kC3 = 2.48015872894767294178e-05, kC4 = -2.75573143513906633035e-07,
                 kC5 = 2.08757232129817482790e-09, kC6 = -1.13596475577881948265e-11;
constexpr double kPio2_1 = 1.57079632673412561417e+00, kPio2_2 = 6.07710050630396597660e-11,
                 kPio2_2t = 2.02226624879595063154e-21, kInvPio2 = 6.36619772367581382433e-01;
constexpr double kSqrt2 = 1.41421356237309514547, kTwoPi = 6.283185307179586, kTwoM32 = 1.0 / 4294967296.0;

// ---------------------------------------------------------------------------------------------- scalar
void fill_scalar(uint64_t seed, uint64_t stream, uint64_t start, int64_t count, Dist dist, float* out) {
  int64_t i = 0;
  while (i < count) {
    const uint64_t idx = start + uint64_t(i);
    float v[4];
    philox_block_values(seed, stream, idx / 4, dist, v);
    for (int w = int(idx % 4); w < 4 && i < count; ++w) out[i++] = v[w];
  }
}

void bits_scalar(uint64_t seed, uint64_t stream, uint64_t start, int64_t count, uint32_t* out) {
  int64_t i = 0;
  while (i < count) {
    const uint64_t idx = start + uint64_t(i);
    const Philox4x32 b = philox_block(seed, stream, idx / 4);
    for (int w = int(idx % 4); w < 4 && i < count; ++w) out[i++] = b.v[w];
  }
}

// Shared driver: `group(first_block, vals)` writes the 4*L values of blocks [first_block, first_block + L)
// in element order; whole groups inside [start, start + count) go straight to out, the edges via a buffer.
template <int L, typename T, typename Group>
inline void drive(uint64_t start, int64_t count, T* out, Group group) {
  if (count <= 0) return;
  const uint64_t end = start + uint64_t(count);
  uint64_t block = start / 4;
  alignas(64) T buf[4 * L];
  while (4 * block < end) {
    const uint64_t e0 = 4 * block, e1 = e0 + 4 * L;  // elements of this group
    if (e0 >= start && e1 <= end) {
      group(block, out + (e0 - start));
    } else {
      group(block, buf);
      const uint64_t lo = e0 > start ? e0 : start, hi = e1 < end ? e1 : end;
      std::memcpy(out + (lo - start), buf + (lo - e0), (hi - lo) * sizeof(T));
    }
    block += L;
  }
}

// ---------------------------------------------------------------------------------------------- AVX-512
#define EL_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma")))

EL_AVX512 inline void mulhilo16(__m512i a, __m512i m, __m512i& hi, __m512i& lo) {
  const __m512i pe = _mm512_mul_epu32(a, m);
  const __m512i po = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
  lo = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 32), po);
}

// Words of blocks [block, block + 16): w[k] lane j = word k of block + j.
EL_AVX512 inline void philox16(uint64_t seed, uint64_t stream, uint64_t block, __m512i w[4]) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32(int(uint32_t(block))), lane);
  const __mmask16 carry = _mm512_cmplt_epu32_mask(c0, lane);
  __m512i c1 = _mm512_mask_add_epi32(_mm512_set1_epi32(int(uint32_t(block >> 32))), carry,
                                     _mm512_set1_epi32(int(uint32_t(block >> 32))), _mm512_set1_epi32(1));
  __m512i c2 = _mm512_set1_epi32(int(uint32_t(stream))), c3 = _mm512_set1_epi32(int(uint32_t(stream >> 32)));
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  const __m512i m0 = _mm512_set1_epi32(int(kM0)), m1 = _mm512_set1_epi32(int(kM1));
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    __m512i hi0, lo0, hi1, lo1;
    mulhilo16(c0, m0, hi0, lo0);
    mulhilo16(c2, m1, hi1, lo1);
    c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32(int(k0)));
    c1 = lo1;
    c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32(int(k1)));
    c3 = lo0;
  }
  w[0] = c0;
  w[1] = c1;
  w[2] = c2;
  w[3] = c3;
}

// (w0, w1, w2, w3) per lane -> element order: out[4j + k] = w[k] lane j.
EL_AVX512 inline void transpose_store16(const __m512i w[4], void* out) {
  const __m512i t0 = _mm512_unpacklo_epi32(w[0], w[1]), t1 = _mm512_unpackhi_epi32(w[0], w[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(w[2], w[3]), t3 = _mm512_unpackhi_epi32(w[2], w[3]);
  const __m512i r0 = _mm512_unpacklo_epi64(t0, t2), r1 = _mm512_unpackhi_epi64(t0, t2);
  const __m512i r2 = _mm512_unpacklo_epi64(t1, t3), r3 = _mm512_unpackhi_epi64(t1, t3);
  const __m512i s0 = _mm512_shuffle_i32x4(r0, r1, _MM_SHUFFLE(1, 0, 1, 0));
  const __m512i s1 = _mm512_shuffle_i32x4(r2, r3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m512i s2 = _mm512_shuffle_i32x4(r0, r1, _MM_SHUFFLE(3, 2, 3, 2));
  const __m512i s3 = _mm512_shuffle_i32x4(r2, r3, _MM_SHUFFLE(3, 2, 3, 2));
  char* o = static_cast<char*>(out);
  _mm512_storeu_si512(o, _mm512_shuffle_i32x4(s0, s1, _MM_SHUFFLE(2, 0, 2, 0)));
  _mm512_storeu_si512(o + 64, _mm512_shuffle_i32x4(s0, s1, _MM_SHUFFLE(3, 1, 3, 1)));
  _mm512_storeu_si512(o + 128, _mm512_shuffle_i32x4(s2, s3, _MM_SHUFFLE(2, 0, 2, 0)));
  _mm512_storeu_si512(o + 192, _mm512_shuffle_i32x4(s2, s3, _MM_SHUFFLE(3, 1, 3, 1)));
}

// log(a) for a in (0, 1), positive normal: fdlibm's e_log.c.
EL_AVX512 inline __m512d log8(__m512d a) {
  __m512d k = _mm512_getexp_pd(a);
  __m512d m = _mm512_getmant_pd(a, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
  const __mmask8 big = _mm512_cmp_pd_mask(m, _mm512_set1_pd(kSqrt2), _CMP_GT_OQ);
  m = _mm512_mask_mul_pd(m, big, m, _mm512_set1_pd(0.5));
  k = _mm512_mask_add_pd(k, big, k, _mm512_set1_pd(1.0));
  const __m512d one = _mm512_set1_pd(1.0);
  const __m512d f = _mm512_sub_pd(m, one);
  const __m512d s = _mm512_div_pd(f, _mm512_add_pd(_mm512_set1_pd(2.0), f));
  const __m512d z = _mm512_mul_pd(s, s), w = _mm512_mul_pd(z, z);
  const __m512d t1 = _mm512_mul_pd(
      w, _mm512_fmadd_pd(w, _mm512_fmadd_pd(w, _mm512_set1_pd(kLg6), _mm512_set1_pd(kLg4)), _mm512_set1_pd(kLg2)));
  const __m512d t2 = _mm512_mul_pd(
      z, _mm512_fmadd_pd(
             w, _mm512_fmadd_pd(w, _mm512_fmadd_pd(w, _mm512_set1_pd(kLg7), _mm512_set1_pd(kLg5)),
                                _mm512_set1_pd(kLg3)),
             _mm512_set1_pd(kLg1)));
  const __m512d R = _mm512_add_pd(t2, t1);
  const __m512d hfsq = _mm512_mul_pd(_mm512_mul_pd(_mm512_set1_pd(0.5), f), f);
  // k*ln2_hi - ((hfsq - (s*(hfsq+R) + k*ln2_lo)) - f)
  const __m512d inner = _mm512_fmadd_pd(k, _mm512_set1_pd(kLn2Lo), _mm512_mul_pd(s, _mm512_add_pd(hfsq, R)));
  return _mm512_sub_pd(_mm512_mul_pd(k, _mm512_set1_pd(kLn2Hi)), _mm512_sub_pd(_mm512_sub_pd(hfsq, inner), f));
}

// cos(x), sin(x) for x in [0, 2 pi + 1): Cody-Waite reduction by pi/2 in three parts, fdlibm kernels.
EL_AVX512 inline void sincos8(__m512d x, __m512d& c, __m512d& s) {
  const __m512d q = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(kInvPio2)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512d r = _mm512_fnmadd_pd(q, _mm512_set1_pd(kPio2_1), x);
  r = _mm512_fnmadd_pd(q, _mm512_set1_pd(kPio2_2), r);
  r = _mm512_fnmadd_pd(q, _mm512_set1_pd(kPio2_2t), r);
  const __m512d z = _mm512_mul_pd(r, r);
  // sin kernel: r + r^3 (S1 + z (S2 + z (S3 + z (S4 + z (S5 + z S6)))))
  __m512d ps = _mm512_fmadd_pd(z, _mm512_set1_pd(kS6), _mm512_set1_pd(kS5));
  ps = _mm512_fmadd_pd(z, ps, _mm512_set1_pd(kS4));
  ps = _mm512_fmadd_pd(z, ps, _mm512_set1_pd(kS3));
  ps = _mm512_fmadd_pd(z, ps, _mm512_set1_pd(kS2));
  const __m512d v = _mm512_mul_pd(z, r);
  const __m512d sn = _mm512_fmadd_pd(v, _mm512_fmadd_pd(z, ps, _mm512_set1_pd(kS1)), r);
  // cos kernel: w + (((1 - w) - hz) + z r_c), w = 1 - hz, hz = z / 2
  __m512d pc = _mm512_fmadd_pd(z, _mm512_set1_pd(kC6), _mm512_set1_pd(kC5));
  pc = _mm512_fmadd_pd(z, pc, _mm512_set1_pd(kC4));
  pc = _mm512_fmadd_pd(z, pc, _mm512_set1_pd(kC3));
  pc = _mm512_fmadd_pd(z, pc, _mm512_set1_pd(kC2));
  pc = _mm512_fmadd_pd(z, pc, _mm512_set1_pd(kC1));
  const __m512d one = _mm512_set1_pd(1.0);
  const __m512d hz = _mm512_mul_pd(_mm512_set1_pd(0.5), z), w = _mm512_sub_pd(one, hz);
  const __m512d cs =
      _mm512_add_pd(w, _mm512_fmadd_pd(_mm512_mul_pd(z, z), pc, _mm512_sub_pd(_mm512_sub_pd(one, w), hz)));
  // quadrant n = q mod 4 (q in 0..4): swap for odd n; cos negative for n = 1, 2; sin negative for n = 2, 3.
  const __m512i n = _mm512_cvtpd_epi64(q);
  const __mmask8 odd = _mm512_test_epi64_mask(n, _mm512_set1_epi64(1));
  const __mmask8 negc = _mm512_test_epi64_mask(_mm512_add_epi64(n, _mm512_set1_epi64(1)), _mm512_set1_epi64(2));
  const __mmask8 negs = _mm512_test_epi64_mask(n, _mm512_set1_epi64(2));
  const __m512d cc = _mm512_mask_blend_pd(odd, cs, sn), ss = _mm512_mask_blend_pd(odd, sn, cs);
  const __m512d sign = _mm512_set1_pd(-0.0);
  c = _mm512_mask_xor_pd(cc, negc, cc, sign);
  s = _mm512_mask_xor_pd(ss, negs, ss, sign);
}

// Box-Muller of 8 pairs (x, y) of words given as the low 8 lanes of u32 vectors: float32 (z_even, z_odd).
EL_AVX512 inline void box_muller8(__m256i x, __m256i y, __m256& ze, __m256& zo) {
  const __m512d half = _mm512_set1_pd(0.5), scale = _mm512_set1_pd(kTwoM32);
  const __m512d a = _mm512_mul_pd(_mm512_add_pd(_mm512_cvtepu32_pd(x), half), scale);
  const __m512d t = _mm512_mul_pd(_mm512_add_pd(_mm512_cvtepu32_pd(y), half), scale);
  const __m512d rho = _mm512_sqrt_pd(_mm512_mul_pd(_mm512_set1_pd(-2.0), log8(a)));
  __m512d c, s;
  sincos8(_mm512_mul_pd(_mm512_set1_pd(kTwoPi), t), c, s);
  ze = _mm512_cvtpd_ps(_mm512_mul_pd(rho, c));
  zo = _mm512_cvtpd_ps(_mm512_mul_pd(rho, s));
}

EL_AVX512 inline __m512i gaussian_pair16(__m512i x, __m512i y, __m512i& zo_out) {
  __m256 e_lo, o_lo, e_hi, o_hi;
  box_muller8(_mm512_castsi512_si256(x), _mm512_castsi512_si256(y), e_lo, o_lo);
  box_muller8(_mm512_extracti64x4_epi64(x, 1), _mm512_extracti64x4_epi64(y, 1), e_hi, o_hi);
  zo_out = _mm512_castps_si512(_mm512_insertf32x8(_mm512_castps256_ps512(o_lo), o_hi, 1));
  return _mm512_castps_si512(_mm512_insertf32x8(_mm512_castps256_ps512(e_lo), e_hi, 1));
}

EL_AVX512 void group16(uint64_t seed, uint64_t stream, uint64_t block, Dist dist, float* out) {
  __m512i w[4];
  philox16(seed, stream, block, w);
  switch (dist) {
    case Dist::Gaussian: {
      __m512i v[4];
      v[0] = gaussian_pair16(w[0], w[1], v[1]);
      v[2] = gaussian_pair16(w[2], w[3], v[3]);
      transpose_store16(v, out);
      return;
    }
    case Dist::Rademacher: {
      const __m512i sign = _mm512_set1_epi32(int(0x80000000u)), one = _mm512_set1_epi32(0x3F800000);
      for (int k = 0; k < 4; ++k) w[k] = _mm512_or_si512(_mm512_and_si512(w[k], sign), one);
      transpose_store16(w, out);
      return;
    }
    case Dist::Uniform: {
      for (int k = 0; k < 4; ++k) {
        const __m512 u = _mm512_cvtepi32_ps(_mm512_srli_epi32(w[k], 9));
        w[k] = _mm512_castps_si512(
            _mm512_mul_ps(_mm512_add_ps(u, _mm512_set1_ps(0.5f)), _mm512_set1_ps(1.0f / 8388608.0f)));
      }
      transpose_store16(w, out);
      return;
    }
  }
}

EL_AVX512 void fill_avx512(uint64_t seed, uint64_t stream, uint64_t start, int64_t count, Dist dist, float* out) {
  drive<16>(start, count, out, [&](uint64_t block, float* o) { group16(seed, stream, block, dist, o); });
}

EL_AVX512 void bits_avx512(uint64_t seed, uint64_t stream, uint64_t start, int64_t count, uint32_t* out) {
  drive<16>(start, count, out, [&](uint64_t block, uint32_t* o) {
    __m512i w[4];
    philox16(seed, stream, block, w);
    transpose_store16(w, o);
  });
}

EL_AVX512 void blocks_avx512(uint64_t seed, uint64_t stream, uint64_t first, int64_t nblocks, uint32_t* out) {
  drive<16>(0, 4 * nblocks, out, [&](uint64_t block, uint32_t* o) {
    __m512i w[4];
    philox16(seed, stream, first + block, w);
    transpose_store16(w, o);
  });
}

// ---------------------------------------------------------------------------------------------- AVX2
#define EL_AVX2 __attribute__((target("avx2,fma")))

EL_AVX2 inline void mulhilo8(__m256i a, __m256i m, __m256i& hi, __m256i& lo) {
  const __m256i pe = _mm256_mul_epu32(a, m);
  const __m256i po = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
  lo = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
}

EL_AVX2 inline void philox8(uint64_t seed, uint64_t stream, uint64_t block, __m256i w[4]) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i sbit = _mm256_set1_epi32(int(0x80000000u));
  __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32(int(uint32_t(block))), lane);
  // carry where c0 < lane (unsigned): compare with the sign bit flipped
  const __m256i carry = _mm256_cmpgt_epi32(_mm256_xor_si256(lane, sbit), _mm256_xor_si256(c0, sbit));
  __m256i c1 = _mm256_sub_epi32(_mm256_set1_epi32(int(uint32_t(block >> 32))), carry);
  __m256i c2 = _mm256_set1_epi32(int(uint32_t(stream))), c3 = _mm256_set1_epi32(int(uint32_t(stream >> 32)));
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  const __m256i m0 = _mm256_set1_epi32(int(kM0)), m1 = _mm256_set1_epi32(int(kM1));
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    __m256i hi0, lo0, hi1, lo1;
    mulhilo8(c0, m0, hi0, lo0);
    mulhilo8(c2, m1, hi1, lo1);
    c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(int(k0)));
    c1 = lo1;
    c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(int(k1)));
    c3 = lo0;
  }
  w[0] = c0;
  w[1] = c1;
  w[2] = c2;
  w[3] = c3;
}

EL_AVX2 inline void transpose_store8(const __m256i w[4], void* out) {
  const __m256i t0 = _mm256_unpacklo_epi32(w[0], w[1]), t1 = _mm256_unpackhi_epi32(w[0], w[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(w[2], w[3]), t3 = _mm256_unpackhi_epi32(w[2], w[3]);
  const __m256i r0 = _mm256_unpacklo_epi64(t0, t2), r1 = _mm256_unpackhi_epi64(t0, t2);
  const __m256i r2 = _mm256_unpacklo_epi64(t1, t3), r3 = _mm256_unpackhi_epi64(t1, t3);
  char* o = static_cast<char*>(out);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), _mm256_permute2x128_si256(r0, r1, 0x20));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 32), _mm256_permute2x128_si256(r2, r3, 0x20));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 64), _mm256_permute2x128_si256(r0, r1, 0x31));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 96), _mm256_permute2x128_si256(r2, r3, 0x31));
}

EL_AVX2 inline __m256d cvtu32_pd(__m128i x) {  // exact: flip the sign bit, convert signed, add 2^31
  const __m256d d = _mm256_cvtepi32_pd(_mm_xor_si128(x, _mm_set1_epi32(int(0x80000000u))));
  return _mm256_add_pd(d, _mm256_set1_pd(2147483648.0));
}

EL_AVX2 inline __m256d log4(__m256d a) {
  const __m256i bits = _mm256_castpd_si256(a);
  const __m256d two52 = _mm256_set1_pd(4503599627370496.0);
  // biased exponent as a double via the 2^52 trick, minus the bias
  __m256d k = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(bits, 52), _mm256_castpd_si256(two52))),
                            _mm256_set1_pd(4503599627370496.0 + 1023.0));
  __m256d m = _mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi64x(0x000FFFFFFFFFFFFFLL)),
                                                  _mm256_set1_epi64x(0x3FF0000000000000LL)));
  const __m256d big = _mm256_cmp_pd(m, _mm256_set1_pd(kSqrt2), _CMP_GT_OQ);
  m = _mm256_blendv_pd(m, _mm256_mul_pd(m, _mm256_set1_pd(0.5)), big);
  k = _mm256_add_pd(k, _mm256_and_pd(big, _mm256_set1_pd(1.0)));
  const __m256d f = _mm256_sub_pd(m, _mm256_set1_pd(1.0));
  const __m256d s = _mm256_div_pd(f, _mm256_add_pd(_mm256_set1_pd(2.0), f));
  const __m256d z = _mm256_mul_pd(s, s), w = _mm256_mul_pd(z, z);
  const __m256d t1 = _mm256_mul_pd(
      w, _mm256_fmadd_pd(w, _mm256_fmadd_pd(w, _mm256_set1_pd(kLg6), _mm256_set1_pd(kLg4)), _mm256_set1_pd(kLg2)));
  const __m256d t2 = _mm256_mul_pd(
      z, _mm256_fmadd_pd(
             w, _mm256_fmadd_pd(w, _mm256_fmadd_pd(w, _mm256_set1_pd(kLg7), _mm256_set1_pd(kLg5)),
                                _mm256_set1_pd(kLg3)),
             _mm256_set1_pd(kLg1)));
  const __m256d R = _mm256_add_pd(t2, t1);
  const __m256d hfsq = _mm256_mul_pd(_mm256_mul_pd(_mm256_set1_pd(0.5), f), f);
  const __m256d inner = _mm256_fmadd_pd(k, _mm256_set1_pd(kLn2Lo), _mm256_mul_pd(s, _mm256_add_pd(hfsq, R)));
  return _mm256_sub_pd(_mm256_mul_pd(k, _mm256_set1_pd(kLn2Hi)), _mm256_sub_pd(_mm256_sub_pd(hfsq, inner), f));
}

EL_AVX2 inline void sincos4(__m256d x, __m256d& c, __m256d& s) {
  const __m256d q = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(kInvPio2)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_fnmadd_pd(q, _mm256_set1_pd(kPio2_1), x);
  r = _mm256_fnmadd_pd(q, _mm256_set1_pd(kPio2_2), r);
  r = _mm256_fnmadd_pd(q, _mm256_set1_pd(kPio2_2t), r);
  const __m256d z = _mm256_mul_pd(r, r);
  __m256d ps = _mm256_fmadd_pd(z, _mm256_set1_pd(kS6), _mm256_set1_pd(kS5));
  ps = _mm256_fmadd_pd(z, ps, _mm256_set1_pd(kS4));
  ps = _mm256_fmadd_pd(z, ps, _mm256_set1_pd(kS3));
  ps = _mm256_fmadd_pd(z, ps, _mm256_set1_pd(kS2));
  const __m256d v = _mm256_mul_pd(z, r);
  const __m256d sn = _mm256_fmadd_pd(v, _mm256_fmadd_pd(z, ps, _mm256_set1_pd(kS1)), r);
  __m256d pc = _mm256_fmadd_pd(z, _mm256_set1_pd(kC6), _mm256_set1_pd(kC5));
  pc = _mm256_fmadd_pd(z, pc, _mm256_set1_pd(kC4));
  pc = _mm256_fmadd_pd(z, pc, _mm256_set1_pd(kC3));
  pc = _mm256_fmadd_pd(z, pc, _mm256_set1_pd(kC2));
  pc = _mm256_fmadd_pd(z, pc, _mm256_set1_pd(kC1));
  const __m256d one = _mm256_set1_pd(1.0);
  const __m256d hz = _mm256_mul_pd(_mm256_set1_pd(0.5), z), w = _mm256_sub_pd(one, hz);
  const __m256d cs =
      _mm256_add_pd(w, _mm256_fmadd_pd(_mm256_mul_pd(z, z), pc, _mm256_sub_pd(_mm256_sub_pd(one, w), hz)));
  // quadrant n = q mod 4 from q in {0..4}, as doubles
  const __m256d n = _mm256_sub_pd(q, _mm256_and_pd(_mm256_cmp_pd(q, _mm256_set1_pd(4.0), _CMP_EQ_OQ),
                                                   _mm256_set1_pd(4.0)));
  const __m256d odd = _mm256_or_pd(_mm256_cmp_pd(n, _mm256_set1_pd(1.0), _CMP_EQ_OQ),
                                   _mm256_cmp_pd(n, _mm256_set1_pd(3.0), _CMP_EQ_OQ));
  const __m256d negc = _mm256_or_pd(_mm256_cmp_pd(n, _mm256_set1_pd(1.0), _CMP_EQ_OQ),
                                    _mm256_cmp_pd(n, _mm256_set1_pd(2.0), _CMP_EQ_OQ));
  const __m256d negs = _mm256_cmp_pd(n, _mm256_set1_pd(2.0), _CMP_GE_OQ);
  const __m256d sign = _mm256_set1_pd(-0.0);
  c = _mm256_xor_pd(_mm256_blendv_pd(cs, sn, odd), _mm256_and_pd(negc, sign));
  s = _mm256_xor_pd(_mm256_blendv_pd(sn, cs, odd), _mm256_and_pd(negs, sign));
}

EL_AVX2 inline void box_muller4(__m128i x, __m128i y, __m128& ze, __m128& zo) {
  const __m256d half = _mm256_set1_pd(0.5), scale = _mm256_set1_pd(kTwoM32);
  const __m256d a = _mm256_mul_pd(_mm256_add_pd(cvtu32_pd(x), half), scale);
  const __m256d t = _mm256_mul_pd(_mm256_add_pd(cvtu32_pd(y), half), scale);
  const __m256d rho = _mm256_sqrt_pd(_mm256_mul_pd(_mm256_set1_pd(-2.0), log4(a)));
  __m256d c, s;
  sincos4(_mm256_mul_pd(_mm256_set1_pd(kTwoPi), t), c, s);
  ze = _mm256_cvtpd_ps(_mm256_mul_pd(rho, c));
  zo = _mm256_cvtpd_ps(_mm256_mul_pd(rho, s));
}

EL_AVX2 inline __m256i gaussian_pair8(__m256i x, __m256i y, __m256i& zo_out) {
  __m128 e_lo, o_lo, e_hi, o_hi;
  box_muller4(_mm256_castsi256_si128(x), _mm256_castsi256_si128(y), e_lo, o_lo);
  box_muller4(_mm256_extracti128_si256(x, 1), _mm256_extracti128_si256(y, 1), e_hi, o_hi);
  zo_out = _mm256_castps_si256(_mm256_insertf128_ps(_mm256_castps128_ps256(o_lo), o_hi, 1));
  return _mm256_castps_si256(_mm256_insertf128_ps(_mm256_castps128_ps256(e_lo), e_hi, 1));
}

EL_AVX2 void group8(uint64_t seed, uint64_t stream, uint64_t block, Dist dist, float* out) {
  __m256i w[4];
  philox8(seed, stream, block, w);
  switch (dist) {
    case Dist::Gaussian: {
      __m256i v[4];
      v[0] = gaussian_pair8(w[0], w[1], v[1]);
      v[2] = gaussian_pair8(w[2], w[3], v[3]);
      transpose_store8(v, out);
      return;
    }
    case Dist::Rademacher: {
      const __m256i sign = _mm256_set1_epi32(int(0x80000000u)), one = _mm256_set1_epi32(0x3F800000);
      for (int k = 0; k < 4; ++k) w[k] = _mm256_or_si256(_mm256_and_si256(w[k], sign), one);
      transpose_store8(w, out);
      return;
    }
    case Dist::Uniform: {
      for (int k = 0; k < 4; ++k) {
        const __m256 u = _mm256_cvtepi32_ps(_mm256_srli_epi32(w[k], 9));
        w[k] = _mm256_castps_si256(
            _mm256_mul_ps(_mm256_add_ps(u, _mm256_set1_ps(0.5f)), _mm256_set1_ps(1.0f / 8388608.0f)));
      }
      transpose_store8(w, out);
      return;
    }
  }
}

EL_AVX2 void fill_avx2(uint64_t seed, uint64_t stream, uint64_t start, int64_t count, Dist dist, float* out) {
  drive<8>(start, count, out, [&](uint64_t block, float* o) { group8(seed, stream, block, dist, o); });
}

EL_AVX2 void bits_avx2(uint64_t seed, uint64_t stream, uint64_t start, int64_t count, uint32_t* out) {
  drive<8>(start, count, out, [&](uint64_t block, uint32_t* o) {
    __m256i w[4];
    philox8(seed, stream, block, w);
    transpose_store8(w, o);
  });
}

EL_AVX2 void blocks_avx2(uint64_t seed, uint64_t stream, uint64_t first, int64_t nblocks, uint32_t* out) {
  drive<8>(0, 4 * nblocks, out, [&](uint64_t block, uint32_t* o) {
    __m256i w[4];
    philox8(seed, stream, first + block, w);
    transpose_store8(w, o);
  });
}

void blocks_scalar(uint64_t seed, uint64_t stream, uint64_t first, int64_t nblocks, uint32_t* out) {
  for (int64_t b = 0; b < nblocks; ++b) {
    const Philox4x32 v = philox_block(seed, stream, first + uint64_t(b));
    for (int w = 0; w < 4; ++w) out[4 * b + w] = v.v[w];
  }
}

// ---------------------------------------------------------------------------------------------- dispatch
enum Level : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

int cpu_level() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
    return kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return kAvx2;
  return kScalar;
}

std::atomic<int>& level() {
  static std::atomic<int> lv{cpu_level()};
  return lv;
}

}  // namespace

void philox_fill(uint64_t seed, uint64_t stream, uint64_t start, int64_t count, Dist dist, float* out) {
  switch (level().load(std::memory_order_relaxed)) {
    case kAvx512:
      return fill_avx512(seed, stream, start, count, dist, out);
    case kAvx2:
      return fill_avx2(seed, stream, start, count, dist, out);
    default:
      return fill_scalar(seed, stream, start, count, dist, out);
  }
}

void philox_fill_bits(uint64_t seed, uint64_t stream, uint64_t start, int64_t count, uint32_t* out) {
  switch (level().load(std::memory_order_relaxed)) {
    case kAvx512:
      return bits_avx512(seed, stream, start, count, out);
    case kAvx2:
      return bits_avx2(seed, stream, start, count, out);
    default:
      return bits_scalar(seed, stream, start, count, out);
  }
}

void philox_blocks(uint64_t seed, uint64_t stream, uint64_t first_block, int64_t nblocks, uint32_t* out) {
  switch (level().load(std::memory_order_relaxed)) {
    case kAvx512:
      return blocks_avx512(seed, stream, first_block, nblocks, out);
    case kAvx2:
      return blocks_avx2(seed, stream, first_block, nblocks, out);
    default:
      return blocks_scalar(seed, stream, first_block, nblocks, out);
  }
}

const char* philox_level() {
  static const char* names[] = {"scalar", "avx2", "avx512"};
  return names[level().load()];
}

void philox_force_level(const char* name) {
  const std::string s(name ? name : "");
  const int best = cpu_level();
  int want = best;
  if (s == "scalar") want = kScalar;
  else if (s == "avx2") want = kAvx2;
  else if (s == "avx512") want = kAvx512;
  else if (!s.empty()) throw ArgError("level: expected 'scalar', 'avx2', 'avx512' or '', got '" + s + "'");
  level().store(want < best ? want : best);
}

}  // namespace edgelearn::simd

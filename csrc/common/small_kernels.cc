// Small vector kernels of the zo family (see small_kernels.h): one implementation per SIMD level, picked once.
#include "common/small_kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

namespace edgelearn::small {

namespace {

#define EL_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma")))
#define EL_AVX2 __attribute__((target("avx2,fma")))

// ---------------------------------------------------------------------------------------------- scalar
void dot_rows_scalar(const float* x, int64_t nx, int64_t ldx, const float* M, int64_t m, int64_t d, float* out,
                     int64_t ldo) {
  for (int64_t i = 0; i < nx; ++i)
    for (int64_t j = 0; j < m; ++j) {
      float s = 0.0f;
      for (int64_t t = 0; t < d; ++t) s = std::fma(x[i * ldx + t], M[j * d + t], s);
      out[i * ldo + j] = s;
    }
}

void rank_update_row_scalar(const float* src, const float* bias, const float* c, const float* Bt, int64_t r,
                            int64_t o, float* dst, bool) {
  for (int64_t t = 0; t < o; ++t) {
    float v = bias ? bias[t] : 0.0f;
    for (int64_t j = 0; j < r; ++j) v = std::fma(c[j], Bt[j * o + t], v);
    dst[t] = src ? v + src[t] : v;
  }
}

// ---------------------------------------------------------------------------------------------- AVX-512
// Two rows of x against up to 8 rows of M at a time: 16 independent accumulators (registers), one per output.
EL_AVX512 void dot_rows_avx512(const float* x, int64_t nx, int64_t ldx, const float* M, int64_t m, int64_t d,
                               float* out, int64_t ldo) {
  const int64_t full = d / 16 * 16;
  const __mmask16 tail = __mmask16((1u << (d - full)) - 1u);
  for (int64_t i = 0; i < nx; i += 2) {
    const bool two = i + 1 < nx;
    const float* x0 = x + i * ldx;
    const float* x1 = two ? x0 + ldx : x0;
    for (int64_t j0 = 0; j0 < m; j0 += 8) {
      const float* mr[8];
#pragma GCC unroll 8
      for (int jj = 0; jj < 8; ++jj) mr[jj] = M + std::min<int64_t>(j0 + jj, m - 1) * d;
      __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a04 = a00, a05 = a00, a06 = a00, a07 = a00;
      __m512 a10 = a00, a11 = a00, a12 = a00, a13 = a00, a14 = a00, a15 = a00, a16 = a00, a17 = a00;
      auto step = [&](__m512 u0, __m512 u1, int64_t t, __mmask16 k) EL_AVX512 {
        __m512 w;
#define EL_STEP(J)                                   \
  w = _mm512_maskz_loadu_ps(k, mr[J] + t);           \
  a0##J = _mm512_fmadd_ps(u0, w, a0##J);             \
  a1##J = _mm512_fmadd_ps(u1, w, a1##J);
        EL_STEP(0) EL_STEP(1) EL_STEP(2) EL_STEP(3) EL_STEP(4) EL_STEP(5) EL_STEP(6) EL_STEP(7)
#undef EL_STEP
      };
      for (int64_t t = 0; t < full; t += 16) step(_mm512_loadu_ps(x0 + t), _mm512_loadu_ps(x1 + t), t, 0xFFFF);
      if (tail) step(_mm512_maskz_loadu_ps(tail, x0 + full), _mm512_maskz_loadu_ps(tail, x1 + full), full, tail);
      float r0[8] = {_mm512_reduce_add_ps(a00), _mm512_reduce_add_ps(a01), _mm512_reduce_add_ps(a02),
                     _mm512_reduce_add_ps(a03), _mm512_reduce_add_ps(a04), _mm512_reduce_add_ps(a05),
                     _mm512_reduce_add_ps(a06), _mm512_reduce_add_ps(a07)};
      float r1[8] = {_mm512_reduce_add_ps(a10), _mm512_reduce_add_ps(a11), _mm512_reduce_add_ps(a12),
                     _mm512_reduce_add_ps(a13), _mm512_reduce_add_ps(a14), _mm512_reduce_add_ps(a15),
                     _mm512_reduce_add_ps(a16), _mm512_reduce_add_ps(a17)};
      const int64_t mj = std::min<int64_t>(8, m - j0);
      for (int jj = 0; jj < mj; ++jj) {
        out[i * ldo + j0 + jj] = r0[jj];
        if (two) out[(i + 1) * ldo + j0 + jj] = r1[jj];
      }
    }
  }
}

// Eight 16-float chunks in flight (each a dependent FMA chain over j, in order): hides the FMA latency.
EL_AVX512 void rank_update_row_avx512(const float* src, const float* bias, const float* c, const float* Bt,
                                      int64_t r, int64_t o, float* dst, bool stream) {
  int64_t t = 0;
  auto one = [&](int64_t t0, __mmask16 k) EL_AVX512 {
    __m512 v = bias ? _mm512_maskz_loadu_ps(k, bias + t0) : _mm512_setzero_ps();
    for (int64_t j = 0; j < r; ++j)
      v = _mm512_fmadd_ps(_mm512_set1_ps(c[j]), _mm512_maskz_loadu_ps(k, Bt + j * o + t0), v);
    if (src) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, src + t0));
    _mm512_mask_storeu_ps(dst + t0, k, v);
  };
  if (stream) {  // non-temporal stores need 64-byte alignment: peel a masked head
    const uintptr_t mis = reinterpret_cast<uintptr_t>(dst) & 63;
    if (mis % 4 != 0) {
      stream = false;
    } else if (mis) {
      const int64_t head = std::min<int64_t>(o, (64 - int64_t(mis)) / 4);
      one(0, __mmask16((1u << head) - 1u));
      t = head;
    }
  }
  for (; t + 128 <= o; t += 128) {
    __m512 v[8];
    for (int q = 0; q < 8; ++q) v[q] = bias ? _mm512_loadu_ps(bias + t + 16 * q) : _mm512_setzero_ps();
    for (int64_t j = 0; j < r; ++j) {
      const __m512 cj = _mm512_set1_ps(c[j]);
      const float* bj = Bt + j * o + t;
      for (int q = 0; q < 8; ++q) v[q] = _mm512_fmadd_ps(cj, _mm512_loadu_ps(bj + 16 * q), v[q]);
    }
    if (src)
      for (int q = 0; q < 8; ++q) v[q] = _mm512_add_ps(v[q], _mm512_loadu_ps(src + t + 16 * q));
    if (stream)
      for (int q = 0; q < 8; ++q) _mm512_stream_ps(dst + t + 16 * q, v[q]);
    else
      for (int q = 0; q < 8; ++q) _mm512_storeu_ps(dst + t + 16 * q, v[q]);
  }
  for (; t + 16 <= o; t += 16) one(t, 0xFFFF);
  if (t < o) one(t, __mmask16((1u << (o - t)) - 1u));
}

// ---------------------------------------------------------------------------------------------- AVX2
EL_AVX2 inline float hsum8(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 h = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}

EL_AVX2 inline __m256i tail_mask8(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

EL_AVX2 void dot_rows_avx2(const float* x, int64_t nx, int64_t ldx, const float* M, int64_t m, int64_t d,
                           float* out, int64_t ldo) {
  const int64_t full = d / 8 * 8;
  const __m256i tail = tail_mask8(d - full);
  for (int64_t i = 0; i < nx; i += 2) {
    const bool two = i + 1 < nx;
    const float* x0 = x + i * ldx;
    const float* x1 = two ? x0 + ldx : x0;
    for (int64_t j0 = 0; j0 < m; j0 += 4) {
      const float* mr[4];
      for (int jj = 0; jj < 4; ++jj) mr[jj] = M + std::min<int64_t>(j0 + jj, m - 1) * d;
      __m256 a0[4], a1[4];
      for (int jj = 0; jj < 4; ++jj) a0[jj] = a1[jj] = _mm256_setzero_ps();
      for (int64_t t = 0; t < full; t += 8) {
        const __m256 u0 = _mm256_loadu_ps(x0 + t), u1 = _mm256_loadu_ps(x1 + t);
        for (int jj = 0; jj < 4; ++jj) {
          const __m256 w = _mm256_loadu_ps(mr[jj] + t);
          a0[jj] = _mm256_fmadd_ps(u0, w, a0[jj]);
          a1[jj] = _mm256_fmadd_ps(u1, w, a1[jj]);
        }
      }
      if (full < d) {
        const __m256 u0 = _mm256_maskload_ps(x0 + full, tail), u1 = _mm256_maskload_ps(x1 + full, tail);
        for (int jj = 0; jj < 4; ++jj) {
          const __m256 w = _mm256_maskload_ps(mr[jj] + full, tail);
          a0[jj] = _mm256_fmadd_ps(u0, w, a0[jj]);
          a1[jj] = _mm256_fmadd_ps(u1, w, a1[jj]);
        }
      }
      const int64_t mj = std::min<int64_t>(4, m - j0);
      for (int jj = 0; jj < mj; ++jj) {
        out[i * ldo + j0 + jj] = hsum8(a0[jj]);
        if (two) out[(i + 1) * ldo + j0 + jj] = hsum8(a1[jj]);
      }
    }
  }
}

EL_AVX2 void rank_update_row_avx2(const float* src, const float* bias, const float* c, const float* Bt, int64_t r,
                                  int64_t o, float* dst, bool) {
  int64_t t = 0;
  for (; t + 64 <= o; t += 64) {
    __m256 v[8];
    for (int q = 0; q < 8; ++q) v[q] = bias ? _mm256_loadu_ps(bias + t + 8 * q) : _mm256_setzero_ps();
    for (int64_t j = 0; j < r; ++j) {
      const __m256 cj = _mm256_set1_ps(c[j]);
      const float* bj = Bt + j * o + t;
      for (int q = 0; q < 8; ++q) v[q] = _mm256_fmadd_ps(cj, _mm256_loadu_ps(bj + 8 * q), v[q]);
    }
    if (src)
      for (int q = 0; q < 8; ++q) v[q] = _mm256_add_ps(v[q], _mm256_loadu_ps(src + t + 8 * q));
    for (int q = 0; q < 8; ++q) _mm256_storeu_ps(dst + t + 8 * q, v[q]);
  }
  for (; t < o; t += 8) {
    const __m256i k = tail_mask8(o - t);
    __m256 v = bias ? _mm256_maskload_ps(bias + t, k) : _mm256_setzero_ps();
    for (int64_t j = 0; j < r; ++j)
      v = _mm256_fmadd_ps(_mm256_set1_ps(c[j]), _mm256_maskload_ps(Bt + j * o + t, k), v);
    if (src) v = _mm256_add_ps(v, _mm256_maskload_ps(src + t, k));
    _mm256_maskstore_ps(dst + t, k, v);
  }
}

// ---------------------------------------------------------------------------------------------- dispatch
struct Table {
  decltype(&dot_rows_scalar) dot;
  decltype(&rank_update_row_scalar) update;
};

Table pick() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
    return {dot_rows_avx512, rank_update_row_avx512};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {dot_rows_avx2, rank_update_row_avx2};
  return {dot_rows_scalar, rank_update_row_scalar};
}

const Table& table() {
  static const Table t = pick();
  return t;
}

}  // namespace

void dot_rows(const float* x, int64_t nx, int64_t ldx, const float* M, int64_t m, int64_t d, float* out,
              int64_t ldo) {
  table().dot(x, nx, ldx, M, m, d, out, ldo);
}

void rank_update_row(const float* src, const float* bias, const float* c, const float* Bt, int64_t r, int64_t o,
                     float* dst, bool stream) {
  table().update(src, bias, c, Bt, r, o, dst, stream);
}

void stream_fence() { _mm_sfence(); }

__attribute__((target_clones("avx512f", "avx2", "default"))) void axpy_f32(float* dst, const float* x, float a,
                                                                           const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = x[i] + a * y[i];
}

void transpose(const float* src, int64_t m, int64_t n, float* dst) {
  constexpr int64_t T = 16;  // tiles keep both sides in cache lines
  for (int64_t i0 = 0; i0 < m; i0 += T)
    for (int64_t j0 = 0; j0 < n; j0 += T)
      for (int64_t j = j0; j < std::min(n, j0 + T); ++j)
        for (int64_t i = i0; i < std::min(m, i0 + T); ++i) dst[j * m + i] = src[i * n + j];
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void axpy_f64(double* acc, const float* z, double c,
                                                                           int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += c * double(z[i]);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void add_round_f32(float* param, const double* acc,
                                                                                int64_t n) {
  for (int64_t i = 0; i < n; ++i) param[i] = float(double(param[i]) + acc[i]);
}

}  // namespace edgelearn::small

// qgemm_s8: int8 x int8 -> int32 GEMM over packed weights, then scale + bias to float32 or requantise to int8
// (contract: quant.h).
//
// Plan. x is copied once per call into rows of kp bytes (zero padded): as x + 128 (u8) for vpdpbusd, as is for
// AVX2 and scalar. Tasks are (channel panel, row block) tiles in panel-major order, split statically over threads,
// so a thread keeps one weight panel hot in cache while it walks the row blocks. A tile's int32 sums stay in
// registers for the whole k loop; the epilogue subtracts the zero-point / +128 correction (c0 + zx) * colsum[j],
// converts to float32, scales, adds the bias and stores (or requantises) straight from registers.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "edgelearn/common.h"
#include "edgelearn/quant.h"
#include "quant/quant_level.h"

namespace edgelearn {

namespace {

// Below this many multiply-adds the call runs on the calling thread.
constexpr double kParallelWork = 4e6;
// AMX: ~0.1 ms of tile work; below it a second thread costs more than it brings (wake-up, and on a shared machine
// a barrier that waits for a descheduled thread).
constexpr double kParallelWorkAmx = 1e8;

bool normal_positive(float s) { return std::isfinite(s) && s >= FLT_MIN; }

// What the epilogue needs, per call.
struct Epi {
  const int32_t* comp;  // [np]: (c0 + zx) * colsum
  const float* sx;      // [1] or [m]
  bool per_row;
  const float* sw;    // [n]
  const float* bias;  // [n] or nullptr
  QOut out;
  float inv_ys;
  float zy;
  int64_t n;  // row stride of y
  void* y;
  bool gelu;  // float32 output: y = gelu(y)
};

// ---------------------------------------------------------------------------------------------- GELU (quant.h)
// One sequence of float32 operations for every path (scalar, AVX2, AVX-512: no FMA, IEEE division), so the three
// give the same bits as the NumPy twin.
constexpr float kGeluP = 0.3275911f, kA1 = 0.254829592f, kA2 = -0.284496736f, kA3 = 1.421413741f,
                kA4 = -1.453152027f, kA5 = 1.061405429f;
constexpr float kLog2e = 1.44269504f, kLn2Hi = 0.693145752f, kLn2Lo = 1.42860677e-06f;
constexpr float kE2 = 0.5f, kE3 = 0.166666667f, kE4 = 0.0416666667f, kE5 = 0.00833333333f, kE6 = 0.00138888889f;

inline float gelu_scalar(float y) {
  const float z = std::fabs(y) * 0.707106781f;
  const float t = 1.0f / (1.0f + kGeluP * z);
  const float poly = t * (kA1 + t * (kA2 + t * (kA3 + t * (kA4 + t * kA5))));
  const float u = std::max(-(z * z), -32.0f);  // e^-32 * poly < 2^-25: erf is 1.0f already; no denormals
  const int32_t nn = int32_t(u * kLog2e - 0.5f);
  const float fn = float(nn);
  const float r = (u - fn * kLn2Hi) - fn * kLn2Lo;
  const float p = 1.0f + r * (1.0f + r * (kE2 + r * (kE3 + r * (kE4 + r * (kE5 + r * kE6)))));
  const uint32_t bits = uint32_t(nn + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, 4);
  const float erf_abs = 1.0f - poly * (p * two_n);
  return (0.5f * y) * (1.0f + std::copysign(erf_abs, y));
}

// ---------------------------------------------------------------------------------------------- scalar
inline float round_half_away(float v) {
  const float t = std::trunc(v);
  const float d = v - t;
  return std::fabs(d) >= 0.5f ? t + (v > 0.0f ? 1.0f : -1.0f) : t;
}

inline void store_scalar(const Epi& e, int64_t i, int64_t j, int32_t acc) {
  const float sx = e.sx[e.per_row ? i : 0];
  const float cs = sx * e.sw[j];
  float real = float(acc - e.comp[j]) * cs;
  if (e.bias) real = real + e.bias[j];
  if (e.out == QOut::F32) {
    static_cast<float*>(e.y)[i * e.n + j] = e.gelu ? gelu_scalar(real) : real;
  } else {
    float r = round_half_away(real * e.inv_ys) + e.zy;
    r = std::min(std::max(r, -128.0f), 127.0f);
    static_cast<int8_t*>(e.y)[i * e.n + j] = int8_t(int32_t(r));
  }
}

void tile_scalar(const int8_t* xa, int64_t kp, const int8_t* wp, const Epi& e, int64_t i0, int64_t mr, int64_t j0,
                 int64_t nv) {
  for (int64_t i = i0; i < i0 + mr; ++i) {
    int32_t acc[16] = {0};
    const int8_t* xr = xa + (i - i0) * kp;
    for (int64_t g = 0; g < kp / 4; ++g)
      for (int c = 0; c < 16; ++c)
        for (int t = 0; t < 4; ++t) acc[c] += int32_t(xr[4 * g + t]) * int32_t(wp[g * 64 + 4 * c + t]);
    for (int64_t c = 0; c < nv; ++c) store_scalar(e, i, j0 + c, acc[c]);
  }
}

// ---------------------------------------------------------------------------------------------- AVX-512 VNNI
EL_Q_VNNI inline __m512 gelu16(__m512 y) {
  const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  const __m512 z = _mm512_mul_ps(_mm512_and_ps(y, absmask), _mm512_set1_ps(0.707106781f));
  const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f),
                                                                      _mm512_mul_ps(_mm512_set1_ps(kGeluP), z)));
  __m512 poly = _mm512_mul_ps(t, _mm512_set1_ps(kA5));
  for (float a : {kA4, kA3, kA2}) poly = _mm512_mul_ps(t, _mm512_add_ps(_mm512_set1_ps(a), poly));
  poly = _mm512_mul_ps(t, _mm512_add_ps(_mm512_set1_ps(kA1), poly));
  const __m512 u = _mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(z, z)), _mm512_set1_ps(-32.0f));
  const __m512i nn = _mm512_cvttps_epi32(_mm512_sub_ps(_mm512_mul_ps(u, _mm512_set1_ps(kLog2e)), _mm512_set1_ps(0.5f)));
  const __m512 fn = _mm512_cvtepi32_ps(nn);
  const __m512 r = _mm512_sub_ps(_mm512_sub_ps(u, _mm512_mul_ps(fn, _mm512_set1_ps(kLn2Hi))),
                                 _mm512_mul_ps(fn, _mm512_set1_ps(kLn2Lo)));
  __m512 p = _mm512_mul_ps(r, _mm512_set1_ps(kE6));
  for (float c : {kE5, kE4, kE3, kE2, 1.0f}) p = _mm512_mul_ps(r, _mm512_add_ps(_mm512_set1_ps(c), p));
  p = _mm512_add_ps(_mm512_set1_ps(1.0f), p);
  const __m512 two_n = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(nn, _mm512_set1_epi32(127)), 23));
  const __m512 erf_abs = _mm512_sub_ps(_mm512_set1_ps(1.0f), _mm512_mul_ps(poly, _mm512_mul_ps(p, two_n)));
  const __m512 erf = _mm512_or_ps(_mm512_and_ps(erf_abs, absmask), _mm512_andnot_ps(absmask, y));  // copysign
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), y), _mm512_add_ps(_mm512_set1_ps(1.0f), erf));
}

EL_Q_VNNI inline void epilogue16(const Epi& e, int64_t i, int64_t j, __m512i acc, __mmask16 k) {
  const __m512 sx = _mm512_set1_ps(e.sx[e.per_row ? i : 0]);
  const __m512i a = _mm512_sub_epi32(acc, _mm512_maskz_loadu_epi32(k, e.comp + j));
  const __m512 cs = _mm512_mul_ps(sx, _mm512_maskz_loadu_ps(k, e.sw + j));
  __m512 real = _mm512_mul_ps(_mm512_cvtepi32_ps(a), cs);
  if (e.bias) real = _mm512_add_ps(real, _mm512_maskz_loadu_ps(k, e.bias + j));
  if (e.out == QOut::F32) {
    _mm512_mask_storeu_ps(static_cast<float*>(e.y) + i * e.n + j, k, e.gelu ? gelu16(real) : real);
    return;
  }
  const __m512 v = _mm512_mul_ps(real, _mm512_set1_ps(e.inv_ys));
  const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m512 d = _mm512_sub_ps(v, t);
  const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  const __mmask16 up = _mm512_cmp_ps_mask(_mm512_and_ps(d, absmask), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  // sign(v) * 1 where |d| >= 0.5 (v's sign bit on 1.0f)
  const __m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_andnot_ps(absmask, v));
  __m512 r = _mm512_mask_add_ps(t, up, t, one);
  r = _mm512_add_ps(r, _mm512_set1_ps(e.zy));
  r = _mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(-128.0f)), _mm512_set1_ps(127.0f));
  _mm_mask_storeu_epi8(static_cast<int8_t*>(e.y) + i * e.n + j, k, _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(r)));
}

// MR rows x NV blocks of 16 channels; all MR*NV accumulators live in zmm registers across the k loop.
template <int MR, int NV>
EL_Q_VNNI void tile_vnni(const uint8_t* xa, int64_t kp, const int8_t* wp, const Epi& e, int64_t i0, int64_t j0,
                         int64_t nvalid) {
  __m512i acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_si512();
  const int64_t bstride = kp * 16, groups = kp / 4;
  const uint8_t* xr = xa;  // the block's rows
  for (int64_t g = 0; g < groups; ++g) {
    __m512i w[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) w[v] = _mm512_loadu_si512(wp + v * bstride + g * 64);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      int32_t word;
      std::memcpy(&word, xr + r * kp + 4 * g, 4);
      const __m512i a = _mm512_set1_epi32(word);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], a, w[v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const int64_t left = nvalid - 16 * v;
      if (left <= 0) break;
      const __mmask16 k = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
      epilogue16(e, i0 + r, j0 + 16 * v, acc[r][v], k);
    }
}

template <int NV>
EL_Q_VNNI void tile_vnni_rows(const uint8_t* xa, int64_t kp, const int8_t* wp, const Epi& e, int64_t i0,
                              int64_t mr, int64_t j0, int64_t nvalid) {
  switch (mr) {
    case 8: return tile_vnni<8, NV>(xa, kp, wp, e, i0, j0, nvalid);
    case 7: return tile_vnni<7, NV>(xa, kp, wp, e, i0, j0, nvalid);
    case 6: return tile_vnni<6, NV>(xa, kp, wp, e, i0, j0, nvalid);
    case 5: return tile_vnni<5, NV>(xa, kp, wp, e, i0, j0, nvalid);
    case 4: return tile_vnni<4, NV>(xa, kp, wp, e, i0, j0, nvalid);
    case 3: return tile_vnni<3, NV>(xa, kp, wp, e, i0, j0, nvalid);
    case 2: return tile_vnni<2, NV>(xa, kp, wp, e, i0, j0, nvalid);
    default: return tile_vnni<1, NV>(xa, kp, wp, e, i0, j0, nvalid);
  }
}

EL_Q_VNNI void copy_row_vnni(const int8_t* x, int64_t k, int64_t kp, uint8_t* dst) {
  const __m512i bias = _mm512_set1_epi8(int8_t(0x80));
  int64_t t = 0;
  for (; t + 64 <= k; t += 64)
    _mm512_storeu_si512(dst + t, _mm512_xor_si512(_mm512_loadu_si512(x + t), bias));
  for (; t < k; ++t) dst[t] = uint8_t(x[t]) ^ 0x80u;
  for (; t < kp; ++t) dst[t] = 0;
}

// Row of float32 x quantized per tensor (xq = clamp(round_half_away(x * inv), -127, 127)) and stored as xq + 128
// (u8) for vpdpbusd / tdpbusd, zero padded to kp; returns the number of non-finite values.
EL_Q_VNNI int64_t quantize_row_vnni(const float* x, int64_t k, int64_t kp, float inv, uint8_t* dst) {
  const __m512 invv = _mm512_set1_ps(inv), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF)), inf = _mm512_set1_ps(INFINITY);
  const __m512 lim = _mm512_set1_ps(127.0f), nlim = _mm512_set1_ps(-127.0f);
  const __m512i c128 = _mm512_set1_epi32(128);
  int64_t bad = 0;
  for (int64_t t = 0; t < k; t += 16) {
    const __mmask16 msk = k - t >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (k - t)) - 1u);
    const __m512 xv = _mm512_maskz_loadu_ps(msk, x + t);
    const __mmask16 fin = _mm512_cmp_ps_mask(_mm512_and_ps(xv, absmask), inf, _CMP_LT_OQ);
    bad += __builtin_popcount(unsigned(msk & ~fin));
    const __m512 v = _mm512_mul_ps(xv, invv);
    const __m512 tr = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __mmask16 up = _mm512_cmp_ps_mask(_mm512_and_ps(_mm512_sub_ps(v, tr), absmask), half, _CMP_GE_OQ);
    __m512 r = _mm512_mask_add_ps(tr, up, tr, _mm512_or_ps(one, _mm512_andnot_ps(absmask, v)));
    r = _mm512_maskz_mov_ps(fin, _mm512_min_ps(_mm512_max_ps(r, nlim), lim));
    _mm_mask_storeu_epi8(dst + t, msk, _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvttps_epi32(r), c128)));
  }
  for (int64_t t = k; t < kp; ++t) dst[t] = 0;
  return bad;
}

// Scalar twin (the other paths): xq as int8.
int64_t quantize_rows_scalar(const float* x, int64_t n, float inv, int8_t* dst) {
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float xv = x[i];
    bad += !std::isfinite(xv);
    const float q = std::isfinite(xv) ? round_half_away(xv * inv) : 0.0f;
    dst[i] = int8_t(std::min(127.0f, std::max(-127.0f, q)));
  }
  return bad;
}

// ---------------------------------------------------------------------------------------------- AMX-INT8
// tdpbusd multiplies a 16 x 64 u8 tile (rows of x + 128) by a 16 x 64 s8 tile whose row g holds the 4 weights of
// group g for 16 channels: exactly 16 groups of one channel block of the packed layout (stride 64 bytes). Blocks of
// 32 rows x 32 channels: C tiles 0-3, A tiles 4-5, B tiles 6-7; 64 inputs per step. Inputs past the last full
// 64 (kp % 64) are added with vpdpbusd to the stored int32 block before the epilogue.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

EL_Q_AMX void amx_configure() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  _tile_loadconfig(&cfg);
}

// Rows [i0, i0 + 32) of xa (u8, row stride ka, zero rows past m) by channel blocks jb, jb + NV - 1.
// x0: the block's 32 rows (u8, row stride ka, zero rows past m).
template <int NV>
EL_Q_AMX void block_amx(const uint8_t* x0, int64_t ka, int64_t kp, const int8_t* wp, const Epi& e, int64_t m,
                        int64_t i0, int64_t j0, int64_t nvalid, int32_t* cbuf) {
  const int64_t bstride = kp * 16, steps = kp / 64;
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t s = 0; s < steps; ++s) {
    _tile_loadd(4, x0 + s * 64, ka);
    _tile_loadd(5, x0 + 16 * ka + s * 64, ka);
    _tile_loadd(6, wp + s * 1024, 64);
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(2, 5, 6);
    if (NV == 2) {
      _tile_loadd(7, wp + bstride + s * 1024, 64);
      _tile_dpbusd(1, 4, 7);
      _tile_dpbusd(3, 5, 7);
    }
  }
  // cbuf: 32 rows x 32 int32 (row stride 128 bytes)
  _tile_stored(0, cbuf, 128);
  _tile_stored(2, cbuf + 16 * 32, 128);
  if (NV == 2) {
    _tile_stored(1, cbuf + 16, 128);
    _tile_stored(3, cbuf + 16 * 32 + 16, 128);
  }
  const int64_t rows = std::min<int64_t>(32, m - i0), gtail = steps * 16, groups = kp / 4;
  for (int64_t r = 0; r < rows; ++r)
    for (int v = 0; v < NV; ++v) {
      const int64_t left = nvalid - 16 * v;
      if (left <= 0) break;
      __m512i acc = _mm512_load_si512(cbuf + r * 32 + 16 * v);
      for (int64_t g = gtail; g < groups; ++g) {
        int32_t word;
        std::memcpy(&word, x0 + r * ka + 4 * g, 4);
        acc = _mm512_dpbusd_epi32(acc, _mm512_set1_epi32(word),
                                  _mm512_loadu_si512(wp + v * bstride + g * 64));
      }
      const __mmask16 k = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
      epilogue16(e, i0 + r, j0 + 16 * v, acc, k);
    }
}

EL_Q_AMX int64_t qgemm_amx(const QGemmArgs& a, const Epi& e, bool parallel) {
  const QWeightS8& w = *a.w;
  const int64_t m = a.m, k = a.k, kp = w.kp;
  const int64_t ka = (kp + 63) / 64 * 64, mp = (m + 31) / 32 * 32;  // x copies: u8 rows of ka bytes
  const int64_t nblocks = w.np / 16, npanel = (nblocks + 1) / 2, nmb = mp / 32;
  const float inv = a.xf ? 1.0f / a.x_scale[0] : 1.0f;
  // rows [i0, i0 + 32) of x as u8 (quantized first for float input) into dst; returns the non-finite count
  auto copy_rows = [&](int64_t i0, uint8_t* dst) {
    int64_t bad = 0;
    for (int64_t i = i0; i < i0 + 32; ++i, dst += ka) {
      if (i < m) {
        if (a.xf)
          bad += quantize_row_vnni(a.xf + i * k, k, kp, inv, dst);
        else
          copy_row_vnni(a.x + i * k, k, kp, dst);
        std::memset(dst + kp, 0, size_t(ka - kp));
      } else {
        std::memset(dst, 0, size_t(ka));
      }
    }
    return bad;
  };
  auto block = [&](const uint8_t* x0, int64_t i0, int64_t pnl, int32_t* cbuf) {
    const int64_t jb = pnl * 2, j0 = jb * 16, nvalid = std::min<int64_t>(32, w.n - j0);
    const int8_t* wp = w.data.data() + jb * kp * 16;
    if (nblocks - jb >= 2)
      block_amx<2>(x0, ka, kp, wp, e, m, i0, j0, nvalid, cbuf);
    else
      block_amx<1>(x0, ka, kp, wp, e, m, i0, j0, nvalid, cbuf);
  };
  int64_t bad = 0;
  if (w.np * kp <= (int64_t(1) << 20)) {
    // W fits in L2 (transformer layers: <= 600 KB). A task is a band of 32 rows: the thread quantizes / copies
    // them into its own buffer, then runs every channel panel over them, writing whole output rows (full cache
    // lines, sequential: what bounds k = 384 layers with float32 output). No barrier but the last, dynamic tasks:
    // on a shared machine a thread that loses its core holds up one band, not the others.
#pragma omp parallel if (parallel) reduction(+ : bad)
    {
      amx_configure();
      alignas(64) int32_t cbuf[32 * 32];
      std::unique_ptr<uint8_t[], void (*)(void*)> xb(static_cast<uint8_t*>(std::aligned_alloc(64, size_t(32 * ka))),
                                                     std::free);
#pragma omp for schedule(dynamic, 1)
      for (int64_t mb = 0; mb < nmb; ++mb) {
        bad += copy_rows(mb * 32, xb.get());
        for (int64_t pnl = 0; pnl < npanel; ++pnl) block(xb.get(), mb * 32, pnl, cbuf);
      }
      _tile_release();
    }
    return bad;
  }
  // Larger W: x is copied once, then tasks go panel-major (a 32-channel weight panel stays in cache while the
  // row blocks pass under it).
  std::unique_ptr<uint8_t[], void (*)(void*)> xa(static_cast<uint8_t*>(std::aligned_alloc(64, size_t(mp * ka))),
                                                 std::free);
#pragma omp parallel if (parallel) reduction(+ : bad)
  {
#pragma omp for schedule(static)
    for (int64_t mb = 0; mb < nmb; ++mb) bad += copy_rows(mb * 32, xa.get() + mb * 32 * ka);
    amx_configure();
    alignas(64) int32_t cbuf[32 * 32];
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < npanel * nmb; ++task) {
      const int64_t pnl = task / nmb, i0 = (task % nmb) * 32;
      block(xa.get() + i0 * ka, i0, pnl, cbuf);
    }
    _tile_release();
  }
  return bad;
}

// ---------------------------------------------------------------------------------------------- AVX2
EL_Q_AVX2 inline __m256 gelu8(__m256 y) {
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 z = _mm256_mul_ps(_mm256_and_ps(y, absmask), _mm256_set1_ps(0.707106781f));
  const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f),
                                                                      _mm256_mul_ps(_mm256_set1_ps(kGeluP), z)));
  __m256 poly = _mm256_mul_ps(t, _mm256_set1_ps(kA5));
  for (float a : {kA4, kA3, kA2}) poly = _mm256_mul_ps(t, _mm256_add_ps(_mm256_set1_ps(a), poly));
  poly = _mm256_mul_ps(t, _mm256_add_ps(_mm256_set1_ps(kA1), poly));
  const __m256 u = _mm256_max_ps(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(z, z)), _mm256_set1_ps(-32.0f));
  const __m256i nn = _mm256_cvttps_epi32(_mm256_sub_ps(_mm256_mul_ps(u, _mm256_set1_ps(kLog2e)), _mm256_set1_ps(0.5f)));
  const __m256 fn = _mm256_cvtepi32_ps(nn);
  const __m256 r = _mm256_sub_ps(_mm256_sub_ps(u, _mm256_mul_ps(fn, _mm256_set1_ps(kLn2Hi))),
                                 _mm256_mul_ps(fn, _mm256_set1_ps(kLn2Lo)));
  __m256 p = _mm256_mul_ps(r, _mm256_set1_ps(kE6));
  for (float c : {kE5, kE4, kE3, kE2, 1.0f}) p = _mm256_mul_ps(r, _mm256_add_ps(_mm256_set1_ps(c), p));
  p = _mm256_add_ps(_mm256_set1_ps(1.0f), p);
  const __m256 two_n = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(nn, _mm256_set1_epi32(127)), 23));
  const __m256 erf_abs = _mm256_sub_ps(_mm256_set1_ps(1.0f), _mm256_mul_ps(poly, _mm256_mul_ps(p, two_n)));
  const __m256 erf = _mm256_or_ps(_mm256_and_ps(erf_abs, absmask), _mm256_andnot_ps(absmask, y));  // copysign
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), y), _mm256_add_ps(_mm256_set1_ps(1.0f), erf));
}

EL_Q_AVX2 inline void epilogue8(const Epi& e, int64_t i, int64_t j, __m256i acc, int64_t nv) {
  alignas(32) float sw[8], bias[8];
  alignas(32) int32_t comp[8];
  const bool full = nv >= 8;
  const float* swp = e.sw + j;
  const float* bp = e.bias ? e.bias + j : nullptr;
  const int32_t* cp = e.comp + j;
  if (!full) {  // tails through small buffers
    for (int c = 0; c < 8; ++c) {
      sw[c] = c < nv ? e.sw[j + c] : 0.0f;
      bias[c] = (c < nv && e.bias) ? e.bias[j + c] : 0.0f;
      comp[c] = c < nv ? e.comp[j + c] : 0;
    }
    swp = sw, bp = e.bias ? bias : nullptr, cp = comp;
  }
  const __m256 sx = _mm256_set1_ps(e.sx[e.per_row ? i : 0]);
  const __m256i a = _mm256_sub_epi32(acc, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cp)));
  const __m256 cs = _mm256_mul_ps(sx, _mm256_loadu_ps(swp));
  __m256 real = _mm256_mul_ps(_mm256_cvtepi32_ps(a), cs);
  if (bp) real = _mm256_add_ps(real, _mm256_loadu_ps(bp));
  alignas(32) float fout[8];
  if (e.out == QOut::F32) {
    if (e.gelu) real = gelu8(real);
    float* dst = static_cast<float*>(e.y) + i * e.n + j;
    if (full) {
      _mm256_storeu_ps(dst, real);
    } else {
      _mm256_store_ps(fout, real);
      std::memcpy(dst, fout, size_t(nv) * 4);
    }
    return;
  }
  const __m256 v = _mm256_mul_ps(real, _mm256_set1_ps(e.inv_ys));
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 d = _mm256_sub_ps(v, t);
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 up = _mm256_cmp_ps(_mm256_and_ps(d, absmask), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_andnot_ps(absmask, v));
  __m256 r = _mm256_add_ps(t, _mm256_and_ps(up, one));
  r = _mm256_add_ps(r, _mm256_set1_ps(e.zy));
  r = _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-128.0f)), _mm256_set1_ps(127.0f));
  alignas(32) int32_t iout[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(iout), _mm256_cvttps_epi32(r));
  int8_t* dst = static_cast<int8_t*>(e.y) + i * e.n + j;
  for (int64_t c = 0; c < std::min<int64_t>(nv, 8); ++c) dst[c] = int8_t(iout[c]);
}

// MR rows x 16 channels: |x| (u8) times sign(x) * W (s8) with vpmaddubsw, pairs summed to int32 by vpmaddwd.
template <int MR>
EL_Q_AVX2 void tile_avx2(const int8_t* xa, int64_t kp, const int8_t* wp, const Epi& e, int64_t i0, int64_t j0,
                         int64_t nvalid) {
  __m256i acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  const int8_t* xr = xa;  // the block's rows
  for (int64_t g = 0; g < kp / 4; ++g) {
    const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + g * 64));
    const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + g * 64 + 32));
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) {
      int32_t word;
      std::memcpy(&word, xr + r * kp + 4 * g, 4);
      const __m256i xb = _mm256_set1_epi32(word);
      const __m256i ax = _mm256_abs_epi8(xb);
      const __m256i p0 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w0, xb));
      const __m256i p1 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w1, xb));
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(p0, ones));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(p1, ones));
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int h = 0; h < 2; ++h)
      if (nvalid - 8 * h > 0) epilogue8(e, i0 + r, j0 + 8 * h, acc[r][h], nvalid - 8 * h);
}

EL_Q_AVX2 void tile_avx2_rows(const int8_t* xa, int64_t kp, const int8_t* wp, const Epi& e, int64_t i0, int64_t mr,
                              int64_t j0, int64_t nvalid) {
  switch (mr) {
    case 4: return tile_avx2<4>(xa, kp, wp, e, i0, j0, nvalid);
    case 3: return tile_avx2<3>(xa, kp, wp, e, i0, j0, nvalid);
    case 2: return tile_avx2<2>(xa, kp, wp, e, i0, j0, nvalid);
    default: return tile_avx2<1>(xa, kp, wp, e, i0, j0, nvalid);
  }
}

}  // namespace

void qgemm_check_args(const QGemmArgs& a) {
  check(a.x != nullptr || a.xf != nullptr, "x: must not be null");
  if (a.xf) {
    check(a.x_zero_point == 0 && a.x_scale_len == 1, "x_scale: float input is quantized per tensor (zero point 0)");
    check(a.x_scale != nullptr && std::isfinite(1.0f / a.x_scale[0]), "x_scale: 1 / x_scale overflows float32");
  }
  check(a.w != nullptr, "W: must not be null");
  qgemm_check_packed(*a.w, "W");
  check(a.m >= 1 && a.k >= 1, "x: dimensions m and k must be >= 1");
  check(a.k == a.w->k, "x: k = " + std::to_string(a.k) + " does not match W's k = " + std::to_string(a.w->k));
  checked_mul(a.m, a.k, "x");
  checked_mul(checked_mul(a.m, a.w->n, "out"), 4, "out");
  check(a.x_zero_point >= -128 && a.x_zero_point <= 127, "x_zero_point: must be in [-128, 127]");
  check(a.x_scale != nullptr && (a.x_scale_len == 1 || a.x_scale_len == a.m),
        "x_scale: expected one scale or one per row (" + std::to_string(a.m) + ")");
  check(a.w_scale != nullptr, "w_scale: must not be null");
  float sx_max = 0.0f, sw_max = 0.0f;
  for (int64_t i = 0; i < a.x_scale_len; ++i) {
    if (!normal_positive(a.x_scale[i]))  // (the message is built only on failure: per-row scales are many)
      throw ArgError("x_scale: must be finite, > 0 and a normal float32 (found " + std::to_string(a.x_scale[i]) +
                     " at " + std::to_string(i) + ")");
    sx_max = std::max(sx_max, a.x_scale[i]);
  }
  for (int64_t j = 0; j < a.w->n; ++j) {
    if (!normal_positive(a.w_scale[j]))
      throw ArgError("w_scale: must be finite, > 0 and a normal float32 (found " + std::to_string(a.w_scale[j]) +
                     " at " + std::to_string(j) + ")");
    sw_max = std::max(sw_max, a.w_scale[j]);
  }
  check(std::isfinite(sx_max * sw_max), "x_scale: x_scale * w_scale overflows float32");
  if (a.bias)
    for (int64_t j = 0; j < a.w->n; ++j) check(std::isfinite(a.bias[j]), "bias: must be finite (found NaN or inf)");
  check(a.out == QOut::F32 || a.out == QOut::S8, "out_dtype: must be 0 (float32) or 1 (int8)");
  check(!a.gelu || a.out == QOut::F32, "gelu: only with float32 output");
  if (a.out == QOut::S8) {
    check(normal_positive(a.y_scale), "y_scale: must be finite, > 0 and a normal float32");
    check(a.y_zero_point >= -128 && a.y_zero_point <= 127, "y_zero_point: must be in [-128, 127]");
  }
}

void qgemm_s8(const QGemmArgs& a, void* y) {
  qgemm_check_args(a);
  check(y != nullptr, "out: must not be null");
  const QWeightS8& w = *a.w;
  const int64_t m = a.m, k = a.k, n = w.n, kp = w.kp;
  const int lv = quant::level();
  const int32_t c0 = lv >= quant::kVnni ? 128 : 0;
  std::unique_ptr<int32_t[]> comp(new int32_t[size_t(w.np)]);
  for (int64_t j = 0; j < w.np; ++j) comp[j] = (c0 + a.x_zero_point) * w.colsum[size_t(j)];
  const Epi e{comp.get(), a.x_scale, a.x_scale_len > 1, a.w_scale, a.bias, a.out, 1.0f / a.y_scale,
              float(a.y_zero_point), n, y, a.gelu};

  const double work = double(m) * double(n) * double(k);
  if (lv == quant::kAmx) {
    const int64_t bad = qgemm_amx(a, e, work > kParallelWorkAmx);
    check(bad == 0, "x: must be finite (found " + std::to_string(bad) + " NaN/inf values)");
    return;
  }
  std::vector<int8_t> xq;
  if (a.xf) {  // quantize first, then the int8 path
    xq.resize(size_t(m * k));
    const int64_t bad = quantize_rows_scalar(a.xf, m * k, 1.0f / a.x_scale[0], xq.data());
    check(bad == 0, "x: must be finite (found " + std::to_string(bad) + " NaN/inf values)");
  }
  const int8_t* const xin = a.xf ? xq.data() : a.x;

  // Tiles: NB channel blocks of 16 x MR rows.
  const int64_t NB = lv == quant::kVnni ? 3 : 1, MR = lv == quant::kVnni ? 8 : lv == quant::kAvx2 ? 4 : 1;
  const int64_t nblocks = w.np / 16, npanel = (nblocks + NB - 1) / NB, nmb = (m + MR - 1) / MR;
  const int64_t ntask = npanel * nmb;
#pragma omp parallel if (work > kParallelWork)
  {
    // Tasks go panel-major: a weight panel (48 channels x kp bytes: 18 KB at k = 384) stays in L1 while the row
    // blocks pass under it. Each tile copies its rows into the thread's buffer (u8 = x + 128 for vpdpbusd; 2% of
    // the tile's work). Dynamic: a thread that loses its core on a shared machine holds up one tile, not half the
    // work.
    std::unique_ptr<int8_t[]> xa(new int8_t[size_t(MR * kp)]);
    int64_t cur = -1;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < ntask; ++task) {
      const int64_t pnl = task / nmb, i0 = (task % nmb) * MR, mr = std::min(MR, m - i0);
      if (i0 != cur) {
        for (int64_t r = 0; r < mr; ++r) {
          int8_t* dst = xa.get() + r * kp;
          if (lv == quant::kVnni) {
            copy_row_vnni(xin + (i0 + r) * k, k, kp, reinterpret_cast<uint8_t*>(dst));
          } else {
            std::memcpy(dst, xin + (i0 + r) * k, size_t(k));
            std::memset(dst + k, 0, size_t(kp - k));
          }
        }
        cur = i0;
      }
      const int64_t jb = pnl * NB, j0 = jb * 16, nvalid = std::min(NB * 16, n - j0);
      const int8_t* wp = w.data.data() + jb * kp * 16;
      if (lv == quant::kVnni) {
        const auto* xu = reinterpret_cast<const uint8_t*>(xa.get());
        const int64_t nv = std::min(NB, nblocks - jb);
        if (nv == 3)
          tile_vnni_rows<3>(xu, kp, wp, e, i0, mr, j0, nvalid);
        else if (nv == 2)
          tile_vnni_rows<2>(xu, kp, wp, e, i0, mr, j0, nvalid);
        else
          tile_vnni_rows<1>(xu, kp, wp, e, i0, mr, j0, nvalid);
      } else if (lv == quant::kAvx2) {
        tile_avx2_rows(xa.get(), kp, wp, e, i0, mr, j0, nvalid);
      } else {
        tile_scalar(xa.get(), kp, wp, e, i0, mr, j0, nvalid);
      }
    }
  }
}

}  // namespace edgelearn

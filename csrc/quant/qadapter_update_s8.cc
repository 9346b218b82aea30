// qadapter_update_s8: int8 adapter weights with per-row scales, updated in place in one pass with stochastic
// rounding from the Philox stream (contract: quant.h).
//
// Plan. All tensors are cut into fixed chunks of kTask elements (a tensor's last chunk may be shorter); chunks are
// the parallel tasks, so the result does not depend on the thread count or schedule. AVX-512: one pass per chunk,
// 128 elements at a time: the 16 Philox blocks that cover them are computed in registers (vpmuludq on 64-bit lanes,
// no random buffer), their 16-bit halves widened 16 at a time, while q and g are read once (prefetched 4 KB
// ahead) and q written once. Scalar / AVX2: the Philox words of kSub elements go through an L1 buffer (the
// vectorised fill), then one pass over the row segments.
#include <immintrin.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <string>
#include <vector>

#include "common/philox_simd.h"
#include "edgelearn/common.h"
#include "edgelearn/quant.h"
#include "quant/quant_level.h"

namespace edgelearn {

namespace {

constexpr int64_t kTask = int64_t(1) << 16;  // elements per parallel task
constexpr int64_t kSub = 4096;               // elements whose random halves are generated at a time (8 KB)
constexpr float kU16 = 1.0f / 65536.0f;

struct Task {
  int64_t t, i0, i1;
};

// Elements [j0, j1) of one row: q, g offset to the row segment, u to its uniforms. Returns the non-finite count.
int64_t segment_scalar(int8_t* q, const float* g, const uint16_t* h, int64_t len, float lr, float inv, bool qas) {
  int64_t bad = 0;
  for (int64_t j = 0; j < len; ++j) {
    if (!std::isfinite(g[j])) {
      ++bad;
      continue;
    }
    float d = (lr * g[j]) * inv;
    if (qas) d = d * inv;
    const float v = float(q[j]) - d;
    const float fl = std::floor(v);
    const float f = v - fl;
    const float u = (float(h[j]) + 0.5f) * kU16;
    float r = u < f ? fl + 1.0f : fl;
    r = std::min(std::max(r, -127.0f), 127.0f);
    q[j] = int8_t(int32_t(r));
  }
  return bad;
}

// The 10 round keys of a seed, broadcast once per chunk (k0 and k1 in every 32-bit lane).
struct PhiloxKeys {
  __m512i k0[10], k1[10];
};

EL_Q_VNNI inline void philox_keys(uint64_t seed, PhiloxKeys& keys) {
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    keys.k0[round] = _mm512_set1_epi32(int(k0));
    keys.k1[round] = _mm512_set1_epi32(int(k1));
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

// Philox of counter blocks [b0, b0 + 16) (b0 a multiple of 16), in registers, as two groups of 8: each 64-bit lane
// carries one block's word in its low 32 bits (vpmuludq reads only those and gives the whole 64-bit product:
// hi = p >> 32, lo = p; the high halves of lo words are never read). In a group, lane j runs block
// (0, 4, 1, 5, 2, 6, 3, 7)[j], so that two unpacks leave the 16-bit halves of the group's 64 elements in out[2h]
// (first 32) and out[2h + 1], in element order (block-major, words little-endian: half i % 2 of word i / 2).
EL_Q_VNNI inline void philox_halves128(const PhiloxKeys& keys, uint64_t stream, uint64_t b0, __m512i out[4]) {
  // two independent groups of 8 blocks (b0, b0 + 8) interleaved: each round is a 7-cycle dependency chain
  const __m512i offs = _mm512_setr_epi64(0, 4, 1, 5, 2, 6, 3, 7);
  const __m512i base = _mm512_add_epi64(_mm512_set1_epi64(int64_t(uint32_t(b0))), offs);
  __m512i c0[2] = {base, _mm512_add_epi64(base, _mm512_set1_epi64(8))};
  const __m512i hi_b = _mm512_set1_epi64(int64_t(uint32_t(b0 >> 32)));
  const __m512i s0 = _mm512_set1_epi64(int64_t(uint32_t(stream))), s1 = _mm512_set1_epi64(int64_t(uint32_t(stream >> 32)));
  __m512i c1[2] = {hi_b, hi_b}, c2[2] = {s0, s0}, c3[2] = {s1, s1};
  const __m512i m0 = _mm512_set1_epi64(0xD2511F53), m1 = _mm512_set1_epi64(0xCD9E8D57);
#pragma GCC unroll 10
  for (int round = 0; round < 10; ++round) {
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m512i p0 = _mm512_mul_epu32(c0[h], m0), p1 = _mm512_mul_epu32(c2[h], m1);
      c0[h] = _mm512_ternarylogic_epi32(_mm512_srli_epi64(p1, 32), c1[h], keys.k0[round], 0x96);
      c1[h] = p1;
      c2[h] = _mm512_ternarylogic_epi32(_mm512_srli_epi64(p0, 32), c3[h], keys.k1[round], 0x96);
      c3[h] = p0;
    }
  }
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {
    const __m512i t01 = _mm512_mask_blend_epi32(0xAAAA, c0[h], _mm512_slli_epi64(c1[h], 32));
    const __m512i t23 = _mm512_mask_blend_epi32(0xAAAA, c2[h], _mm512_slli_epi64(c3[h], 32));
    out[2 * h] = _mm512_unpacklo_epi64(t01, t23);
    out[2 * h + 1] = _mm512_unpackhi_epi64(t01, t23);
  }
}

// Elements [i0, i1) of one tensor (i0 a multiple of 128), the Philox halves generated in registers 128 elements at
// a time (no random buffer). Returns the non-finite count.
EL_Q_VNNI int64_t chunk_avx512(const QAdapterTensor& a, int64_t i0, int64_t i1, float lr, uint64_t seed, bool qas) {
  const __m512 lrv = _mm512_set1_ps(lr), one = _mm512_set1_ps(1.0f);
  const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  const __m512 half = _mm512_set1_ps(0.5f), two16 = _mm512_set1_ps(65536.0f);
  const int64_t cols = a.cols;
  int64_t row = i0 / cols, row_end = (row + 1) * cols;
  float inv = 1.0f / a.scale[row];
  PhiloxKeys keys;
  philox_keys(seed, keys);
  int64_t bad = 0;
  for (int64_t e = i0; e < i1; e += 128) {
    __m512i hw[4];
    philox_halves128(keys, a.stream, uint64_t(e) / 8, hw);
    for (int c = 0; c < 8; ++c)
      _mm_prefetch(reinterpret_cast<const char*>(a.grad + e + 1024 + 16 * c), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(a.q + e + 1024), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(a.q + e + 1088), _MM_HINT_T0);
#pragma GCC unroll 8
    for (int gi = 0; gi < 8; ++gi) {
      const int64_t j = e + 16 * gi;
      if (j >= i1) break;
      const __mmask16 k = i1 - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (i1 - j)) - 1u);
      __m512 invv;
      if (j >= row_end) {
        do ++row, row_end += cols;
        while (j >= row_end);
        inv = 1.0f / a.scale[row];
      }
      if (j + 16 <= row_end) {
        invv = _mm512_set1_ps(inv);
      } else {  // a row boundary inside these 16 elements
        alignas(64) float iv[16];
        int64_t r = row, re = row_end;
        for (int l = 0; l < 16; ++l) {
          if (j + l >= re && j + l < i1) ++r, re += cols;
          iv[l] = j + l < i1 ? 1.0f / a.scale[r] : 1.0f;
        }
        invv = _mm512_load_ps(iv);
      }
      const __m256i h16 = gi & 1 ? _mm512_extracti64x4_epi64(hw[gi >> 1], 1) : _mm512_castsi512_si256(hw[gi >> 1]);
      const __m512 qf = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(k, a.q + j)));
      const __m512 gv = _mm512_maskz_loadu_ps(k, a.grad + j);
      const __mmask16 nonfin = _mm512_mask_fpclass_ps_mask(k, gv, 0x99);  // QNaN, +inf, -inf, SNaN
      const __mmask16 ok = k & ~nonfin;
      __m512 d = _mm512_mul_ps(_mm512_mul_ps(lrv, gv), invv);
      if (qas) d = _mm512_mul_ps(d, invv);
      const __m512 v = _mm512_sub_ps(qf, d);
      const __m512 fl = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
      const __m512 f = _mm512_sub_ps(v, fl);
      // u < f  <=>  (h + 0.5) < f * 2^16: both sides scaled by the same power of two, exactly
      const __m512 hf = _mm512_add_ps(_mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(h16)), half);
      const __mmask16 up = _mm512_cmp_ps_mask(hf, _mm512_mul_ps(f, two16), _CMP_LT_OQ);
      __m512 r = _mm512_mask_add_ps(fl, up, fl, one);
      r = _mm512_min_ps(_mm512_max_ps(r, lo), hi);
      _mm_mask_storeu_epi8(a.q + j, ok, _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(r)));
      bad += __builtin_popcount(unsigned(nonfin));
    }
  }
  return bad;
}

bool overlaps(const void* p, int64_t pbytes, const void* q, int64_t qbytes) {
  const auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(q);
  return a < b + uintptr_t(qbytes) && b < a + uintptr_t(pbytes);
}

}  // namespace

void qadapter_update_s8(const QAdapterTensor* ts, int64_t T, float lr, uint64_t seed, bool qas,
                        int64_t* nonfinite) {
  check(ts != nullptr && T >= 1, "q: need at least one tensor");
  check(nonfinite != nullptr, "nonfinite: must not be null");
  check(std::isfinite(lr), "lr: must be finite");
  int64_t total = 0;
  for (int64_t t = 0; t < T; ++t) {
    const QAdapterTensor& a = ts[t];
    const std::string at = "[" + std::to_string(t) + "]";
    check(a.q != nullptr, "q" + at + ": must not be null");
    check(a.scale != nullptr, "scales" + at + ": must not be null");
    check(a.grad != nullptr, "grads" + at + ": must not be null");
    check(a.rows >= 1 && a.cols >= 1, "q" + at + ": dimensions must be >= 1");
    const int64_t numel = checked_mul(a.rows, a.cols, "q");
    checked_mul(numel, 4, "grads");
    for (int64_t r = 0; r < a.rows; ++r)
      if (!(std::isfinite(a.scale[r]) && a.scale[r] >= FLT_MIN))
        throw ArgError("scales" + at + ": must be finite, > 0 and a normal float32 (found " +
                       std::to_string(a.scale[r]) + " at " + std::to_string(r) + ")");
    total += numel;
  }
  // q is written: it must not overlap another tensor's q, any gradient or any scale.
  for (int64_t t = 0; t < T; ++t)
    for (int64_t s = 0; s < T; ++s) {
      const int64_t nt = ts[t].rows * ts[t].cols, ns = ts[s].rows * ts[s].cols;
      const std::string at = "q[" + std::to_string(t) + "]";
      check(s == t || !overlaps(ts[t].q, nt, ts[s].q, ns), at + ": overlaps q[" + std::to_string(s) + "]");
      check(!overlaps(ts[t].q, nt, ts[s].grad, 4 * ns), at + ": overlaps grads[" + std::to_string(s) + "]");
      check(!overlaps(ts[t].q, nt, ts[s].scale, 4 * ts[s].rows), at + ": overlaps scales[" + std::to_string(s) + "]");
    }

  std::vector<Task> tasks;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t numel = ts[t].rows * ts[t].cols;
    for (int64_t i0 = 0; i0 < numel; i0 += kTask) tasks.push_back({t, i0, std::min(numel, i0 + kTask)});
  }
  std::vector<int64_t> bad(tasks.size(), 0);
  const bool simd = quant::level() >= quant::kVnni;
  const int64_t ntask = int64_t(tasks.size());
#pragma omp parallel if (total > 4 * kSub && ntask > 1)
  {
    alignas(64) uint32_t words[kSub / 2 + 1];
    const uint16_t* halves = reinterpret_cast<const uint16_t*>(words);  // little-endian: low half first
#pragma omp for schedule(dynamic, 1)
    for (int64_t ti = 0; ti < ntask; ++ti) {
      const Task& tk = tasks[size_t(ti)];
      const QAdapterTensor& a = ts[tk.t];
      int64_t nbad = 0;
      if (simd) {
        nbad = chunk_avx512(a, tk.i0, tk.i1, lr, seed, qas);
      } else {
        for (int64_t s0 = tk.i0; s0 < tk.i1; s0 += kSub) {
          const int64_t s1 = std::min(tk.i1, s0 + kSub);
          const int64_t w0 = s0 / 2, w1 = (s1 + 1) / 2;  // words holding elements [s0, s1)
          simd::philox_fill_bits(seed, a.stream, uint64_t(w0), w1 - w0, words);
          const uint16_t* h = halves - 2 * w0;  // h[i] = half of element i
          for (int64_t i = s0; i < s1;) {  // row segments
            const int64_t row = i / a.cols, end = std::min(s1, (row + 1) * a.cols);
            nbad += segment_scalar(a.q + i, a.grad + i, h + i, end - i, lr, 1.0f / a.scale[row], qas);
            i = end;
          }
        }
      }
      bad[size_t(ti)] = nbad;
    }
  }
  std::fill(nonfinite, nonfinite + T, 0);
  for (int64_t ti = 0; ti < ntask; ++ti) nonfinite[tasks[size_t(ti)].t] += bad[size_t(ti)];
}

}  // namespace edgelearn

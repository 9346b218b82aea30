// qadapter_update_s8: int8 adapter weights with per-row scales, updated in place in one pass with stochastic
// rounding from the Philox stream (contract: quant.h).
//
// Plan. All tensors are cut into fixed chunks of kTask elements (a tensor's last chunk may be shorter); chunks are
// the parallel tasks, so the result does not depend on the thread count or schedule. Within a chunk, the Philox
// words of kSub elements at a time (two 16-bit halves per word) are generated into an L1 buffer (the vectorised
// fill), then one pass over the row segments of those elements reads q and g once and writes q once.
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

EL_Q_VNNI int64_t segment_avx512(int8_t* q, const float* g, const uint16_t* h, int64_t len, float lr, float inv,
                                 bool qas) {
  const __m512 lrv = _mm512_set1_ps(lr), invv = _mm512_set1_ps(inv), one = _mm512_set1_ps(1.0f);
  const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f), inf = _mm512_set1_ps(INFINITY);
  const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  const __m512 half = _mm512_set1_ps(0.5f), u16 = _mm512_set1_ps(kU16);
  int64_t bad = 0;
  for (int64_t j = 0; j < len; j += 16) {
    const __mmask16 k = len - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (len - j)) - 1u);
    const __m512 qf = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(k, q + j)));
    const __m512 gv = _mm512_maskz_loadu_ps(k, g + j);
    const __mmask16 ok = _mm512_mask_cmp_ps_mask(k, _mm512_and_ps(gv, absmask), inf, _CMP_LT_OQ);
    __m512 d = _mm512_mul_ps(_mm512_mul_ps(lrv, gv), invv);
    if (qas) d = _mm512_mul_ps(d, invv);
    const __m512 v = _mm512_sub_ps(qf, d);
    const __m512 fl = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(v, fl);
    const __m512 u = _mm512_mul_ps(
        _mm512_add_ps(_mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, h + j))), half), u16);
    const __mmask16 up = _mm512_cmp_ps_mask(u, f, _CMP_LT_OQ);
    __m512 r = _mm512_mask_add_ps(fl, up, fl, one);
    r = _mm512_min_ps(_mm512_max_ps(r, lo), hi);
    _mm_mask_storeu_epi8(q + j, ok, _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(r)));
    bad += __builtin_popcount(unsigned(k & ~ok));
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
      for (int64_t s0 = tk.i0; s0 < tk.i1; s0 += kSub) {
        const int64_t s1 = std::min(tk.i1, s0 + kSub);
        // Start the loads of this sub-chunk's q and g (24 KB) before generating its random words, so memory works
        // while Philox computes (the pass is otherwise load-latency bound on one thread).
        const int64_t s2 = std::min(tk.i1, s1 + kSub);
        for (int64_t i = s1; i < s2; i += 16) _mm_prefetch(reinterpret_cast<const char*>(a.grad + i), _MM_HINT_T0);
        for (int64_t i = s1; i < s2; i += 64) _mm_prefetch(reinterpret_cast<const char*>(a.q + i), _MM_HINT_T0);
        const int64_t w0 = s0 / 2, w1 = (s1 + 1) / 2;  // words holding elements [s0, s1)
        simd::philox_fill_bits(seed, a.stream, uint64_t(w0), w1 - w0, words);
        const uint16_t* h = halves - 2 * w0;  // h[i] = half of element i
        for (int64_t i = s0; i < s1;) {  // row segments
          const int64_t row = i / a.cols, end = std::min(s1, (row + 1) * a.cols);
          const float inv = 1.0f / a.scale[row];
          nbad += simd ? segment_avx512(a.q + i, a.grad + i, h + i, end - i, lr, inv, qas)
                       : segment_scalar(a.q + i, a.grad + i, h + i, end - i, lr, inv, qas);
          i = end;
        }
      }
      bad[size_t(ti)] = nbad;
    }
  }
  std::fill(nonfinite, nonfinite + T, 0);
  for (int64_t ti = 0; ti < ntask; ++ti) nonfinite[tasks[size_t(ti)].t] += bad[size_t(ti)];
}

}  // namespace edgelearn

// speech_gate_net_s8: the on-device part of the SILENCE mask generator as int8 inference over segment-pooled q15
// log-mel features (speech.h defines the blob format and every integer step). Views into the blob, caller-owned
// scratch: nothing is allocated. The body (gate_net_s8_body.inc) is compiled for the baseline, AVX2 and
// AVX-512 (BW/VL/DQ) targets, each with its own int8 dot kernel (dots); all integer, so every build gives the same
// bits. speech_force_level (speech_logmel_f32.cc) forces the build for tests.
#include <algorithm>
#include <cstring>
#include <string>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "edgelearn/common.h"
#include "edgelearn/speech.h"

namespace edgelearn {

namespace {

inline int32_t rd(const uint8_t* p, int64_t i) {
  int32_t v;
  std::memcpy(&v, p + 4 * i, 4);
  return v;
}

struct Reader {
  const uint8_t* p;
  int64_t n, pos = 0;
  std::string name;
  const uint8_t* take(int64_t bytes, const char* what) {
    if (bytes < 0 || pos + bytes > n)
      throw ArgError(name + ": truncated blob (reading " + what + " at byte " + std::to_string(pos) + " of " +
                     std::to_string(n) + ")");
    const uint8_t* r = p + pos;
    pos += bytes;
    return r;
  }
  int32_t word(const char* what) { return rd(take(4, what), 0); }
};

// dots(W, x, kc, cout, acc): the layer's dot products for one segment, acc[o] = sum_{c < kc} W[o kc + c] x[c]
// (o < cout), exact in int32 (|sum| <= 9 * 64 * 128 * 127). x is the im2col row widened to int16 and zero-padded
// by 32, so the SIMD builds read it in whole vectors; W rows are read within bounds (whole vectors, then a masked
// or scalar tail); four outputs share each x vector.
namespace base {
inline void dots(const int8_t* W, const int16_t* x, int32_t kc, int32_t cout, int32_t* acc) {
  for (int32_t o = 0; o < cout; ++o) {
    const int8_t* w = W + int64_t(o) * kc;
    int32_t d = 0;
    for (int32_t c = 0; c < kc; ++c) d += int32_t(w[c]) * int32_t(x[c]);
    acc[o] = d;
  }
}
#include "gate_net_s8_body.inc"
}  // namespace base

#if defined(__x86_64__) || defined(__i386__)
#pragma GCC push_options
#pragma GCC target("avx2")
namespace avx2 {
inline int32_t hsum8(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}
inline __m256i w16(const int8_t* p) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline void dots(const int8_t* W, const int16_t* x, int32_t kc, int32_t cout, int32_t* acc) {
  const int32_t n16 = kc / 16 * 16;
  int32_t o = 0;
  for (; o + 4 <= cout; o += 4) {
    const int8_t* w0 = W + int64_t(o) * kc;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (int32_t c = 0; c < n16; c += 16) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + c));
      a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(w16(w0 + c), xv));
      a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(w16(w0 + kc + c), xv));
      a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(w16(w0 + 2 * kc + c), xv));
      a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(w16(w0 + 3 * kc + c), xv));
    }
    int32_t d[4] = {hsum8(a0), hsum8(a1), hsum8(a2), hsum8(a3)};
    for (int i = 0; i < 4; ++i) {
      for (int32_t c = n16; c < kc; ++c) d[i] += int32_t(w0[i * kc + c]) * int32_t(x[c]);
      acc[o + i] = d[i];
    }
  }
  if (o < cout) base::dots(W + int64_t(o) * kc, x, kc, cout - o, acc + o);
}
#include "gate_net_s8_body.inc"
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2")
namespace avx512 {
inline __m512i w32(const int8_t* p, __mmask32 m) { return _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, p)); }
inline void dots(const int8_t* W, const int16_t* x, int32_t kc, int32_t cout, int32_t* acc) {
  const int32_t n32 = kc / 32 * 32;
  const __mmask32 all = __mmask32(~0u), tail = __mmask32((uint64_t(1) << (kc - n32)) - 1);
  int32_t o = 0;
  for (; o + 4 <= cout; o += 4) {
    const int8_t* w0 = W + int64_t(o) * kc;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (int32_t c = 0; c < kc; c += 32) {  // x is zero past kc; the last W load is masked
      const __mmask32 m = c < n32 ? all : tail;
      const __m512i xv = _mm512_loadu_si512(x + c);
      a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(w32(w0 + c, m), xv));
      a1 = _mm512_add_epi32(a1, _mm512_madd_epi16(w32(w0 + kc + c, m), xv));
      a2 = _mm512_add_epi32(a2, _mm512_madd_epi16(w32(w0 + 2 * kc + c, m), xv));
      a3 = _mm512_add_epi32(a3, _mm512_madd_epi16(w32(w0 + 3 * kc + c, m), xv));
    }
    acc[o] = _mm512_reduce_add_epi32(a0), acc[o + 1] = _mm512_reduce_add_epi32(a1);
    acc[o + 2] = _mm512_reduce_add_epi32(a2), acc[o + 3] = _mm512_reduce_add_epi32(a3);
  }
  for (; o < cout; ++o) {
    const int8_t* w0 = W + int64_t(o) * kc;
    __m512i a0 = _mm512_setzero_si512();
    for (int32_t c = 0; c < kc; c += 32)
      a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(w32(w0 + c, c < n32 ? all : tail), _mm512_loadu_si512(x + c)));
    acc[o] = _mm512_reduce_add_epi32(a0);
  }
}
#include "gate_net_s8_body.inc"
}  // namespace avx512
#pragma GCC pop_options
#endif

enum Level { kBase = 0, kAvx2 = 1, kAvx512 = 2 };
int g_forced = -1;
int best_level() {
#if defined(__x86_64__) || defined(__i386__)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return kAvx512;
  if (__builtin_cpu_supports("avx2")) return kAvx2;
#endif
  return kBase;
}

}  // namespace

GateNet speech_gate_net_parse(const uint8_t* blob, int64_t nbytes, const char* name) {
  const std::string nm(name);
  check(blob != nullptr, nm + ": null");
  Reader r{blob, nbytes, 0, nm};
  auto bad = [&](const std::string& m) { throw ArgError(nm + ": " + m); };
  if (r.word("magic") != GATE_MAGIC) bad("not a gate network blob (bad magic; build it with gate_net_pack)");
  if (r.word("version") != 1) bad("unsupported version (expected 1)");
  if (r.word("n_mels") != SPEECH_NMELS) bad("n_mels must be 40");
  GateNet net;
  net.F = r.word("F");
  if (net.F < 1 || net.F > 64) bad("frames per segment F must be in [1, 64], got " + std::to_string(net.F));
  net.n_layers = r.word("n_layers");
  if (net.n_layers < 1 || net.n_layers > GATE_MAX_LAYERS)
    bad("n_layers must be in [1, " + std::to_string(GATE_MAX_LAYERS) + "], got " + std::to_string(net.n_layers));
  net.in_shift = r.word("in_shift");
  if (net.in_shift < 1 || net.in_shift > 30) bad("in_shift must be in [1, 30]");
  net.in_offset = r.take(4 * SPEECH_NMELS, "in_offset");
  net.in_mult = r.take(4 * SPEECH_NMELS, "in_mult");
  for (int c = 0; c < SPEECH_NMELS; ++c) {
    const int32_t o = rd(net.in_offset, c), m = rd(net.in_mult, c);
    if (o < -65536 || o > 65536) bad("in_offset must be in [-65536, 65536]");
    if (m < 0 || m > (1 << 24)) bad("in_mult must be in [0, 2^24]");
  }
  int32_t cin_expected = SPEECH_NMELS;
  for (int i = 0; i < net.n_layers; ++i) {
    GateLayer& L = net.layers[i];
    const std::string li = "layer " + std::to_string(i) + ": ";
    L.cin = r.word("cin"), L.cout = r.word("cout"), L.k = r.word("k"), L.relu = r.word("relu");
    if (L.cin != cin_expected) bad(li + "cin must be " + std::to_string(cin_expected));
    const bool last = i == net.n_layers - 1;
    if (L.cout < 1 || L.cout > GATE_MAX_CH || (last && L.cout != 1))
      bad(li + "cout must be in [1, " + std::to_string(GATE_MAX_CH) + "] (1 for the last layer)");
    if (L.k < 1 || L.k > GATE_MAX_K || L.k % 2 == 0) bad(li + "k must be odd and <= " + std::to_string(GATE_MAX_K));
    if (L.relu != 0 && L.relu != 1) bad(li + "relu must be 0 or 1");
    L.bias = r.take(4 * int64_t(L.cout), "bias");
    L.mult = r.take(4 * int64_t(L.cout), "mult");
    L.shift = r.take(4 * int64_t(L.cout), "shift");
    for (int o = 0; o < L.cout; ++o) {
      const int32_t b = rd(L.bias, o), m = rd(L.mult, o), s = rd(L.shift, o);
      if (b <= -(1 << 30) || b >= (1 << 30)) bad(li + "|bias| must be < 2^30");
      if (m <= 0) bad(li + "mult must be > 0");
      if (s < 1 || s > 62) bad(li + "shift must be in [1, 62]");
    }
    const int64_t wb = int64_t(L.cout) * L.k * L.cin;
    L.W = reinterpret_cast<const int8_t*>(r.take(wb, "W"));
    int has_min = 0;  // branch-free (vectorises); W is scanned on every call
    for (int64_t j = 0; j < wb; ++j) has_min |= int(L.W[j] == -128);
    if (has_min) bad(li + "W values must be in [-127, 127]");
    r.take((4 - wb % 4) % 4, "W padding");
    net.macs_per_segment += wb;
    cin_expected = L.cout;
  }
  if (r.pos != nbytes) bad("trailing bytes after the last layer");
  return net;
}

// Set by speech_force_level (speech_logmel_f32.cc): one hook forces every speech kernel's SIMD path.
void speech_gate_net_force_level(int level) { g_forced = level; }

void speech_gate_net_s8(const GateNet& net, const int16_t* feat, int64_t T, int8_t* scratch, int32_t* logits,
                        uint8_t* gates, int64_t block) {
  check(T >= 1, "feat: need at least one frame");
  check(block >= 1, "block: must be >= 1 segments, got " + std::to_string(block));
  static const int best = best_level();
  const int lv = g_forced < 0 || g_forced > best ? best : g_forced;
#if defined(__x86_64__) || defined(__i386__)
  if (lv == kAvx512) avx512::run(net, feat, T, scratch, logits, gates);
  else if (lv == kAvx2) avx2::run(net, feat, T, scratch, logits, gates);
  else
#endif
    base::run(net, feat, T, scratch, logits, gates);
  if (block == 1) return;  // run wrote gate = logit > 0
  const int64_t S = speech_gate_net_segments(net, T);
  for (int64_t b0 = 0; b0 < S; b0 += block) {
    const int64_t b1 = std::min(S, b0 + std::min(block, S));
    int64_t sum = 0;  // |sum| < S 2^31: no overflow
    for (int64_t s = b0; s < b1; ++s) sum += logits[s];
    std::memset(gates + b0, sum > 0 ? 1 : 0, size_t(b1 - b0));
  }
}

}  // namespace edgelearn

// speech_logmel_f32: the float32 log-mel front-end (speech.h), offline and streaming. Frames go through
// frames_lanes<L> (logmel_f32_lanes.inc) 16, 8 or 4 at a time (avx512f, avx2+fma, baseline SSE2 targets chosen at
// run time; the last block padded with copies of its last frame) and 1 at a time for streams; every lane width
// performs the same operations (fused multiply-adds included), so every path gives the same bits. The audio check
// (finite, |x| <= 32768) costs no pass of its own for audio in [-1, 1]: each block tests its samples as
// frames_lanes loads them (an OR of the bit patterns; if that fails, and for the last block, whose samples run to
// n, audio_ok checks exactly); a failure is reported after the loop, naming the first bad sample.
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "edgelearn/common.h"
#include "edgelearn/speech.h"

namespace edgelearn {

namespace {
// Twiddles of the radix-4 passes of span m = 256, 64, 16: for j < m / 4, w^j, w^2j, w^3j (re, im) with
// w = exp(-2 pi i / m), computed in double and rounded once; prow[k]: the row of [re 256 | im 256] where
// frames_lanes leaves |X_k|^2 (the real row of Z[k] for k < 256, the imaginary row of Z[0] for k = 256).
struct FftTables {
  float w[3][64 * 6];
  int16_t prow[SPEECH_NBINS];
  float mel_w4[SPEECH_MEL_MAX_W];  // SpeechTables::mel_w / 4 (exact): the split leaves |2 X_k|^2
};
FftTables make_fft_tables() {
  FftTables t;
  const double pi = 3.14159265358979323846;
  for (int st = 0, m = 256; m > 4; ++st, m /= 4)
    for (int j = 0; j < m / 4; ++j)
      for (int r = 1; r <= 3; ++r) {
        t.w[st][6 * j + 2 * (r - 1)] = float(std::cos(-2.0 * pi * r * j / m));
        t.w[st][6 * j + 2 * (r - 1) + 1] = float(std::sin(-2.0 * pi * r * j / m));
      }
  const SpeechTables& T = speech_tables();
  for (int k = 0; k < 256; ++k) t.prow[k] = T.bitrev[k];
  t.prow[256] = 256;
  for (int i = 0; i < SPEECH_MEL_MAX_W; ++i) t.mel_w4[i] = 0.25f * T.mel_w[i];
  return t;
}
const FftTables& fft_tables() {
  static const FftTables t = make_fft_tables();
  return t;
}
}  // namespace

// Loop unrolling for the lane code (the FFT passes' short inner loops, the mel runs): ~20% faster here; it
// reorders no arithmetic.
#pragma GCC push_options
#pragma GCC optimize("unroll-loops")
namespace base {
#include "logmel_f32_lanes.inc"
}  // namespace base
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#include "logmel_f32_lanes.inc"
}  // namespace avx2
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
namespace avx512 {
#include "logmel_f32_lanes.inc"
}  // namespace avx512
#pragma GCC pop_options
#endif
#pragma GCC pop_options  // unroll-loops

namespace {

enum Level { kBase = 0, kAvx2 = 1, kAvx512 = 2 };
int g_forced = -1;

int best_level() {
#if defined(__x86_64__) || defined(__i386__)
  if (__builtin_cpu_supports("avx512f")) return kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return kAvx2;
#endif
  return kBase;
}
int level() {
  static const int best = best_level();
  return g_forced < 0 || g_forced > best ? best : g_forced;
}

void check_audio(const float* x, int64_t n, const char* name) {
  // the widest vectorised pass the CPU has; the index is looked up only on failure
#if defined(__x86_64__) || defined(__i386__)
  if (level() == kAvx512 ? avx512::audio_ok(x, n) : base::audio_ok(x, n)) return;
#else
  if (base::audio_ok(x, n)) return;
#endif
  for (int64_t i = 0; i < n; ++i)
    if (!(std::fabs(x[i]) <= 32768.0f))
      throw ArgError(std::string(name) + ": " + (std::isfinite(x[i]) ? "|value| > 32768" : "NaN or inf") +
                     " at sample " + std::to_string(i) + " (float audio is expected in [-1, 1])");
}

}  // namespace

const char* speech_level() {
  static const char* names[] = {"baseline", "avx2", "avx512"};
  return names[level()];
}
void speech_gate_net_force_level(int level);  // speech_gate_net_s8.cc: the same levels for its int8 dots
void speech_force_level(const char* lv) {
  const std::string s(lv);
  if (s.empty()) g_forced = -1;
  else if (s == "baseline" || s == "scalar") g_forced = kBase;
  else if (s == "avx2") g_forced = kAvx2;
  else if (s == "avx512") g_forced = kAvx512;
  else throw ArgError("level: expected '', 'baseline', 'avx2' or 'avx512', got '" + s + "'");
  speech_gate_net_force_level(g_forced);
}

float speech_ln_f32(float x) { return base::ln_lane(x); }

void speech_logmel_f32(const float* x, int64_t n, float* feat) {
  check(n >= SPEECH_FRAME, "x: need at least 480 samples (one 30 ms frame at 16 kHz), got " + std::to_string(n));
  const int64_t T = speech_num_frames(n);
  const int lv = level();
  const int L = lv == kAvx512 ? 16 : lv == kAvx2 ? 8 : 4;
  const int64_t nb = (T + L - 1) / L;
  (void)speech_tables();  // built before the threads start
  (void)fft_tables();
  int ok = 1;
#pragma omp parallel for schedule(static) if (nb >= 16) reduction(&& : ok)  // >= 16 blocks (5 s at 16 lanes)
  for (int64_t bi = 0; bi < nb; ++bi) {
    const int64_t t0 = bi * L, nt = std::min<int64_t>(L, T - t0);
    const float* src[16];
    for (int l = 0; l < L; ++l) src[l] = x + (t0 + std::min<int64_t>(l, nt - 1)) * SPEECH_HOP;
    alignas(64) float tail[16 * SPEECH_NMELS];  // the last block: lanes past T repeat its last frame
    float* out = nt == L ? feat + t0 * SPEECH_NMELS : tail;
    const bool contiguous = nt == L;
    int blk_ok;
#if defined(__x86_64__) || defined(__i386__)
    if (lv == kAvx512)
      blk_ok = contiguous ? avx512::frames_lanes<16, true>(src, out) : avx512::frames_lanes<16>(src, out);
    else if (lv == kAvx2)
      blk_ok = contiguous ? avx2::frames_lanes<8, true>(src, out) : avx2::frames_lanes<8>(src, out);
    else
#endif
      blk_ok = contiguous ? base::frames_lanes<4, true>(src, out) : base::frames_lanes<4>(src, out);
    // the audio check: every block but the last tests samples [t0 hop, (t0 + L) hop) as frames_lanes loads them
    // (contiguous); when that quick test fails (bad or near-full-scale audio) they are checked exactly here, and
    // the last block checks [t0 hop, n), the tail past its frames included. The frames of a bad block are
    // computed, then discarded by the throw.
    if (!blk_ok || bi == nb - 1) {
      const int64_t c0 = t0 * SPEECH_HOP, c = (bi == nb - 1 ? n : c0 + int64_t(L) * SPEECH_HOP) - c0;
#if defined(__x86_64__) || defined(__i386__)
      blk_ok = lv == kAvx512 ? avx512::audio_ok(x + c0, c)
               : lv == kAvx2 ? avx2::audio_ok(x + c0, c) : base::audio_ok(x + c0, c);
#else
      blk_ok = base::audio_ok(x + c0, c);
#endif
    }
    ok = blk_ok && ok;
    if (out == tail) std::memcpy(feat + t0 * SPEECH_NMELS, tail, sizeof(float) * size_t(nt * SPEECH_NMELS));
  }
  if (!ok) check_audio(x, n, "x");  // throws, naming the first bad sample
}

int64_t speech_logmel_stream_push_f32(LogMelStreamF32* st, const float* x, int64_t n, float* feat) {
  check(st != nullptr, "state: null");
  check(n >= 0, "x: negative length");
  check(st->fill >= 0 && st->fill < SPEECH_FRAME, "state: corrupt fill count");
  check_audio(x, n, "x");
  int64_t out = 0;
  while (n > 0) {
    const int64_t take = std::min<int64_t>(n, SPEECH_FRAME - st->fill);
    std::memcpy(st->buf + st->fill, x, size_t(take) * sizeof(float));
    st->fill += int32_t(take), x += take, n -= take;
    if (st->fill == SPEECH_FRAME) {
      const float* src[1] = {st->buf};
#if defined(__x86_64__) || defined(__i386__)
      if (level() >= kAvx2) avx2::frames_lanes<1>(src, feat + out * SPEECH_NMELS);  // inlined FMA, same bits
      else
#endif
        base::frames_lanes<1>(src, feat + out * SPEECH_NMELS);
      ++out, ++st->frames;
      std::memmove(st->buf, st->buf + SPEECH_HOP, sizeof(float) * (SPEECH_FRAME - SPEECH_HOP));
      st->fill = SPEECH_FRAME - SPEECH_HOP;
    }
  }
  return out;
}

void speech_rfft512_f32(const float* x, float* X) {
  // the transform of frames_lanes<1> without window and mel
  const SpeechTables& T = speech_tables();
  float ar[256], ai[256];
  for (int n = 0; n < 256; ++n) ar[n] = x[2 * n], ai[n] = x[2 * n + 1];
  base::fft256<float>(ar, ai, fft_tables());
  for (int k = 0; k <= 128; ++k) {
    float xr, xi, yr, yi;
    base::split_pair<float>(ar, ai, T, k, xr, xi, yr, yi);
    X[2 * k] = 0.5f * xr, X[2 * k + 1] = 0.5f * xi, X[2 * (256 - k)] = 0.5f * yr, X[2 * (256 - k) + 1] = 0.5f * yi;
  }
}

}  // namespace edgelearn

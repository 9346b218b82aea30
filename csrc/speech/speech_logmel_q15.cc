// speech_logmel_q15: the integer log-mel front-end (speech.h defines it bit for bit), offline and streaming.
// Plain int32/int64 arithmetic, one frame at a time: the code a Cortex-M build runs (SMULL-sized products).
#include <cstring>
#include <string>

#include "edgelearn/common.h"
#include "edgelearn/speech.h"

namespace edgelearn {

namespace {

inline int32_t mulq30(int64_t a, int64_t b, int64_t c, int64_t d) {  // (a b - c d) rounded from Q30
  return int32_t((a * b - c * d + (int64_t(1) << 29)) >> 30);
}

void fft_q(int32_t* ar, int32_t* ai, int32_t* X2) {
  const SpeechTables& T = speech_tables();
  for (int m = 2; m <= 256; m *= 2) {
    const int half = m / 2, step = 256 / m;
    for (int k = 0; k < 256; k += m)
      for (int j = 0; j < half; ++j) {
        const int64_t c = T.twq_re[j * step], s = T.twq_im[j * step];
        const int64_t yr = ar[k + j + half], yi = ai[k + j + half];
        const int32_t tr = mulq30(yr, c, yi, s), ti = mulq30(yr, s, -yi, c);
        const int32_t ur = ar[k + j], ui = ai[k + j];
        ar[k + j] = ur + tr, ai[k + j] = ui + ti, ar[k + j + half] = ur - tr, ai[k + j + half] = ui - ti;
      }
  }
  for (int k = 0; k < SPEECH_NBINS; ++k) {
    const int km = k & 255, kn = (256 - k) & 255;
    const int64_t c = T.spq_re[k], s = T.spq_im[k];
    const int64_t er = int64_t(ar[km]) + ar[kn], ei = int64_t(ai[km]) - ai[kn];
    const int64_t o_r = int64_t(ai[km]) + ai[kn], o_i = -(int64_t(ar[km]) - ar[kn]);
    X2[2 * k] = int32_t(er + mulq30(o_r, c, o_i, s));
    X2[2 * k + 1] = int32_t(ei + mulq30(o_r, s, -o_i, c));
  }
}

void frame_q15(const int16_t* x, int16_t* out) {
  const SpeechTables& T = speech_tables();
  int32_t ar[256], ai[256], X2[2 * SPEECH_NBINS];
  for (int n = 0; n < 256; ++n) {
    const int i0 = 2 * T.bitrev[n];
    if (i0 < SPEECH_FRAME) {
      ar[n] = (int32_t(x[i0]) * T.winq[i0] + (1 << 14)) >> 15;
      ai[n] = (int32_t(x[i0 + 1]) * T.winq[i0 + 1] + (1 << 14)) >> 15;
    } else {
      ar[n] = ai[n] = 0;
    }
  }
  fft_q(ar, ai, X2);
  uint64_t P[SPEECH_NBINS];
  for (int k = 0; k < SPEECH_NBINS; ++k) {
    const int64_t re = X2[2 * k], im = X2[2 * k + 1];
    P[k] = uint64_t((re * re + im * im) >> 2);
  }
  for (int b = 0; b < SPEECH_NMELS; ++b) {
    uint64_t acc = uint64_t(1) << Q15_LOG_EPS_SHIFT;
    const uint16_t* w = T.mel_wq + T.mel_off[b];
    const uint64_t* Pb = P + T.mel_lo[b];
    for (int j = 0; j < T.mel_len[b]; ++j) acc += uint64_t(w[j]) * Pb[j];
    out[b] = speech_log_q10(acc);
  }
}

}  // namespace

int16_t speech_log_q10(uint64_t acc) {
  const SpeechTables& T = speech_tables();
  if (acc == 0) acc = 1;
  const int e = 63 - __builtin_clzll(acc);
  const int64_t up = e >= 30 ? int64_t(acc >> (e - 30)) : int64_t(acc << (30 - e));
  const int64_t f = up - (int64_t(1) << 30);
  const int64_t i = f >> 24, r = f & ((1 << 24) - 1);
  const int64_t l = T.log2_tab[i] + (((int64_t(T.log2_tab[i + 1]) - T.log2_tab[i]) * r + (1 << 23)) >> 24);
  const int64_t t = (int64_t(e - 45) << 30) + l;
  int64_t y = (t * 11629080 + (int64_t(1) << 43)) >> 44;
  return int16_t(y < -32768 ? -32768 : y > 32767 ? 32767 : y);
}

void speech_rfft512_q15(const int32_t* x, int32_t* X2) {
  const SpeechTables& T = speech_tables();
  int32_t ar[256], ai[256];
  for (int n = 0; n < 256; ++n) {
    check(x[2 * n] > -32768 && x[2 * n] < 32768 && x[2 * n + 1] > -32768 && x[2 * n + 1] < 32768,
          "x: values must be in (-2^15, 2^15)");
    ar[n] = x[2 * T.bitrev[n]], ai[n] = x[2 * T.bitrev[n] + 1];
  }
  fft_q(ar, ai, X2);
}

void speech_logmel_q15(const int16_t* x, int64_t n, int16_t* feat) {
  check(n >= SPEECH_FRAME, "x: need at least 480 samples (one 30 ms frame at 16 kHz), got " + std::to_string(n));
  const int64_t T = speech_num_frames(n);
  (void)speech_tables();
#pragma omp parallel for schedule(static) if (T >= 4096)  // long audio only
  for (int64_t t = 0; t < T; ++t) frame_q15(x + t * SPEECH_HOP, feat + t * SPEECH_NMELS);
}

int64_t speech_logmel_stream_push_q15(LogMelStreamQ15* st, const int16_t* x, int64_t n, int16_t* feat) {
  check(st != nullptr, "state: null");
  check(n >= 0, "x: negative length");
  check(st->fill >= 0 && st->fill < SPEECH_FRAME, "state: corrupt fill count");
  int64_t out = 0;
  while (n > 0) {
    const int64_t take = std::min<int64_t>(n, SPEECH_FRAME - st->fill);
    std::memcpy(st->buf + st->fill, x, size_t(take) * sizeof(int16_t));
    st->fill += int32_t(take), x += take, n -= take;
    if (st->fill == SPEECH_FRAME) {
      frame_q15(st->buf, feat + out * SPEECH_NMELS);
      ++out, ++st->frames;
      std::memmove(st->buf, st->buf + SPEECH_HOP, sizeof(int16_t) * (SPEECH_FRAME - SPEECH_HOP));
      st->fill = SPEECH_FRAME - SPEECH_HOP;
    }
  }
  return out;
}

}  // namespace edgelearn

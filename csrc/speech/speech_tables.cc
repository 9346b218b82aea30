// Tables of the speech front-ends (speech.h), computed once in double precision: window, twiddles, sparse mel
// filterbank (HTK, librosa-equal), log2 interpolation table, bit reversal. A firmware build may bake them.
#include <cmath>
#include <cstring>

#include "edgelearn/speech.h"

namespace edgelearn {

namespace {

int64_t q(double v, double one) { return int64_t(std::floor(v * one + 0.5)); }

SpeechTables make_tables() {
  SpeechTables t;
  std::memset(&t, 0, sizeof(t));
  const double pi = 3.14159265358979323846;
  for (int n = 0; n < SPEECH_FRAME; ++n) {
    const double w = 0.5 - 0.5 * std::cos(2.0 * pi * n / SPEECH_FRAME);
    t.win[n] = float(w);
    t.winq[n] = int16_t(q(w, 32767.0));
  }
  for (int i = 0; i < 128; ++i) {
    const double c = std::cos(-2.0 * pi * i / 256), s = std::sin(-2.0 * pi * i / 256);
    t.tw_re[i] = float(c), t.tw_im[i] = float(s);
    t.twq_re[i] = int32_t(q(c, 1073741824.0)), t.twq_im[i] = int32_t(q(s, 1073741824.0));
  }
  for (int k = 0; k < SPEECH_NBINS; ++k) {
    const double c = std::cos(-2.0 * pi * k / 512), s = std::sin(-2.0 * pi * k / 512);
    t.sp_re[k] = float(c), t.sp_im[k] = float(s);
    t.spq_re[k] = int32_t(q(c, 1073741824.0)), t.spq_im[k] = int32_t(q(s, 1073741824.0));
  }
  for (int i = 0; i < 256; ++i) {
    int r = 0;
    for (int b = 0; b < 8; ++b) r |= ((i >> b) & 1) << (7 - b);
    t.bitrev[i] = uint8_t(r);
  }
  for (int i = 0; i <= 64; ++i) t.log2_tab[i] = int32_t(q(std::log2(1.0 + i / 64.0), 1073741824.0));
  // mel: the formula of reference.speech_mel_weights, in the same double operations
  const double m_max = 2595.0 * std::log10(1.0 + 8000.0 / 700.0);
  double hz[SPEECH_NMELS + 2];
  for (int i = 0; i < SPEECH_NMELS + 2; ++i)
    hz[i] = 700.0 * (std::pow(10.0, (i * (m_max / (SPEECH_NMELS + 1))) / 2595.0) - 1.0);
  int off = 0;
  for (int b = 0; b < SPEECH_NMELS; ++b) {
    const double d0 = hz[b + 1] - hz[b], d1 = hz[b + 2] - hz[b + 1];
    int lo = -1, hi = -1;
    double w[SPEECH_NBINS];
    for (int k = 0; k < SPEECH_NBINS; ++k) {
      const double f = k * (double(SPEECH_SR) / SPEECH_NFFT);
      const double lower = -(hz[b] - f) / d0, upper = (hz[b + 2] - f) / d1;
      w[k] = std::fmax(0.0, std::fmin(lower, upper));
      if (w[k] > 0) {
        if (lo < 0) lo = k;
        hi = k;
      }
    }
    if (lo < 0) lo = hi = 0;  // cannot happen at these parameters; keeps the table well formed
    t.mel_lo[b] = int16_t(lo), t.mel_len[b] = int16_t(hi - lo + 1), t.mel_off[b] = int16_t(off);
    for (int k = lo; k <= hi; ++k, ++off) {
      t.mel_w[off] = float(w[k]);
      t.mel_wq[off] = uint16_t(q(w[k], 32768.0));
    }
  }
  t.mel_nnz = off;
  return t;
}

}  // namespace

const SpeechTables& speech_tables() {
  static const SpeechTables t = make_tables();
  return t;
}

int64_t speech_num_frames(int64_t n) { return n < SPEECH_FRAME ? 0 : 1 + (n - SPEECH_FRAME) / SPEECH_HOP; }

}  // namespace edgelearn

// speech_mask_segments_s16: keep/drop gates over uniform segments of an int16 waveform with raised-cosine ramps
// at the gate edges (speech.h), offline and streaming with bounded delay. Integer only; no allocation.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "edgelearn/common.h"
#include "edgelearn/speech.h"

namespace edgelearn {

namespace {

void make_ramp(int32_t R, uint16_t* r) {
  const double pi = 3.14159265358979323846;
  for (int i = 0; i < R; ++i) r[i] = uint16_t(std::floor(32768.0 * (0.5 * (1.0 - std::cos(pi * (i + 0.5) / R))) + 0.5));
}

void check_params(int64_t L, int32_t R) {
  check(L >= 2 && L <= (int64_t(1) << 20), "seg_len: must be in [2, 2^20], got " + std::to_string(L));
  check(R >= 2 && R % 2 == 0 && R <= L && R <= MASK_MAX_RAMP,
        "ramp: must be even and in [2, min(seg_len, " + std::to_string(MASK_MAX_RAMP) + ")], got " +
            std::to_string(R));
}

// Q15 gain of sample n; gate(s) gives the gate of segment s (already extended past the end by the caller).
template <class G>
inline int32_t gain_at(int64_t n, int64_t L, int32_t R, const uint16_t* r, G gate) {
  const int64_t s = n / L, h = R / 2;
  const int g = gate(s);
  if (n >= (s + 1) * L - h) {
    const int gn = gate(s + 1);
    if (gn != g) {
      const int64_t i = n - ((s + 1) * L - h);
      return gn ? r[i] : 32768 - r[i];
    }
  }
  if (s >= 1 && n < s * L + R - h) {
    const int gp = gate(s - 1);
    if (gp != g) {
      const int64_t i = n - (s * L - h);
      return g ? r[i] : 32768 - r[i];
    }
  }
  return g ? 32768 : 0;
}

inline int16_t apply(int16_t x, int32_t gain) { return int16_t((int32_t(x) * gain + (1 << 14)) >> 15); }

}  // namespace

void speech_mask_segments_s16(const int16_t* x, int64_t n, const uint8_t* gates, int64_t n_gates, int64_t L,
                              int32_t R, int16_t* y) {
  check_params(L, R);
  check(n >= 1, "x: must not be empty");
  const int64_t S = (n + L - 1) / L;
  check(n_gates >= S, "gates: need ceil(len(x) / seg_len) = " + std::to_string(S) + " gates, got " +
                          std::to_string(n_gates));
  for (int64_t s = 0; s < S; ++s)
    check(gates[s] <= 1, "gates: values must be 0 or 1, got " + std::to_string(gates[s]) + " at " +
                             std::to_string(s));
  uint16_t r[MASK_MAX_RAMP];
  make_ramp(R, r);
  auto gate = [&](int64_t s) { return int(gates[s < S ? s : S - 1]); };
  // per segment: its flat part copied or zeroed, the samples within R/2 of a boundary through gain_at
  const int64_t h = R / 2;
  for (int64_t s = 0; s < S; ++s) {
    const int64_t a = s * L, b = std::min(n, a + L);
    const int64_t fa = std::min(b, s == 0 ? a : a + (R - h)), fb = std::max(fa, std::min(b, a + L - h));
    for (int64_t i = a; i < fa; ++i) y[i] = apply(x[i], gain_at(i, L, R, r, gate));
    if (gates[s])
      std::memcpy(y + fa, x + fa, size_t(fb - fa) * sizeof(int16_t));
    else
      std::memset(y + fa, 0, size_t(fb - fa) * sizeof(int16_t));
    for (int64_t i = fb; i < b; ++i) y[i] = apply(x[i], gain_at(i, L, R, r, gate));
  }
}

void speech_mask_stream_init(MaskStream* st, int64_t L, int32_t R, int16_t* buf, int64_t capacity) {
  check(st != nullptr, "state: null");
  check_params(L, R);
  check(buf != nullptr && capacity >= 1, "capacity: must be >= 1");
  *st = MaskStream();
  st->seg_len = L, st->ramp = R, st->buf = buf, st->capacity = capacity;
  make_ramp(R, st->rtab);
}

namespace {

// Emits the samples whose gains are determined; final: the audio has ended (gates past it repeat the last one).
int64_t emit(MaskStream* st, int16_t* y, bool final) {
  const int64_t L = st->seg_len, h = st->ramp / 2;
  const int64_t S_end = (st->n_in + L - 1) / L;  // segments holding audio so far
  auto gate = [&](int64_t s) {
    if (final && s >= S_end) s = S_end - 1;
    return int(st->gates[s % MASK_GATE_RING]);
  };
  int64_t out = 0;
  while (st->n_out < st->n_in) {
    const int64_t n = st->n_out, need = (n + h) / L;
    if (!final && (need >= st->n_gates || need * L >= st->n_in)) break;
    y[out++] = apply(st->buf[n % st->capacity], gain_at(n, L, st->ramp, st->rtab, gate));
    ++st->n_out;
  }
  return out;
}

}  // namespace

int64_t speech_mask_stream_push(MaskStream* st, const int16_t* x, int64_t nx, const uint8_t* g, int64_t ng,
                                int16_t* y) {
  check(st != nullptr && st->buf != nullptr, "state: not initialised");
  check(nx >= 0 && ng >= 0, "x: negative length");
  for (int64_t i = 0; i < ng; ++i)
    check(g[i] <= 1, "gates: values must be 0 or 1, got " + std::to_string(g[i]) + " at " + std::to_string(i));
  // gates and audio are taken in turns, as far as the gate ring and the audio buffer allow, emitting between
  // turns: either may run ahead of the other within those bounds, in any chunking
  const int64_t L = st->seg_len;
  auto oldest = [&] { return std::max<int64_t>(0, st->n_out / L - 1); };  // the ring keeps gates from here on
  int64_t out = 0, xi = 0, gi = 0;
  while (xi < nx || gi < ng) {
    bool progress = false;
    for (; gi < ng && st->n_gates - oldest() < MASK_GATE_RING; ++gi, progress = true)
      st->gates[st->n_gates++ % MASK_GATE_RING] = g[gi];
    for (; xi < nx && st->n_in - st->n_out < st->capacity; ++xi, progress = true)
      st->buf[st->n_in++ % st->capacity] = x[xi];
    const int64_t e = emit(st, y + out, false);
    out += e;
    if (!progress && e == 0) {
      check(gi >= ng, "gates: more than " + std::to_string(MASK_GATE_RING - 2) +
                          " gates queued ahead of the audio");
      check(false, "x: more than capacity = " + std::to_string(st->capacity) +
                       " samples wait for their gates (push gates)");
    }
  }
  return out + emit(st, y + out, false);
}

int64_t speech_mask_stream_finish(MaskStream* st, int16_t* y) {
  check(st != nullptr && st->buf != nullptr, "state: not initialised");
  const int64_t S = (st->n_in + st->seg_len - 1) / st->seg_len;
  check(st->n_gates >= S, "gates: the audio so far needs " + std::to_string(S) + " gates, got " +
                              std::to_string(st->n_gates));
  return emit(st, y, true);
}

}  // namespace edgelearn

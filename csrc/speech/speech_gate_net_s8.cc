// speech_gate_net_s8: the on-device part of the SILENCE mask generator as int8 inference over segment-pooled q15
// log-mel features (speech.h defines the blob format and every integer step). Views into the blob, caller-owned
// scratch: nothing is allocated.
#include <cstring>
#include <string>

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

// int8 dot product, exact in int32 (|sum| <= 9 * 64 * 128 * 127): a baseline and an AVX2 build of the same
// loop (the compiler widens to 16 bits and uses pmaddwd), chosen at run time.
inline int32_t dot_s8_base(const int8_t* w, const int8_t* x, int32_t n) {
  int32_t d = 0;
  for (int32_t c = 0; c < n; ++c) d += int32_t(int16_t(w[c]) * int16_t(x[c]));
  return d;
}
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC push_options
#pragma GCC target("avx2")
int32_t dot_s8_avx2(const int8_t* w, const int8_t* x, int32_t n) {
  int32_t d = 0;
  for (int32_t c = 0; c < n; ++c) d += int32_t(int16_t(w[c]) * int16_t(x[c]));
  return d;
}
#pragma GCC pop_options
#endif
using DotFn = int32_t (*)(const int8_t*, const int8_t*, int32_t);
DotFn pick_dot() {
#if defined(__x86_64__) || defined(__i386__)
  if (__builtin_cpu_supports("avx2")) return dot_s8_avx2;
#endif
  return dot_s8_base;
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
    for (int64_t j = 0; j < wb; ++j)
      if (L.W[j] == -128) bad(li + "W values must be in [-127, 127]");
    r.take((4 - wb % 4) % 4, "W padding");
    net.macs_per_segment += wb;
    cin_expected = L.cout;
  }
  if (r.pos != nbytes) bad("trailing bytes after the last layer");
  return net;
}

void speech_gate_net_s8(const GateNet& net, const int16_t* feat, int64_t T, int8_t* scratch, int32_t* logits,
                        uint8_t* gates) {
  check(T >= 1, "feat: need at least one frame");
  const int64_t S = speech_gate_net_segments(net, T);
  int8_t* a = scratch;                      // [S, GATE_MAX_CH]
  int8_t* b = scratch + S * GATE_MAX_CH;    // [S, GATE_MAX_CH]
  // pool + input quantisation
  for (int64_t s = 0; s < S; ++s) {
    const int64_t f0 = s * net.F, cnt = std::min<int64_t>(net.F, T - f0);
    for (int c = 0; c < SPEECH_NMELS; ++c) {
      int64_t sum = 0;
      for (int64_t f = f0; f < f0 + cnt; ++f) sum += feat[f * SPEECH_NMELS + c];
      const int64_t qv = ((sum < 0 ? -sum : sum) + cnt / 2) / cnt, p = sum < 0 ? -qv : qv;
      int64_t v = ((p - rd(net.in_offset, c)) * rd(net.in_mult, c) + (int64_t(1) << (net.in_shift - 1))) >>
                  net.in_shift;
      a[s * GATE_MAX_CH + c] = int8_t(v < -128 ? -128 : v > 127 ? 127 : v);
    }
  }
  for (int i = 0; i < net.n_layers; ++i) {
    const GateLayer& L = net.layers[i];
    const bool last = i == net.n_layers - 1;
    const int h = L.k / 2;
    static const DotFn dot_s8 = pick_dot();
    const int64_t kc = int64_t(L.k) * L.cin;
    int8_t win[GATE_MAX_K * GATE_MAX_CH];  // im2col row: the k input rows around s, zeros outside (CMSIS-NN style)
    for (int64_t s = 0; s < S; ++s) {
      for (int j = 0; j < L.k; ++j) {
        const int64_t src = s + j - h;
        if (src < 0 || src >= S)
          std::memset(win + j * L.cin, 0, size_t(L.cin));
        else
          std::memcpy(win + j * L.cin, a + src * GATE_MAX_CH, size_t(L.cin));
      }
      for (int o = 0; o < L.cout; ++o) {
        const int32_t acc = rd(L.bias, o) + dot_s8(L.W + o * kc, win, int32_t(kc));
        if (last) {
          logits[s] = acc;
          gates[s] = acc > 0 ? 1 : 0;
        } else {
          const int32_t sh = rd(L.shift, o);
          const int64_t v = (int64_t(acc) * rd(L.mult, o) + (int64_t(1) << (sh - 1))) >> sh;
          const int64_t lo = L.relu ? 0 : -128;
          b[s * GATE_MAX_CH + o] = int8_t(v < lo ? lo : v > 127 ? 127 : v);
        }
      }
    }
    std::swap(a, b);
  }
}

}  // namespace edgelearn

// The speech family: a streaming log-mel front-end (float32 and q15 fixed point), keep/drop segment masks on the
// int16 waveform, and the int8 gate network that decides the gates (SILENCE, Cai et al. 2024). Everything here is
// written for a Cortex-M as much as for the host: no allocation in any kernel (callers own state, outputs and
// scratch), fixed-size state structs, integer algorithms defined bit for bit, tables computed once.
//
// ---------------------------------------------------------------------------------------------- front-end
// Audio is 16 kHz mono (other rates are refused: resample first). Frame t covers samples [320 t, 320 t + 480)
// (30 ms window, 20 ms hop, no centring or padding): N samples give T = 1 + (N - 480) / 320 frames (N >= 480;
// integer division; the tail that does not fill a frame waits for more audio in a stream).
// Per frame:
//   window   periodic Hann  w[n] = 0.5 - 0.5 cos(2 pi n / 480), n < 480 (scipy.signal.get_window("hann", 480),
//            librosa's default), zero-padded to 512
//   rFFT     512-point real FFT: a 256-point complex FFT Z of z[n] = x[2n] + i x[2n+1], then the
//            split step X[k] = (E + W_512^k O) / 2 with E = Z[k] + conj(Z[256-k]), O = -i (Z[k] - conj(Z[256-k]))
//            (Z[256] = Z[0]), k = 0..256. Own code: no FFT library, the same source builds for a Cortex-M.
//            float: radix-4 decimation in frequency (natural-order load, output in bit-reversed order; passes of
//            span m = 256, 64, 16 with twiddles W_m^j, W_m^2j, W_m^3j, then m = 4 with unit twiddles);
//            q15: radix-2 decimation in time (bit-reversed load; stage m = 2, 4, ..., 256, twiddles W_m^j).
//   power    P[k] = Re(X[k])^2 + Im(X[k])^2, 257 bins
//   mel      40 triangular bands, HTK mel scale mel(f) = 2595 log10(1 + f / 700), fmin = 0 Hz, fmax = 8000 Hz,
//            no area normalisation: exactly librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=0,
//            fmax=8000, htk=True, norm=None). Each band keeps its run of non-zero bins (sparse; 2 x 257 at most).
//   log      natural log with a floor: feat[b] = ln(mel[b] + 2^-20)
// Audio scale: float audio is nominally in [-1, 1]. Values outside are processed as they are (no clipping; the
// front-end is linear up to the log, so a gain a shifts every feature by 2 ln a); |x| > 32768 or NaN/inf is
// refused (ArgError naming the argument: that is unnormalised or broken audio). int16 audio x maps to x / 32768.
//
// speech_logmel_f32: float32 throughout (tables rounded from double). Frames are computed independently, 1, 4, 8
// or 16 at a time in SIMD lanes (run-time dispatch: avx512f, avx2+fma, baseline; -ffp-contract=off, own log),
// with the same IEEE operations in the same order in every lane width: results are identical on every path, for
// any thread count and for any chunking of a stream. Complex products, the split, the power and the mel sums use
// explicit fused multiply-adds (one rounding): the FMA unit on avx2+fma / avx512f, std::fma on the baseline (a
// libm call per lane on an x86 without FMA: correct, ~15x slower than before; the Cortex-M7 and NEON have FMA).
// The NumPy twin (float64 FFT) agrees to atol 2e-5 + rtol 1e-6.
//
// speech_logmel_q15: int16 in, int16 out; the integer algorithm below is the definition (bit-exact NumPy twin).
//   xw[n]   = (x[n] * wq[n] + 2^14) >> 15,  wq[n] = floor(32767 w[n] + 0.5)                  (|xw| < 2^15)
//   FFT     int32 data, Q30 twiddles c = floor(2^30 cos + 0.5), s = floor(2^30 sin + 0.5) of exp(-2 pi i t / 256);
//           complex product b * w: re = (br c - bi s + 2^29) >> 30, im = (br s + bi c + 2^29) >> 30 (int64 products,
//           arithmetic shifts); butterfly a' = a + t, b' = a - t; no scaling per stage (|Z| < 2^24)
//   split   2X[k] = E + W_512^k O as above in integers (Q30 twiddles of exp(-2 pi i k / 512), same rounding): the
//           factor 2 is kept; P[k] = (Re^2 + Im^2) >> 2 (int64, < 2^51)
//   mel     acc[b] = 2^25 + sum_k mq[b, k] P[k] (uint64), mq = floor(32768 weight + 0.5) (<= 32768).
//           Bound: each bin's weights over all bands sum to <= 1, and sum_k P[k] <= 512 * 480 * 2^30 (Parseval),
//           so acc < 2^63. acc ~ 2^45 (mel + 2^-20) of the float front-end on x / 32768.
//   log     e = floor(log2 acc) (>= 25), f = acc / 2^e - 1 in Q30 (shifts), table L[i] = floor(2^30 log2(1 + i/64)
//           + 0.5), i = 0..64; l = L[f >> 24] + (((L[(f >> 24) + 1] - L[f >> 24]) (f & (2^24 - 1)) + 2^23) >> 24);
//           t = (e - 45) 2^30 + l;  y = clamp((t * 11629080 + 2^43) >> 44, -32768, 32767)   (11629080 = ln2 2^24)
//   Output format: Q10 (int16 Q5.10) natural log of the mel energy on the float scale: y / 1024 ~ feat of
//   speech_logmel_f32(x / 32768) (within ~0.01 where the band has energy: fixed-point rounding; the log is good to
//   0.03 LSB). Range [-14196 (digital silence), 12776 (full-scale)].
//
// Streaming: a LogMelStream* holds the last partial frame (fixed size: 480 samples + counters). push() takes any
// number of samples (0 included) and writes every frame that completes: frame t is out as soon as sample
// 320 t + 479 is in (latency 30 ms from the frame's first sample; 20 ms chunks give one frame each once primed).
// Pushing audio in any chunking gives exactly the frames of the offline call on the concatenation.
//
// ---------------------------------------------------------------------------------------------- segment masks
// speech_mask_segments_s16: gates g[s] in {0, 1} over uniform segments of L samples (segment s = [s L, (s+1) L));
// the gain ramps at every boundary b = s L (s >= 1) where g[s-1] != g[s] over the R samples [b - R/2, b + R/2):
//   r[i] = floor(32768 * 0.5 (1 - cos(pi (i + 0.5) / R)) + 0.5), i < R      (raised cosine, Q15, 0 < r <= 32768)
//   gain(n) = r[n - b + R/2] on a rising edge (0 -> 1), 32768 - r[n - b + R/2] on a falling edge, else 32768 g[s(n)]
//   y[n] = (x[n] * gain(n) + 2^14) >> 15          (kept samples are unchanged; dropped are 0; no clicks)
// No ramp at the start of the audio; past the last gate the gate is taken as unchanged (no boundary).
// Ranges: 2 <= R <= min(L, 512), R even, L <= 2^20; gates needed: ceil(N / L) (extra ones ignored).
// Streaming (MaskStream): push(audio, gates) in any chunking; sample n is emitted once it is in, the gate of
// segment s' = (n + R/2) / L is known and segment s' has begun (sample s' L is in: otherwise the audio may end
// before it and the offline rule applies): bounded delay of R/2 samples after both (with gates known when each segment's
// audio is complete, that is at most L - 1 + R/2 samples, plus whatever lookahead the gate producer needs).
// finish() emits the rest (needs all gates). Pending audio lives in a caller-owned buffer (capacity fixed at init;
// exceeding it is an ArgError, never a reallocation); up to MASK_GATE_RING - 2 gates may be queued ahead.
//
// ---------------------------------------------------------------------------------------------- gate network
// speech_gate_net_s8: q15 log-mel features [T, 40] -> one logit per segment of F frames -> gate = logit > 0.
//   pool    p[s, c] = round_half_away(sum_{f in seg s} feat[f, c] / cnt)  (cnt = min(F, T - s F); S = ceil(T / F))
//   input   a0[s, c] = clamp(((p - in_offset[c]) * in_mult[c] + 2^(in_shift-1)) >> in_shift, -128, 127)   (int64)
//           (folds the per-band normalisation (feat - mean) / std and the int8 input scale s0:
//            in_offset = round(1024 mean), in_mult = round(2^in_shift / (1024 std s0)))
//   layer l temporal convolution over segments, kernel k (odd), 'same' zero padding (int8 zero = 0):
//           acc[s, o] = bias[o] + sum_{j < k} sum_{c < cin} W[o, j, c] * a[s + j - k/2, c]          (int32, exact)
//           hidden layers: a'[s, o] = clamp((acc * mult[o] + 2^(shift[o]-1)) >> shift[o], relu ? 0 : -128, 127)
//           (int64; mult > 0, 1 <= shift <= 62: the real multiplier s_in s_w[o] / s_out = mult 2^-shift)
//           last layer: cout = 1, its acc is the logit (scale s_in s_w > 0, so gate = acc > 0 = real logit > 0).
// Weights: int8 in [-127, 127], symmetric per output channel; W layout [cout][k][cin] (torch Conv1d's
// [cout, cin, k] transposed). Limits: n_layers <= GATE_MAX_LAYERS, channels <= GATE_MAX_CH, k <= GATE_MAX_K,
// |bias| < 2^30 (with these, |acc| < 2^31 always).
// Blob (the firmware format; little-endian int32 words, then bytes; edgelearn.kernels.speech.gate_net_pack):
//   [0] magic 0x38534E47 ("GNS8")  [1] version 1  [2] n_mels = 40  [3] F (1..64)  [4] n_layers  [5] in_shift
//   (1..30)  in_offset[40]  in_mult[40]
//   per layer: cin cout k relu  bias[cout]  mult[cout]  shift[cout]  W (cout k cin bytes, zero-padded to 4)
// Scratch: caller-owned int8 [2 S GATE_MAX_CH] (speech_gate_net_scratch_bytes) for the activations, plus one
// im2col row of k cin <= 576 values widened to int16 (1.2 KB) on the stack (CMSIS-NN style). Cost: S sum_l k cin
// cout MACs. Host builds: baseline, AVX2 and AVX-512 BW int8 dots chosen at run time (speech_force_level), all
// bit-exact with the twin.
// Quantising a float (torch) network into this format: edgelearn.kernels.speech.gate_net_quantize (per-channel
// weight scales, per-tensor activation scales calibrated on q15 features, multiplier in [2^30, 2^31)).
#pragma once

#include <cstdint>

namespace edgelearn {

constexpr int SPEECH_SR = 16000;
constexpr int SPEECH_FRAME = 480;  // 30 ms
constexpr int SPEECH_HOP = 320;    // 20 ms
constexpr int SPEECH_NFFT = 512;
constexpr int SPEECH_NBINS = 257;
constexpr int SPEECH_NMELS = 40;
constexpr int SPEECH_MEL_MAX_W = 2 * SPEECH_NBINS;  // capacity of the sparse mel table
constexpr int Q15_LOG_EPS_SHIFT = 25;                // acc floor 2^25 = 2^45 * 2^-20
constexpr int Q15_OUT_FRAC = 10;                     // Q10 output

// Tables shared by both front-ends (computed once, in double, on first use; ~8.5 KB; read-only afterwards).
struct SpeechTables {
  float win[SPEECH_FRAME];
  float tw_re[128], tw_im[128];                   // exp(-2 pi i t / 256), t < 128
  float sp_re[SPEECH_NBINS], sp_im[SPEECH_NBINS];  // exp(-2 pi i k / 512), k <= 256
  int16_t winq[SPEECH_FRAME];
  int32_t twq_re[128], twq_im[128], spq_re[SPEECH_NBINS], spq_im[SPEECH_NBINS];  // Q30
  int16_t mel_lo[SPEECH_NMELS], mel_len[SPEECH_NMELS], mel_off[SPEECH_NMELS];  // band b: bins lo.. lo+len-1
  float mel_w[SPEECH_MEL_MAX_W];
  uint16_t mel_wq[SPEECH_MEL_MAX_W];  // Q15, <= 32768
  int32_t log2_tab[65];               // Q30
  uint8_t bitrev[256];
  int mel_nnz;
};
const SpeechTables& speech_tables();

// Offline: x [n] -> feat [T, 40], T = speech_num_frames(n) (n >= 480; checks x: finite, |x| <= 32768).
int64_t speech_num_frames(int64_t n);
void speech_logmel_f32(const float* x, int64_t n, float* feat);
void speech_logmel_q15(const int16_t* x, int64_t n, int16_t* feat);

// Streaming: fixed-size state (no heap). push returns the number of frames written to feat (at most
// speech_stream_frames_after(state, n), which the caller sizes feat for).
struct LogMelStreamF32 {
  float buf[SPEECH_FRAME];
  int32_t fill = 0;
  int64_t frames = 0;  // frames emitted so far
};
struct LogMelStreamQ15 {
  int16_t buf[SPEECH_FRAME];
  int32_t fill = 0;
  int64_t frames = 0;
};
inline int64_t speech_stream_frames_after(int32_t fill, int64_t n) {
  const int64_t total = fill + n;
  return total < SPEECH_FRAME ? 0 : 1 + (total - SPEECH_FRAME) / SPEECH_HOP;
}
int64_t speech_logmel_stream_push_f32(LogMelStreamF32* st, const float* x, int64_t n, float* feat);
int64_t speech_logmel_stream_push_q15(LogMelStreamQ15* st, const int16_t* x, int64_t n, int16_t* feat);

// Lane path of the float front-end: "avx512", "avx2" or "baseline"; force for tests ("" = best).
const char* speech_level();
void speech_force_level(const char* level);

// Building blocks, for tests against outside references (CMSIS-DSP): the float 512-point real FFT of x [512]
// (X [257] as interleaved re, im), the q15 one (2X, int32 interleaved), and the integer log of a mel accumulator.
void speech_rfft512_f32(const float* x, float* X);
void speech_rfft512_q15(const int32_t* x, int32_t* X2);
int16_t speech_log_q10(uint64_t acc);
float speech_ln_f32(float x);

// ---------------------------------------------------------------------------------------------- masks
constexpr int MASK_GATE_RING = 64;
constexpr int MASK_MAX_RAMP = 512;  // 32 ms
void speech_mask_segments_s16(const int16_t* x, int64_t n, const uint8_t* gates, int64_t n_gates, int64_t seg_len,
                              int32_t ramp, int16_t* y);

struct MaskStream {
  int64_t seg_len = 0;
  int32_t ramp = 0;
  int16_t* buf = nullptr;  // caller-owned, capacity samples (ring)
  int64_t capacity = 0;
  int64_t n_in = 0, n_out = 0;  // audio samples received / emitted
  int64_t n_gates = 0;          // gates received
  uint8_t gates[MASK_GATE_RING];
  uint16_t rtab[MASK_MAX_RAMP];  // ramp table (values up to 32768)
};
void speech_mask_stream_init(MaskStream* st, int64_t seg_len, int32_t ramp, int16_t* buf, int64_t capacity);
// Appends x [nx] and gates [ng]; writes the samples now determined to y; returns their number (<= pending + nx).
int64_t speech_mask_stream_push(MaskStream* st, const int16_t* x, int64_t nx, const uint8_t* g, int64_t ng,
                                int16_t* y);
// Emits every remaining sample (all gates up to ceil(n_in / L) must have arrived); returns their number.
int64_t speech_mask_stream_finish(MaskStream* st, int16_t* y);

// ---------------------------------------------------------------------------------------------- gate network
constexpr int GATE_MAX_LAYERS = 4;
constexpr int GATE_MAX_CH = 64;
constexpr int GATE_MAX_K = 9;
constexpr int32_t GATE_MAGIC = 0x38534E47;

struct GateLayer {
  int32_t cin = 0, cout = 0, k = 0, relu = 0;
  const uint8_t* bias = nullptr;  // int32 [cout], unaligned little-endian (read with memcpy)
  const uint8_t* mult = nullptr;
  const uint8_t* shift = nullptr;
  const int8_t* W = nullptr;  // [cout][k][cin]
};
struct GateNet {
  int32_t F = 0, n_layers = 0, in_shift = 0;
  const uint8_t* in_offset = nullptr;  // int32 [40]
  const uint8_t* in_mult = nullptr;
  GateLayer layers[GATE_MAX_LAYERS];
  int64_t macs_per_segment = 0;
};
// Parses and validates a blob (views into it, no copy); throws ArgError naming `name`.
GateNet speech_gate_net_parse(const uint8_t* blob, int64_t nbytes, const char* name);
inline int64_t speech_gate_net_segments(const GateNet& net, int64_t T) { return (T + net.F - 1) / net.F; }
inline int64_t speech_gate_net_scratch_bytes(int64_t S) { return 2 * S * GATE_MAX_CH; }
// feat [T, 40] q15 log-mel; logits int32 [S], gates uint8 [S]; scratch int8 [2 S GATE_MAX_CH].
// block B >= 1: gates decided per block of B consecutive segments (blocks start at segment 0, the last may be
// shorter): every segment of a block gets gate = (sum of the block's logits, int64) > 0; B = 1: gate = logit > 0.
void speech_gate_net_s8(const GateNet& net, const int16_t* feat, int64_t T, int8_t* scratch, int32_t* logits,
                        uint8_t* gates, int64_t block = 1);

}  // namespace edgelearn

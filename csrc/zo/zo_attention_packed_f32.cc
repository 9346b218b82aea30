// zo_attention_packed_f32: multi-head attention over packed sequences for P streams (contract: zo.h).
//
// Plan. Tasks are (stream s, sequence b, head h), handed out dynamically to threads; a task owns the output block
// out[s, rows of b, head h], so the result does not depend on the thread count. Per task, with L = lengths[b],
// dh = d / H, Lp and dp = L and dh rounded up to 16:
//   1. K^T of the head into kt [dh, Lp] and V into vh [L, dp], zero padded (the strided rows become contiguous);
//   2. per block of 4 query rows (the last block repeats its last row, results dropped):
//        scores [4, Lp] = (scale q) K^T   as 4 x 16 accumulators per 16 keys, 4 FMAs per load of kt,
//        p = exp(scores - row max), row sum (over the L real keys only),
//        out rows = (p V) / sum           as 4 x 16 accumulators per 16 head columns, 4 FMAs per load of vh.
// The block loops are compiled for AVX-512, AVX2+FMA and baseline x86-64 (target_clones, chosen at load time).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "edgelearn/common.h"
#include "edgelearn/zo.h"

namespace edgelearn {

namespace {

constexpr int64_t kRows = 4;     // query rows per block
constexpr int64_t kLanes = 16;   // keys (scores) or head columns (p V) per accumulator row
constexpr int64_t kMaxLen = 4096;

int64_t round16(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

// 16 floats as one GCC vector: one zmm register on AVX-512, two ymm on AVX2, four xmm on baseline x86-64. This
// file is compiled with -ffp-contract=fast (CMakeLists.txt), so acc += a * x becomes an FMA where the CPU has one.
// (Unaligned, may alias float: loads and stores go through pointers of this type.)
typedef float V16 __attribute__((vector_size(64), aligned(4), may_alias));
typedef int32_t V16I __attribute__((vector_size(64), aligned(4), may_alias));
#define V16_AT(p) (*reinterpret_cast<V16*>(p))
#define V16_CAT(p) (*reinterpret_cast<const V16*>(p))

// t[r][c] <- t[c][r] for a 16 x 16 block: four stages swap the off-diagonal b x b sub-blocks (b = 8, 4, 2, 1),
// each a two-source shuffle per row (vpermt2ps on AVX-512).
inline void transpose16(V16* t) {
  typedef int32_t M16 __attribute__((vector_size(64)));
  // lo[s][c] = c & b ? 16 + c - b : c;  hi[s][c] = c & b ? 16 + c : c + b
  static constexpr M16 lo[4] = {
      {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
      {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27},
      {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29},
      {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30},
  };
  static constexpr M16 hi[4] = {
      {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31},
      {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31},
      {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31},
      {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31},
  };
  for (int s = 0, b = 8; s < 4; ++s, b >>= 1)
    for (int i = 0; i < 16; ++i)
      if (!(i & b)) {
        const V16 a = t[i], c = t[i + b];
        t[i] = __builtin_shuffle(a, c, lo[s]);
        t[i + b] = __builtin_shuffle(a, c, hi[s]);
      }
}

// e^x for x <= 0 (x = score - row max), 16 lanes: x = n ln2 + r with |r| <= ln2 / 2, e^r by its degree-6 Taylor
// polynomial (relative error < 2e-7), 2^n from exponent bits. Below -64 the result is e^-64 (~1.6e-28: nothing
// next to the row maximum's 1, and far enough from the float32 minimum that p V stays clear of denormals).
inline V16 exp_nonpos(V16 x) {
  x = x > -64.0f ? x : -64.0f;
  const V16I n = __builtin_convertvector(x * 1.44269504f - 0.5f, V16I);  // round half away from zero (x <= 0)
  const V16 fn = __builtin_convertvector(n, V16);
  const V16 r = (x - fn * 0.693145752f) - fn * 1.42860677e-06f;
  const V16 p =
      1.0f + r * (1.0f + r * (0.5f + r * (0.166666667f + r * (0.0416666667f + r * (0.00833333333f +
                                                                                   r * 0.00138888889f)))));
  return p * reinterpret_cast<const V16&>(static_cast<const V16I&>((n + 127) << 23));
}

struct Scratch {
  float* kt;  // [dh, Lp]
  float* vh;  // [L, dp]
  float* p;   // [4, Lp]
};

// One (stream, sequence, head) block. q, k, v, out point at row 0, column h*dh of the sequence; rows are d apart.
// Returns 0, or (writing nothing) a bit mask of the inputs holding a NaN or inf in this block: 1 q, 2 k, 4 v.
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"))) int head_block(
    const float* q, const float* k, const float* v, float* out, int64_t d, int64_t L, int64_t dh, float scale,
    const Scratch& w) {
  const int64_t Lp = round16(L), dp = round16(dh);
  int fq = 1, fk = 1, fv = 1;  // branch-free checks folded into the copies (vectorise)
  if (dh % kLanes == 0) {  // whole 16 x 16 blocks of K, transposed in registers; V read in place below
    for (int64_t j0 = 0; j0 < Lp; j0 += kLanes)
      for (int64_t c0 = 0; c0 < dh; c0 += kLanes) {
        V16 t[kLanes];
        for (int64_t r = 0; r < kLanes; ++r) t[r] = j0 + r < L ? V16_CAT(k + (j0 + r) * d + c0) : V16{};
        transpose16(t);
        for (int64_t r = 0; r < kLanes; ++r) V16_AT(w.kt + (c0 + r) * Lp + j0) = t[r];
      }
    for (int64_t c = 0; c < dh; ++c)
      for (int64_t j = 0; j < L; ++j) fk &= int(w.kt[c * Lp + j] - w.kt[c * Lp + j] == 0.0f);
    for (int64_t j = 0; j < L; ++j)
      for (int64_t c = 0; c < dh; ++c) fv &= int(v[j * d + c] - v[j * d + c] == 0.0f);
  } else {
    for (int64_t c = 0; c < dh; ++c) {
      float* kr = w.kt + c * Lp;
      for (int64_t j = 0; j < L; ++j) kr[j] = k[j * d + c];
      for (int64_t j = 0; j < L; ++j) fk &= int(kr[j] - kr[j] == 0.0f);
      for (int64_t j = L; j < Lp; ++j) kr[j] = 0.0f;
    }
    for (int64_t j = 0; j < L; ++j) {
      float* vr = w.vh + j * dp;
      for (int64_t c = 0; c < dh; ++c) vr[c] = v[j * d + c];
      for (int64_t c = 0; c < dh; ++c) fv &= int(vr[c] - vr[c] == 0.0f);
      for (int64_t c = dh; c < dp; ++c) vr[c] = 0.0f;
    }
  }
  for (int64_t j = 0; j < L; ++j)
    for (int64_t c = 0; c < dh; ++c) fq &= int(q[j * d + c] - q[j * d + c] == 0.0f);
  // rows of V: in place (row stride d) when dh is a multiple of 16, else the padded copy (row stride dp)
  const float* vsrc = dh % kLanes == 0 ? v : w.vh;
  const int64_t vstride = dh % kLanes == 0 ? d : dp;
  if (!(fq & fk & fv)) return (fq ? 0 : 1) | (fk ? 0 : 2) | (fv ? 0 : 4);
  for (int64_t i0 = 0; i0 < L; i0 += kRows) {
    const float* qr[kRows];
    for (int64_t r = 0; r < kRows; ++r) qr[r] = q + std::min(i0 + r, L - 1) * d;
    for (int64_t j0 = 0; j0 < Lp; j0 += kLanes) {
      V16 acc[kRows] = {};
      for (int64_t c = 0; c < dh; ++c) {
        const V16 kv = V16_CAT(w.kt + c * Lp + j0);
        for (int64_t r = 0; r < kRows; ++r) acc[r] += qr[r][c] * kv;
      }
      for (int64_t r = 0; r < kRows; ++r) V16_AT(w.p + r * Lp + j0) = acc[r] * scale;
    }
    float inv[kRows];
    for (int64_t r = 0; r < kRows; ++r) {  // softmax over the L real keys; lanes from L to Lp end up 0
      float* pr = w.p + r * Lp;
      for (int64_t j = L; j < Lp; ++j) pr[j] = pr[0];
      V16 mx = V16_CAT(pr);
      for (int64_t j0 = kLanes; j0 < Lp; j0 += kLanes) mx = V16_CAT(pr + j0) > mx ? V16_CAT(pr + j0) : mx;
      float m = mx[0];
      for (int i = 1; i < kLanes; ++i) m = mx[i] > m ? mx[i] : m;
      V16 sum = {};
      for (int64_t j0 = 0; j0 < Lp; j0 += kLanes) {
        V16 e = exp_nonpos(V16_CAT(pr + j0) - m);
        if (j0 + kLanes > L)
          for (int64_t j = L - j0; j < kLanes; ++j) e[j] = 0.0f;
        V16_AT(pr + j0) = e;
        sum += e;
      }
      float t = 0.0f;
      for (int i = 0; i < kLanes; ++i) t += sum[i];
      inv[r] = 1.0f / t;
    }
    const int64_t rows = std::min(kRows, L - i0);
    for (int64_t c0 = 0; c0 < dp; c0 += kLanes) {
      V16 acc[kRows] = {};
      for (int64_t j = 0; j < L; ++j) {
        const V16 vv = V16_CAT(vsrc + j * vstride + c0);
        for (int64_t r = 0; r < kRows; ++r) acc[r] += w.p[r * Lp + j] * vv;
      }
      const int64_t cols = std::min(kLanes, dh - c0);
      for (int64_t r = 0; r < rows; ++r) {
        float* orow = out + (i0 + r) * d + c0;
        for (int64_t cc = 0; cc < cols; ++cc) orow[cc] = acc[r][cc] * inv[r];
      }
    }
  }
  return 0;
}

bool overlaps(const void* p, int64_t pbytes, const void* q, int64_t qbytes) {
  const auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(q);
  return a < b + uintptr_t(qbytes) && b < a + uintptr_t(pbytes);
}

}  // namespace

void zo_attention_packed_f32(const ZoAttentionArgs& a, float* out) {
  check(a.q && a.k && a.v && a.lengths, "q, k, v, lengths: must not be null");
  check(out != nullptr, "out: must not be null");
  check(a.N >= 1 && a.d >= 1, "q: N and d must be >= 1");
  check(a.B >= 1, "lengths: need at least one sequence");
  check(a.heads >= 1 && a.d % a.heads == 0,
        "heads: must be >= 1 and divide d = " + std::to_string(a.d) + ", got " + std::to_string(a.heads));
  check(std::isfinite(a.scale), "scale: must be finite");
  const int64_t S = std::max({a.Sq, a.Sk, a.Sv});
  for (auto [s, name] : {std::pair{a.Sq, "q"}, std::pair{a.Sk, "k"}, std::pair{a.Sv, "v"}})
    check(s == 1 || s == S, std::string(name) + ": first dimension must be 1 (shared) or S = " + std::to_string(S) +
                                ", got " + std::to_string(s));
  const int64_t elems = checked_mul(checked_mul(S, a.N, "q"), a.d, "q");
  check(elems <= (int64_t(1) << 40), "out: S*N*d = " + std::to_string(elems) + " elements exceeds 2^40");
  std::unique_ptr<int64_t[]> off(new int64_t[size_t(a.B) + 1]);
  off[0] = 0;
  int64_t longest = 0;
  for (int64_t b = 0; b < a.B; ++b) {
    const int64_t L = a.lengths[b];
    check(L >= 1 && L <= kMaxLen, "lengths: every sequence needs 1 to " + std::to_string(kMaxLen) +
                                      " tokens, got " + std::to_string(L) + " at " + std::to_string(b));
    off[b + 1] = off[b] + L;
    check(off[b + 1] <= a.N, "lengths: sum exceeds N = " + std::to_string(a.N));
    longest = std::max(longest, L);
  }
  check(off[a.B] == a.N, "lengths: sum " + std::to_string(off[a.B]) + " must equal N = " + std::to_string(a.N));
  const int64_t rowb = a.N * a.d * 4;
  for (auto [p, s, name] : {std::tuple{a.q, a.Sq, "q"}, std::tuple{a.k, a.Sk, "k"}, std::tuple{a.v, a.Sv, "v"}}) {
    check(!overlaps(out, S * rowb, p, s * rowb), std::string("out: must not overlap ") + name);
  }

  const int64_t H = a.heads, dh = a.d / H, B = a.B;
  const int64_t tasks = S * B * H;
  const int64_t Lp = round16(longest), dp = round16(dh);
  const int64_t scratch = dh * Lp + longest * dp + kRows * Lp;
  double work = 0.0;  // MACs
  for (int64_t b = 0; b < B; ++b) work += 2.0 * double(a.lengths[b]) * double(a.lengths[b]) * double(a.d);
  work *= double(S);
  int bad = 0;
#pragma omp parallel if (work > 2e6) reduction(| : bad)
  {
    std::unique_ptr<float[]> buf(new float[size_t(scratch)]);
    const Scratch w{buf.get(), buf.get() + dh * Lp, buf.get() + dh * Lp + longest * dp};
#pragma omp for schedule(dynamic, 4)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t s = t / (B * H), b = (t / H) % B, h = t % H;
      const int64_t col = off[b] * a.d + h * dh;
      const float* q = a.q + (a.Sq > 1 ? s : 0) * a.N * a.d + col;
      const float* k = a.k + (a.Sk > 1 ? s : 0) * a.N * a.d + col;
      const float* v = a.v + (a.Sv > 1 ? s : 0) * a.N * a.d + col;
      bad |= head_block(q, k, v, out + s * a.N * a.d + col, a.d, a.lengths[b], dh, a.scale, w);
    }
  }
  check(!(bad & 1), "q: must be finite (found NaN or inf)");
  check(!(bad & 2), "k: must be finite (found NaN or inf)");
  check(!(bad & 4), "v: must be finite (found NaN or inf)");
}

}  // namespace edgelearn

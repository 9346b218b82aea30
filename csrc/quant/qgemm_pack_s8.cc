// qgemm_pack_s8: a frozen int8 weight W [n, k] in the layout of the qgemm micro-kernels (contract: quant.h).
#include <cstring>
#include <string>

#include "edgelearn/common.h"
#include "edgelearn/quant.h"

namespace edgelearn {

namespace {
constexpr int64_t kMaxK = 65536;
}  // namespace

QWeightS8 qgemm_pack_s8(const int8_t* W, int64_t n, int64_t k) {
  check(W != nullptr, "W: must not be null");
  check(n >= 1 && k >= 1, "W: dimensions n and k must be >= 1");
  check(k <= kMaxK, "W: k = " + std::to_string(k) + " inputs exceeds 65536 (int32 accumulator range)");
  QWeightS8 w;
  w.n = n, w.k = k, w.np = (n + 15) / 16 * 16, w.kp = (k + 3) / 4 * 4;
  const int64_t bytes = checked_mul(w.np, w.kp, "W");
  for (int64_t j = 0; j < n; ++j)
    for (int64_t t = 0; t < k; ++t)
      if (W[j * k + t] == -128)
        throw ArgError("W: values must be in [-127, 127] (symmetric int8), found -128 at [" + std::to_string(j) +
                       ", " + std::to_string(t) + "]");
  w.data.assign(size_t(bytes), 0);
  w.colsum.assign(size_t(w.np), 0);
  const int64_t groups = w.kp / 4;
  for (int64_t j = 0; j < n; ++j) {
    int32_t s = 0;
    const int8_t* row = W + j * k;
    int8_t* blk = w.data.data() + (j / 16) * groups * 64 + 4 * (j % 16);
    for (int64_t t = 0; t < k; ++t) s += row[t];
    const int64_t full = k / 4;   // whole 4-byte groups: one 4-byte copy each; the last group may be partial
    for (int64_t g = 0; g < full; ++g) std::memcpy(blk + g * 64, row + 4 * g, 4);
    if (k % 4) std::memcpy(blk + full * 64, row + 4 * full, size_t(k % 4));
    w.colsum[size_t(j)] = s;
  }
  return w;
}

void qgemm_unpack_s8(const QWeightS8& w, int8_t* W) {
  qgemm_check_packed(w, "W");
  const int64_t groups = w.kp / 4;
  for (int64_t j = 0; j < w.n; ++j) {
    const int8_t* blk = w.data.data() + (j / 16) * groups * 64 + 4 * (j % 16);
    int8_t* row = W + j * w.k;
    const int64_t full = w.k / 4;
    for (int64_t g = 0; g < full; ++g) std::memcpy(row + 4 * g, blk + g * 64, 4);
    if (w.k % 4) std::memcpy(row + 4 * full, blk + full * 64, size_t(w.k % 4));
  }
}

void qgemm_check_packed(const QWeightS8& w, const char* name) {
  const std::string nm(name);
  check(w.n >= 1 && w.k >= 1 && w.k <= kMaxK, nm + ": packed weight has invalid dimensions");
  check(w.np == (w.n + 15) / 16 * 16 && w.kp == (w.k + 3) / 4 * 4, nm + ": packed weight has invalid padding");
  check(int64_t(w.data.size()) == w.np * w.kp && int64_t(w.colsum.size()) == w.np,
        nm + ": packed weight is incomplete (create it with qgemm_pack_s8)");
}

}  // namespace edgelearn

// Small vector kernels shared by the zo family, SIMD level chosen at run time (AVX-512, AVX2, scalar).
//
// Determinism: every output element is computed by one call in a fixed order that does not depend on how many
// rows are processed together, on the thread or on the row blocking, so results depend only on the CPU's SIMD
// level (the same on every call of a process).
#pragma once

#include <cstdint>

namespace edgelearn::small {

// out[i * ldo + j] = sum_t x[i * ldx + t] * M[j * d + t]   for i < nx, j < m (t < d), float accumulation.
// The skinny products of low-rank adapters (m = rank, a few to a few dozen): memory-bound, not GEMM-shaped.
void dot_rows(const float* x, int64_t nx, int64_t ldx, const float* M, int64_t m, int64_t d, float* out,
              int64_t ldo);

// dst[t] = (bias[t] + c[0] * Bt[t] + c[1] * Bt[o + t] + ... + c[r-1] * Bt[(r-1) * o + t]) + src[t]   for t < o:
// the low-rank term as one FMA per j in order, starting from bias[t] (0 when bias is nullptr), then src[t] added
// (skipped when src is nullptr). When `stream` is set, dst is written with non-temporal stores (for outputs much
// larger than the caches; call stream_fence() before another thread reads them).
void rank_update_row(const float* src, const float* bias, const float* c, const float* Bt, int64_t r, int64_t o,
                     float* dst, bool stream);
void stream_fence();

// dst[i] = x[i] + a * y[i] for i < n (a rounded product, then a rounded sum).
void axpy_f32(float* dst, const float* x, float a, const float* y, int64_t n);

// dst[j * m + i] = src[i * n + j]: the [m, n] row-major src transposed to [n, m].
void transpose(const float* src, int64_t m, int64_t n, float* dst);

// acc[i] += c * double(z[i]) for i < n: one rounded product, one rounded sum (no FMA), as NumPy computes it.
void axpy_f64(double* acc, const float* z, double c, int64_t n);

// param[i] = float(double(param[i]) + acc[i]) for i < n (round to nearest even).
void add_round_f32(float* param, const double* acc, int64_t n);

}  // namespace edgelearn::small

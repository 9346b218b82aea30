// Shared helpers of every kernel: argument checks, threads, BLAS.
//
// Checks: kernels validate their own arguments (the firmware build has no Python in front of them) and throw
// edgelearn::ArgError (-> Python ValueError) or edgelearn::TypeError_ (-> Python TypeError) with a message that
// names the argument. Sizes are int64; products are checked for overflow before anything is allocated.
//
// Threads: OpenMP for edgelearn's own loops, OpenBLAS's pthreads for float GEMMs. set_num_threads() sets both;
// by default both honour OMP_NUM_THREADS. Every kernel partitions work so that each output element is computed
// by exactly one thread in a fixed order: results do not depend on the number of threads.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace edgelearn {

struct ArgError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
struct TypeError_ : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

inline void check(bool ok, const std::string& msg) {
  if (!ok) throw ArgError(msg);
}

// a * b, or an ArgError naming `what` when it overflows int64 (or either is negative).
int64_t checked_mul(int64_t a, int64_t b, const char* what);

void set_num_threads(int n);
int get_num_threads();

// Row-major single-precision GEMM: C[m, n] = alpha * op(A) op(B) + beta * C, via OpenBLAS.
// trans_b = true means B is given as [n, k] (weights stored [out, in]).
void sgemm_rowmajor(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                    int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// Name of the widest SIMD level this CPU supports among those compiled in: "avx512", "avx2" or "scalar".
const char* simd_level();

}  // namespace edgelearn

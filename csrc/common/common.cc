// Argument checks, thread control and the BLAS bridge (see edgelearn/common.h).
#include "edgelearn/common.h"

#include <omp.h>

#include <climits>

extern "C" {
// OpenBLAS from scipy-openblas32: 32-bit integers, symbols prefixed scipy_.
enum { EL_CblasRowMajor = 101, EL_CblasNoTrans = 111, EL_CblasTrans = 112 };
void scipy_cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float* a, int lda,
                       const float* b, int ldb, float beta, float* c, int ldc);
void scipy_openblas_set_num_threads(int n);
int scipy_openblas_get_num_threads(void);
}

namespace edgelearn {

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  if (a < 0 || b < 0) throw ArgError(std::string(what) + ": negative size");
  if (a != 0 && b > INT64_MAX / a) throw ArgError(std::string(what) + ": size overflows int64");
  return a * b;
}

void set_num_threads(int n) {
  check(n >= 1, "n: number of threads must be >= 1");
  omp_set_num_threads(n);
  scipy_openblas_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

void sgemm_rowmajor(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                    int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const int64_t lim = INT_MAX;
  check(m <= lim && n <= lim && k <= lim && lda <= lim && ldb <= lim && ldc <= lim,
        "sgemm: a dimension exceeds the 32-bit BLAS interface");
  if (m == 0 || n == 0) return;
  scipy_cblas_sgemm(EL_CblasRowMajor, trans_a ? EL_CblasTrans : EL_CblasNoTrans,
                    trans_b ? EL_CblasTrans : EL_CblasNoTrans, int(m), int(n), int(k), alpha, a, int(lda), b,
                    int(ldb), beta, c, int(ldc));
}

const char* simd_level() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
  return "scalar";
}

}  // namespace edgelearn

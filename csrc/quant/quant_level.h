// SIMD level of the quant kernels, chosen at run time (see edgelearn/quant.h); shared by the files of csrc/quant.
#pragma once

namespace edgelearn::quant {

enum Level : int { kScalar = 0, kAvx2 = 1, kVnni = 2, kAmx = 3 };

// The level in force: the best the CPU supports unless a test or benchmark forced a lower one.
int level();

}  // namespace edgelearn::quant

#define EL_Q_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#define EL_Q_AMX __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,amx-tile,amx-int8")))
#define EL_Q_AVX2 __attribute__((target("avx2,fma")))

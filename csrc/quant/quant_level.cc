// Run-time SIMD level of the quant family (see edgelearn/quant.h): avx512vnni, avx2 or scalar.
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cpuid.h>
#include <string>

#include "edgelearn/common.h"
#include "edgelearn/quant.h"
#include "quant/quant_level.h"

namespace edgelearn {

namespace quant {
namespace {

// AMX-TILE and AMX-INT8 (CPUID.(7,0):EDX bits 24, 25), and the kernel's permission to use tile data (Linux asks
// each process to request it: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)); once per process.
bool amx_usable() {
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !((d >> 24) & 1u) || !((d >> 25) & 1u)) return false;
#if defined(__linux__) && defined(SYS_arch_prctl)
    constexpr long kReqXcompPerm = 0x1023, kXtiledata = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXtiledata) == 0;
#else
    return false;
#endif
  }();
  return ok;
}

int cpu_level() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vnni"))
    return amx_usable() ? kAmx : kVnni;
  if (__builtin_cpu_supports("avx2")) return kAvx2;
  return kScalar;
}

std::atomic<int>& current() {
  static std::atomic<int> lv{cpu_level()};
  return lv;
}

}  // namespace

int level() { return current().load(std::memory_order_relaxed); }

}  // namespace quant

const char* quant_level() {
  static const char* names[] = {"scalar", "avx2", "avx512vnni", "amx"};
  return names[quant::level()];
}

void quant_force_level(const char* name) {
  const std::string s(name ? name : "");
  const int best = quant::cpu_level();
  int want = best;
  if (s == "scalar")
    want = quant::kScalar;
  else if (s == "avx2")
    want = quant::kAvx2;
  else if (s == "avx512vnni")
    want = quant::kVnni;
  else if (s == "amx")
    want = quant::kAmx;
  else
    check(s.empty(), "level: expected 'scalar', 'avx2', 'avx512vnni', 'amx' or '', got '" + s + "'");
  quant::current().store(want < best ? want : best);
}

}  // namespace edgelearn

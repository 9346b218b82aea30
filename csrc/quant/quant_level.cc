// Run-time SIMD level of the quant family (see edgelearn/quant.h): avx512vnni, avx2 or scalar.
#include <atomic>
#include <string>

#include "edgelearn/common.h"
#include "edgelearn/quant.h"
#include "quant/quant_level.h"

namespace edgelearn {

namespace quant {
namespace {

int cpu_level() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vnni"))
    return kVnni;
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
  static const char* names[] = {"scalar", "avx2", "avx512vnni"};
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
  else
    check(s.empty(), "level: expected 'scalar', 'avx2', 'avx512vnni' or '', got '" + s + "'");
  quant::current().store(want < best ? want : best);
}

}  // namespace edgelearn

#include "runtime/kernels/isa.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace qforge::kernels {
namespace {

// What the CPU and OS support. GCC's and Clang's __builtin_cpu_supports read
// CPUID and check with XGETBV that the OS saves the AVX and AVX-512 registers.
Isa CpuIsa() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512vnni")) {
    return Isa::kAvx512Vnni;
  }
#endif
  return Isa::kGeneric;
}

}  // namespace

Isa DetectIsa() {
  static const Isa detected = [] {
    Isa isa = CpuIsa();
    if (const char* cap = std::getenv("QFORGE_ISA"); cap != nullptr) {
      if (absl::StatusOr<Isa> parsed = ParseIsa(cap); parsed.ok()) isa = std::min(isa, *parsed);
    }
    return isa;
  }();
  return detected;
}

Isa ResolveIsa(Isa requested) { return std::min(requested, DetectIsa()); }

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kGeneric: return "generic";
    case Isa::kAvx512Vnni: return "avx512vnni";
  }
  return "unknown";
}

absl::StatusOr<Isa> ParseIsa(absl::string_view name) {
  for (Isa isa : {Isa::kGeneric, Isa::kAvx512Vnni}) {
    if (name == IsaName(isa)) return isa;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown instruction set level '", name, "' (generic or avx512vnni)"));
}

}  // namespace qforge::kernels

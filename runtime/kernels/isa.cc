#include "runtime/kernels/isa.h"

#include <algorithm>
#include <cstdlib>

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "absl/strings/str_cat.h"

namespace qforge::kernels {
namespace {

#if defined(__x86_64__)
// AMX-TILE and AMX-INT8 in CPUID, the tile state enabled in XCR0, and Linux's
// permission for this process to use the tile data (asked for here, once;
// it holds for every thread of the process).
bool HasAmx() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  constexpr unsigned kAmxTile = 1u << 24, kAmxInt8 = 1u << 25;
  if ((edx & kAmxTile) == 0 || (edx & kAmxInt8) == 0) return false;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || (ecx & (1u << 27)) == 0) return false;  // OSXSAVE
  unsigned xcr0_low, xcr0_high;
  __asm__("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
  constexpr unsigned kTileConfig = 1u << 17, kTileData = 1u << 18;
  if ((xcr0_low & kTileConfig) == 0 || (xcr0_low & kTileData) == 0) return false;
  constexpr long kArchRequestXcompPermission = 0x1023, kXfeatureTileData = 18;
  return syscall(SYS_arch_prctl, kArchRequestXcompPermission, kXfeatureTileData) == 0;
}

// AVX-VNNI (CPUID leaf 7, subleaf 1, EAX bit 4): vpdpbusd on 256-bit vectors
// without AVX-512. CpuIsa has checked that the OS saves the AVX registers.
bool HasAvxVnni() {
  unsigned eax, ebx, ecx, edx;
  return __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 4)) != 0;
}
#endif

// What the CPU and OS support. GCC's and Clang's __builtin_cpu_supports read
// CPUID and check with XGETBV that the OS saves the AVX and AVX-512 registers.
Isa CpuIsa() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512vnni")) {
    return HasAmx() ? Isa::kAvx512Amx : Isa::kAvx512Vnni;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return HasAvxVnni() ? Isa::kAvxVnni : Isa::kAvx2;
  }
#endif
  return Isa::kGeneric;
}

// `isa` where the CPU has every level up to it, else avx2 for avxvnni, which
// an AVX-512 CPU need not have.
Isa Runnable(Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::kAvxVnni && !HasAvxVnni()) return Isa::kAvx2;
#endif
  return isa;
}

}  // namespace

Isa DetectIsa() {
  static const Isa detected = [] {
    Isa isa = CpuIsa();
    if (const char* cap = std::getenv("QFORGE_ISA"); cap != nullptr) {
      if (absl::StatusOr<Isa> parsed = ParseIsa(cap); parsed.ok()) isa = std::min(isa, *parsed);
    }
    return Runnable(isa);
  }();
  return detected;
}

Isa ResolveIsa(Isa requested) { return Runnable(std::min(requested, DetectIsa())); }

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kGeneric: return "generic";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvxVnni:
      return "avxvnni";
    case Isa::kAvx512Vnni: return "avx512vnni";
    case Isa::kAvx512Amx: return "avx512amx";
  }
  return "unknown";
}

absl::StatusOr<Isa> ParseIsa(absl::string_view name) {
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512Vnni, Isa::kAvx512Amx}) {
    if (name == IsaName(isa)) return isa;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown instruction set level '", name,
                   "' (generic, avx2, avxvnni, avx512vnni or avx512amx)"));
}

}  // namespace qforge::kernels

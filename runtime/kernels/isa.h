// The instruction-set levels qforge's own int8 kernels are built for, and the
// choice among them at run time. The runtime library itself is compiled for
// baseline x86-64; only the kernel files of a level are compiled for its
// instructions, and a level runs only on a CPU (and OS) that supports it.
//
// Levels are ordered by speed. A CPU that has one has every lower one but
// avxvnni: AVX-512 CPUs before Sapphire Rapids and Zen 5 lack AVX-VNNI, and
// there ResolveIsa gives avx2 for it. Users and tests may ask for a lower
// level (InterpreterOptions::kernel_isa) and may cap the detected one
// (QFORGE_ISA=generic|avx2|avxvnni|avx512vnni|avx512amx in the environment), to
// compare levels or to work around a CPU.
#ifndef QFORGE_RUNTIME_KERNELS_ISA_H_
#define QFORGE_RUNTIME_KERNELS_ISA_H_

#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace qforge::kernels {

enum class Isa {
  kGeneric = 0,     // portable C++: any CPU; exact, but far slower than XNNPACK
  kAvx2 = 1,        // AVX2 + FMA (Haswell, Zen 1 and later)
  kAvxVnni = 2,     // AVX2 + AVX-VNNI, 256-bit vpdpbusd (Alder Lake and its E-cores, Zen 5)
  kAvx512Vnni = 3,  // AVX-512 F/BW/DQ/VL + VNNI (Cascade Lake, Ice Lake, Zen 4 and later)
  kAvx512Amx = 4,   // the above and AMX-INT8 tiles for GEMMs (Sapphire Rapids and later)
};

inline constexpr Isa kBestIsa = Isa::kAvx512Amx;

// The lowest level the fast backend uses qforge's kernels at unless asked to:
// the generic level is far slower than XNNPACK, so it runs only when
// InterpreterOptions::kernel_isa asks. The AVX2 level is faster than
// XNNPACK's AVX2 kernels (MobileNetV2 at 224x224 on an AMD EPYC Zen 5 with
// XNNPACK kept from AVX-512: 0.82-0.88x its time at 1 thread, 0.81x at 2).
inline constexpr Isa kDefaultMinIsa = Isa::kAvx2;

// The highest level this CPU and OS support, capped by QFORGE_ISA if it is set
// to a known level name.
Isa DetectIsa();

// The level to run at when a caller asks for at most `requested`: the lower of
// `requested` and DetectIsa().
Isa ResolveIsa(Isa requested);

const char* IsaName(Isa isa);

// "generic", "avx2", "avxvnni", "avx512vnni" or "avx512amx"; InvalidArgument otherwise.
absl::StatusOr<Isa> ParseIsa(absl::string_view name);

}  // namespace qforge::kernels

#endif  // QFORGE_RUNTIME_KERNELS_ISA_H_

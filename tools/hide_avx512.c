/* For measurements only, never linked into qforge: preloaded
 * (LD_PRELOAD=bazel-bin/tools/hide_avx512.so), it clears cpuinfo's AVX-512
 * flags once cpuinfo has read the CPU, so XNNPACK (and whatever else asks
 * Debian's libcpuinfo) picks its AVX2 kernels. On a CPU with AVX-512 it stands
 * in for one without, for the README's comparisons at qforge's avxvnni and
 * avx2 levels. Runtimes that carry their own CPU detection (ONNX Runtime,
 * LiteRT) do not see it. */
#include <cpuinfo.h>

__attribute__((constructor)) static void hide_avx512(void) {
  if (!cpuinfo_initialize()) return;
  cpuinfo_isa.avx512f = cpuinfo_isa.avx512cd = cpuinfo_isa.avx512dq = false;
  cpuinfo_isa.avx512bw = cpuinfo_isa.avx512vl = cpuinfo_isa.avx512vnni = false;
  cpuinfo_isa.avx512bf16 = cpuinfo_isa.avx512vbmi = cpuinfo_isa.avx512vbmi2 = false;
  cpuinfo_isa.avx512bitalg = cpuinfo_isa.avx512vpopcntdq = cpuinfo_isa.avx512ifma = false;
  cpuinfo_isa.avx512er = cpuinfo_isa.avx512pf = cpuinfo_isa.avx512vp2intersect = false;
  cpuinfo_isa.avx512_4vnniw = cpuinfo_isa.avx512_4fmaps = false;
}

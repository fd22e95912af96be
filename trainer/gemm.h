// Single-precision GEMMs for the trainer's convolutions and linear layers,
// written on trainer/simd.h: their speed follows the instruction set the
// compiler targets (AVX-512, AVX2 or SSE2 on x86-64), not a BLAS library's
// table of CPU models. (Debian's OpenBLAS 0.3.21 runs its SSE3 kernels on CPU
// models it does not know, at a fifth of the speed.)
//
// The shapes are the trainer's: tall, skinny products of activations
// [N*H*W, C] with small weight matrices. The forward and input-gradient
// products pack only the weights and stream the activations in place; the
// weight gradient sums outer products over rows in registers. Work is split
// across the trainer's thread pool by rows of the activation matrix; the weight
// gradient adds per-chunk partial sums in chunk order, so results repeat for a
// thread count.
#ifndef QFORGE_TRAINER_GEMM_H_
#define QFORGE_TRAINER_GEMM_H_

#include <cstdint>
#include <vector>

namespace qforge {

// C[M, N] = A[M, K] . B^T (B is [N, K]) + beta * C.   (forward: x . W^T)
void GemmABt(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
             int64_t ldb, float beta, float* c, int64_t ldc);

// C[M, N] = A[M, K] . B (B is [K, N]).                  (backward: dy . W)
void GemmAB(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
            int64_t ldb, float* c, int64_t ldc);

// C[N, K] += A^T . B with A [M, N] and B [M, K].        (backward: dy^T . x)
// `scratch` holds the per-chunk partial sums between calls.
void GemmAtBAccumulate(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                       int64_t ldb, float* c, int64_t ldc, std::vector<float>& scratch);

// The vector instruction set the GEMMs were compiled for: "avx512", "avx2" or
// "sse2".
const char* GemmInstructionSet();

}  // namespace qforge

#endif  // QFORGE_TRAINER_GEMM_H_

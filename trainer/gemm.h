// Single-precision GEMMs on OpenBLAS, split across the trainer's thread pool by
// rows of the activation matrix (OpenBLAS itself runs one thread: its own
// workers spin while waiting and fight the pool for the cores). Row splits
// write disjoint outputs; the weight-gradient GEMM, a sum over rows, adds
// per-chunk partials in chunk order, so results repeat for a thread count.
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
void GemmAtBAccumulate(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                       const float* b, int64_t ldb, float* c, int64_t ldc,
                       std::vector<float>& scratch);

}  // namespace qforge

#endif  // QFORGE_TRAINER_GEMM_H_

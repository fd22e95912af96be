// Single-precision GEMMs for the trainer's convolutions and linear layers,
// written on trainer/nn/simd.h: their speed follows the instruction set the
// compiler targets (AVX-512, AVX2 or SSE2 on x86-64), not a BLAS library's
// table of CPU models. (Debian's OpenBLAS 0.3.21 runs its SSE3 kernels on CPU
// models it does not know, at a fifth of the speed.)
//
// The shapes are the trainer's: tall, skinny products of activations
// [N*H*W, C] with small weight matrices. The forward and input-gradient
// products pack only the weights and stream the activations in place; the
// weight gradient sums outer products over rows in registers. Work is split
// across the trainer's thread pool by rows of the activation matrix.
#ifndef QFORGE_TRAINER_NN_GEMM_H_
#define QFORGE_TRAINER_NN_GEMM_H_

#include <cstdint>
#include <vector>

namespace qforge {

// The right-hand side of C = A . B^T or C = A . B, packed once for products
// with row ranges of A (each thread its own range).
class GemmRight {
 public:
  // B [n, k], used as B^T.
  void PackTransposed(const float* b, int64_t ldb, int64_t n, int64_t k);
  // B [k, n].
  void Pack(const float* b, int64_t ldb, int64_t k, int64_t n);
  // C[rows, n] = A[rows, k] . (packed B) + beta * C, on the calling thread.
  // With `moments` ([2 * n]), adds C's column sums to moments[0, n) and the
  // sums of their squares to moments[n, 2n): a batch norm's statistics.
  void MultiplyRows(int64_t rows, const float* a, int64_t lda, float beta, float* c, int64_t ldc,
                    double* moments = nullptr) const;

 private:
  void Resize(int64_t depth, int64_t columns);
  std::vector<float> data_;  // [k, n rounded up to whole vectors], zero padded
  int64_t depth_ = 0, columns_ = 0, padded_ = 0;
};

// C[n, k] += sum over rows of A[row, n] * B[row, k] (dW += dy^T . x), summed
// from row ranges on several threads: each chunk adds into its own partial
// sums, and AccumulateInto adds the partials in chunk order, so results repeat
// for a thread count.
class GemmOuterSums {
 public:
  void Start(int64_t n, int64_t k, int chunks);
  // Rows of A [rows, n] and B [rows, k] into chunk `chunk`'s partial sums.
  void AddRows(int chunk, int64_t rows, const float* a, int64_t lda, const float* b, int64_t ldb);
  void AccumulateInto(float* c, int64_t ldc) const;

 private:
  int64_t n_ = 0, k_ = 0, p_ = 0, ldt_ = 0;
  int chunks_ = 0;
  bool transposed_ = false;     // partials hold C^T
  std::vector<float> partials_;  // [chunks, p, ldt]
};

// C[M, N] = A[M, K] . B^T (B is [N, K]) + beta * C.   (forward: x . W^T)
void GemmABt(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
             int64_t ldb, float beta, float* c, int64_t ldc);

// C[M, N] = A[M, K] . B (B is [K, N]).                  (backward: dy . W)
void GemmAB(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
            int64_t ldb, float* c, int64_t ldc);

// C[N, K] += A^T . B with A [M, N] and B [M, K].        (backward: dy^T . x)
// `sums` holds the per-chunk partial sums between calls.
void GemmAtBAccumulate(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                       const float* b, int64_t ldb, float* c, int64_t ldc, GemmOuterSums& sums);

// The vector instruction set the GEMMs were compiled for: "avx512", "avx2" or
// "sse2".
const char* GemmInstructionSet();

}  // namespace qforge

#endif  // QFORGE_TRAINER_NN_GEMM_H_

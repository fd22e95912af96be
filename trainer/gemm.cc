#include "trainer/gemm.h"

#include <cblas.h>

#include "trainer/parallel.h"

namespace qforge {

void GemmABt(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
             int64_t ldb, float beta, float* c, int64_t ldc) {
  Pool().ParallelFor(m, [=](int, int64_t begin, int64_t end) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, end - begin, n, k, 1.0f, a + begin * lda,
                lda, b, ldb, beta, c + begin * ldc, ldc);
  });
}

void GemmAB(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
            int64_t ldb, float* c, int64_t ldc) {
  Pool().ParallelFor(m, [=](int, int64_t begin, int64_t end) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, end - begin, n, k, 1.0f,
                a + begin * lda, lda, b, ldb, 0.0f, c + begin * ldc, ldc);
  });
}

void GemmAtBAccumulate(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                       const float* b, int64_t ldb, float* c, int64_t ldc,
                       std::vector<float>& scratch) {
  const int threads = Pool().num_threads();
  if (threads == 1 || m < threads) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, m, 1.0f, a, lda, b, ldb, 1.0f, c,
                ldc);
    return;
  }
  scratch.resize(static_cast<size_t>(threads) * n * k);
  float* partials = scratch.data();
  Pool().ParallelFor(m, [=](int chunk, int64_t begin, int64_t end) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, end - begin, 1.0f, a + begin * lda,
                lda, b + begin * ldb, ldb, 0.0f, partials + chunk * n * k, k);
  });
  for (int t = 0; t < threads; ++t) {
    const float* p = partials + static_cast<size_t>(t) * n * k;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < k; ++j) c[i * ldc + j] += p[i * k + j];
    }
  }
}

}  // namespace qforge

// The trainer's own GEMMs (trainer/nn/gemm.h) against OpenBLAS (CBLAS) and Eigen
// for the GEMMs of training MobileNetV2 on 28x28 inputs at batch 64: the
// trainer's 1x1 convolutions are tall, skinny products [N*H*W, C] x [C, O], in
// the forms of forward and weight gradient. Single-threaded (the trainer
// splits rows across its own pool). This is how the trainer's GEMM was chosen:
//
//   bazel run //tools:gemm_benchmark
//
// Set OPENBLAS_CORETYPE=Prescott to see OpenBLAS on a CPU model it does not
// know (it then runs its SSE3 kernels).
#include <cblas.h>

#include <Eigen/Core>
#include <vector>

#include "benchmark/benchmark.h"
#include "trainer/nn/gemm.h"
#include "trainer/nn/parallel.h"

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Map = Eigen::Map<RowMatrix>;
using ConstMap = Eigen::Map<const RowMatrix>;

// Shapes (M rows of activations, K inputs, N outputs): an expansion 1x1 and a
// projection 1x1 at 28x28 (width 0.5), and width 1.0's at 7x7 and 4x4.
void Shapes(benchmark::internal::Benchmark* b) {
  b->Args({64 * 28 * 28, 16, 96})
      ->Args({64 * 28 * 28, 96, 16})
      ->Args({64 * 7 * 7, 576, 160})
      ->Args({64 * 4 * 4, 160, 960})
      ->Args({64 * 4 * 4, 960, 160});
}

struct Buffers {
  std::vector<float> a, b, c;
  Buffers(int64_t m, int64_t k, int64_t n) : a(m * k, 0.5f), b(k * n, 0.25f), c(m * n, 0.0f) {}
};

// Forward: Y[M, N] = X[M, K] . W[N, K]^T.
void BM_ForwardOpenBlas(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  Buffers t(m, k, n);
  openblas_set_num_threads(1);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, t.a.data(), k, t.b.data(),
                k, 0.0f, t.c.data(), n);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * m * n * k);
}

void BM_ForwardEigen(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  Buffers t(m, k, n);
  Eigen::setNbThreads(1);
  for (auto _ : state) {
    Map(t.c.data(), m, n).noalias() = ConstMap(t.a.data(), m, k) * ConstMap(t.b.data(), n, k).transpose();
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * m * n * k);
}

void BM_ForwardQforge(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  Buffers t(m, k, n);
  qforge::ConfigurePool(1);
  for (auto _ : state) {
    qforge::GemmABt(m, n, k, t.a.data(), k, t.b.data(), k, 0.0f, t.c.data(), n);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * m * n * k);
}

// Weight gradient: dW[N, K] += dY[M, N]^T . X[M, K].
void BM_WeightGradientOpenBlas(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  Buffers t(m, k, n);
  std::vector<float> dw(n * k, 0.0f);
  openblas_set_num_threads(1);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, m, 1.0f, t.c.data(), n, t.a.data(),
                k, 1.0f, dw.data(), k);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * m * n * k);
}

void BM_WeightGradientEigen(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  Buffers t(m, k, n);
  std::vector<float> dw(n * k, 0.0f);
  for (auto _ : state) {
    Map(dw.data(), n, k).noalias() += ConstMap(t.c.data(), m, n).transpose() * ConstMap(t.a.data(), m, k);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * m * n * k);
}

void BM_WeightGradientQforge(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  Buffers t(m, k, n);
  std::vector<float> dw(n * k, 0.0f);
  qforge::GemmOuterSums sums;
  qforge::ConfigurePool(1);
  for (auto _ : state) {
    qforge::GemmAtBAccumulate(m, n, k, t.c.data(), n, t.a.data(), k, dw.data(), k, sums);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * m * n * k);
}

BENCHMARK(BM_ForwardQforge)->Apply(Shapes)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_WeightGradientQforge)->Apply(Shapes)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ForwardOpenBlas)->Apply(Shapes)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ForwardEigen)->Apply(Shapes)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_WeightGradientOpenBlas)->Apply(Shapes)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_WeightGradientEigen)->Apply(Shapes)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

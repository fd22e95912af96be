#include "trainer/nn/gemm.h"

#include <cmath>
#include <vector>

#include "common/random.h"
#include "gtest/gtest.h"
#include "trainer/nn/parallel.h"

namespace qforge {
namespace {

struct Shape {
  int64_t m, n, k;
};

// Tile remainders on every side at every vector width (16, 8, 4 lanes), a depth
// past one block (128), and the trainer's own skinny shapes.
const Shape kShapes[] = {{1, 1, 1},    {5, 3, 7},     {13, 17, 9},   {64, 10, 1280},
                         {37, 65, 33}, {100, 96, 16}, {250, 16, 96}, {97, 160, 300},
                         {12, 48, 8},  {301, 49, 130}};

std::vector<float> Random(int64_t size, uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<float> v(size);
  for (float& x : v) x = 2.0f * rng.UniformFloat() - 1.0f;
  return v;
}

// Products of values in [-1, 1] summed in float: relative error grows like the
// depth times float's epsilon.
void ExpectNear(const std::vector<double>& want, const float* got, int64_t rows, int64_t cols,
                int64_t ld, int64_t depth, const char* what) {
  const double tolerance = 4e-7 * depth + 1e-6;
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      ASSERT_NEAR(got[i * ld + j], want[i * cols + j], tolerance)
          << what << " at [" << i << ", " << j << "]";
    }
  }
}

class GemmTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { ConfigurePool(GetParam()); }
  void TearDown() override { ConfigurePool(1); }
};

// Strides wider than the rows (as for one group's columns) and an untouched
// sentinel past each row of C.
TEST_P(GemmTest, ABtMatchesDoubleReference) {
  for (const Shape& s : kShapes) {
    const int64_t lda = s.k + 3, ldb = s.k + 1, ldc = s.n + 2;
    const std::vector<float> a = Random(s.m * lda, 1), b = Random(s.n * ldb, 2);
    for (float beta : {0.0f, 1.0f}) {
      std::vector<float> c = Random(s.m * ldc, 3);
      std::vector<double> want(s.m * s.n);
      for (int64_t i = 0; i < s.m; ++i) {
        for (int64_t j = 0; j < s.n; ++j) {
          double sum = beta * c[i * ldc + j];
          for (int64_t d = 0; d < s.k; ++d) sum += double{a[i * lda + d]} * b[j * ldb + d];
          want[i * s.n + j] = sum;
        }
      }
      const std::vector<float> before = c;
      GemmABt(s.m, s.n, s.k, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
      ExpectNear(want, c.data(), s.m, s.n, ldc, s.k, "ABt");
      for (int64_t i = 0; i < s.m; ++i) {
        for (int64_t j = s.n; j < ldc; ++j) ASSERT_EQ(c[i * ldc + j], before[i * ldc + j]);
      }
    }
  }
}

TEST_P(GemmTest, ABMatchesDoubleReference) {
  for (const Shape& s : kShapes) {
    const int64_t lda = s.k + 2, ldb = s.n + 5, ldc = s.n + 1;
    const std::vector<float> a = Random(s.m * lda, 4), b = Random(s.k * ldb, 5);
    std::vector<float> c = Random(s.m * ldc, 6);
    std::vector<double> want(s.m * s.n);
    for (int64_t i = 0; i < s.m; ++i) {
      for (int64_t j = 0; j < s.n; ++j) {
        double sum = 0.0;
        for (int64_t d = 0; d < s.k; ++d) sum += double{a[i * lda + d]} * b[d * ldb + j];
        want[i * s.n + j] = sum;
      }
    }
    GemmAB(s.m, s.n, s.k, a.data(), lda, b.data(), ldb, c.data(), ldc);
    ExpectNear(want, c.data(), s.m, s.n, ldc, s.k, "AB");
  }
}

// Both orientations of the weight-gradient kernel: the shapes include n > k,
// k > n and lane fills that pick either side.
TEST_P(GemmTest, AtBAccumulateAddsToC) {
  GemmOuterSums sums;
  for (const Shape& s : kShapes) {
    const int64_t lda = s.n + 3, ldb = s.k + 1, ldc = s.k + 2;
    const std::vector<float> a = Random(s.m * lda, 7), b = Random(s.m * ldb, 8);
    std::vector<float> c = Random(s.n * ldc, 9);
    std::vector<double> want(s.n * s.k);
    for (int64_t i = 0; i < s.n; ++i) {
      for (int64_t j = 0; j < s.k; ++j) {
        double sum = c[i * ldc + j];
        for (int64_t r = 0; r < s.m; ++r) sum += double{a[r * lda + i]} * b[r * ldb + j];
        want[i * s.k + j] = sum;
      }
    }
    GemmAtBAccumulate(s.m, s.n, s.k, a.data(), lda, b.data(), ldb, c.data(), ldc, sums);
    ExpectNear(want, c.data(), s.n, s.k, ldc, s.m, "AtB");
  }
}

// The same thread count gives the same bits on every call.
TEST_P(GemmTest, AtBAccumulateRepeats) {
  const Shape s{1000, 96, 16};
  const std::vector<float> a = Random(s.m * s.n, 10), b = Random(s.m * s.k, 11);
  std::vector<float> first(s.n * s.k, 0.0f), second(s.n * s.k, 0.0f);
  GemmOuterSums sums;
  GemmAtBAccumulate(s.m, s.n, s.k, a.data(), s.n, b.data(), s.k, first.data(), s.k, sums);
  GemmAtBAccumulate(s.m, s.n, s.k, a.data(), s.n, b.data(), s.k, second.data(), s.k, sums);
  EXPECT_EQ(first, second);
}

INSTANTIATE_TEST_SUITE_P(Threads, GemmTest, ::testing::Values(1, 3));

}  // namespace
}  // namespace qforge

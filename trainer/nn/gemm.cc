#include "trainer/nn/gemm.h"

#include <algorithm>

#include "trainer/nn/parallel.h"
#include "trainer/nn/simd.h"

namespace qforge {
namespace {

using simd::Vec;
constexpr int kLanes = simd::kLanes;

// A tile is R rows by NV vectors of columns, its R * NV sums held in registers;
// a quarter of the registers stays free for the NV column vectors and the
// broadcast. R = 12 at most keeps the broadcasts' address arithmetic cheap.
// Three vectors (8 x 48 tiles on AVX-512) measured best on the trainer's shapes
// (tools/gemm_benchmark), ahead of 6 x 64 and 12 x 32.
constexpr int kMaxVectors = 3;
constexpr int kTileColumns = kMaxVectors * kLanes;
constexpr int MaxRows(int nv) { return std::min(12, simd::kRegisters * 3 / 4 / nv); }

// Blocking: the packed weights of one depth block and tile column (kDepth x 48
// floats on AVX-512) stay in L1 or L2 while a block of kBlockRows activation
// rows (in L2) passes over them.
constexpr int64_t kDepth = 256;
constexpr int64_t kBlockRows = 192;

// --- C = A . P (+ scale * C): A [rows, depth] read in place, P the packed
// weights [depth, padded columns].

struct PanelTile {
  const float* a;  // first row, first depth of the block
  int64_t lda;
  const float* p;  // first depth of the block, first column of the tile
  int64_t ldp;
  int64_t depth;
  float* c;
  int64_t ldc;
  int tail;     // columns of the tile's last vector
  bool load_c;  // start from scale * C instead of 0
  float scale;
  double* moments;         // null, or column sums at [0] and sums of squares at
  int64_t moments_stride;  // [moments_stride], that the tile adds its results to
};

template <int R, int NV>
void PanelTileRows(const PanelTile& t) {
  Vec acc[R][NV];
#pragma GCC unroll 12
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      acc[i][j] = simd::Zero();
      if (t.load_c) {
        const int cols = j == NV - 1 ? t.tail : kLanes;
        acc[i][j] = simd::Mul(simd::Broadcast(t.scale),
                              simd::LoadLanes(t.c + i * t.ldc + j * kLanes, cols));
      }
    }
  }
  const float* a = t.a;
  const float* p = t.p;
  for (int64_t k = 0; k < t.depth; ++k, p += t.ldp) {
    Vec b[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) b[j] = simd::Load(p + j * kLanes);
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i) {
      const Vec ai = simd::Broadcast(a[i * t.lda + k]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = simd::Fma(ai, b[j], acc[i][j]);
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      simd::StoreLanes(t.c + i * t.ldc + j * kLanes, acc[i][j], j == NV - 1 ? t.tail : kLanes);
    }
  }
  if (t.moments == nullptr) return;
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) {
    Vec sum = acc[0][j], squares = simd::Mul(acc[0][j], acc[0][j]);
#pragma GCC unroll 12
    for (int i = 1; i < R; ++i) {
      sum = simd::Add(sum, acc[i][j]);
      squares = simd::Fma(acc[i][j], acc[i][j], squares);
    }
    simd::AddToDoubles(t.moments + j * kLanes, sum);
    simd::AddToDoubles(t.moments + t.moments_stride + j * kLanes, squares);
  }
}

// Rows [0, rows) of one tile column: full tiles of MaxRows(NV) rows, then the
// remainder in tiles of 8, 4, 2 and 1.
template <int NV>
void PanelTileColumn(int64_t rows, PanelTile t) {
  constexpr int kRows = MaxRows(NV);
  int64_t m = 0;
  auto advance = [&](int r) {
    t.a += r * t.lda;
    t.c += r * t.ldc;
    m += r;
  };
  for (; m + kRows <= rows; advance(kRows)) PanelTileRows<kRows, NV>(t);
  if constexpr (kRows > 8) {
    if (m + 8 <= rows) {
      PanelTileRows<8, NV>(t);
      advance(8);
    }
  }
  for (; m + 4 <= rows; advance(4)) PanelTileRows<4, NV>(t);
  for (; m + 2 <= rows; advance(2)) PanelTileRows<2, NV>(t);
  for (; m < rows; advance(1)) PanelTileRows<1, NV>(t);
}

void PanelTileColumn(int nv, int64_t rows, const PanelTile& t) {
  switch (nv) {
    case 1:
      return PanelTileColumn<1>(rows, t);
    case 2:
      return PanelTileColumn<2>(rows, t);
    case 3:
      return PanelTileColumn<3>(rows, t);
    default:
      return PanelTileColumn<4>(rows, t);
  }
}


// --- T[p, q] += sum over rows of S[row, p] * V[row, q]: the weight gradient,
// S broadcast, V loaded as vectors; T [p, padded q] in the caller's scratch.

struct OuterTile {
  const float* s;  // first row, first p of the tile
  int64_t lds;
  const float* v;  // first row, first q of the tile
  int64_t ldv;
  int64_t rows;
  float* t;  // T[p0, q0]
  int64_t ldt;
  int tail;  // q columns of the tile's last vector
};

template <int R, int NV>
void OuterTileRows(const OuterTile& o) {
  Vec acc[R][NV];
#pragma GCC unroll 12
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = simd::Zero();
  }
  const float* s = o.s;
  const float* v = o.v;
  for (int64_t row = 0; row < o.rows; ++row, s += o.lds, v += o.ldv) {
    Vec b[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      b[j] = simd::LoadLanes(v + j * kLanes, j == NV - 1 ? o.tail : kLanes);
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i) {
      const Vec si = simd::Broadcast(s[i]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = simd::Fma(si, b[j], acc[i][j]);
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      float* t = o.t + i * o.ldt + j * kLanes;
      simd::Store(t, simd::Add(simd::Load(t), acc[i][j]));
    }
  }
}

// All p of one tile column: tiles of MaxRows(NV) p, then 8, 4, 2 and 1.
template <int NV>
void OuterTileColumn(int64_t p_count, OuterTile o) {
  constexpr int kRows = MaxRows(NV);
  int64_t p = 0;
  auto advance = [&](int r) {
    o.s += r;
    o.t += r * o.ldt;
    p += r;
  };
  for (; p + kRows <= p_count; advance(kRows)) OuterTileRows<kRows, NV>(o);
  if constexpr (kRows > 8) {
    if (p + 8 <= p_count) {
      OuterTileRows<8, NV>(o);
      advance(8);
    }
  }
  for (; p + 4 <= p_count; advance(4)) OuterTileRows<4, NV>(o);
  for (; p + 2 <= p_count; advance(2)) OuterTileRows<2, NV>(o);
  for (; p < p_count; advance(1)) OuterTileRows<1, NV>(o);
}

void OuterTileColumn(int nv, int64_t p_count, const OuterTile& o) {
  switch (nv) {
    case 1:
      return OuterTileColumn<1>(p_count, o);
    case 2:
      return OuterTileColumn<2>(p_count, o);
    case 3:
      return OuterTileColumn<3>(p_count, o);
    default:
      return OuterTileColumn<4>(p_count, o);
  }
}

// T[p, q] += sum over `rows` rows of S[row, p] * V[row, q]; T has ldt >= q
// rounded up to whole vectors.
void OuterSums(int64_t rows, const float* s, int64_t lds, int64_t p_count,
               const float* v, int64_t ldv, int64_t q_count, float* t, int64_t ldt) {
  // Rows per block: S and V rows of a block stay in L2 while every tile passes.
  const int64_t block = std::max<int64_t>(16, (256 * 1024 / 4) / (p_count + q_count));
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t block_rows = std::min(block, rows - r0);
    for (int64_t q0 = 0; q0 < q_count; q0 += kTileColumns) {
      const int64_t cols = std::min<int64_t>(kTileColumns, q_count - q0);
      const int nv = static_cast<int>((cols + kLanes - 1) / kLanes);
      OuterTile o{s + r0 * lds,
                  lds,
                  v + r0 * ldv + q0,
                  ldv,
                  block_rows,
                  t + q0,
                  ldt,
                  static_cast<int>(cols - (nv - 1) * kLanes)};
      OuterTileColumn(nv, p_count, o);
    }
  }
}

// The share of a vector's lanes that `columns` fills, in whole vectors.
double LaneUse(int64_t columns) {
  const int64_t vectors = (columns + kLanes - 1) / kLanes;
  return static_cast<double>(columns) / (vectors * kLanes);
}

}  // namespace

const char* GemmInstructionSet() { return simd::kName; }

void GemmRight::Resize(int64_t depth, int64_t columns) {
  depth_ = depth;
  columns_ = columns;
  padded_ = (columns + kLanes - 1) / kLanes * kLanes;
  data_.assign(depth * padded_, 0.0f);
}

void GemmRight::PackTransposed(const float* b, int64_t ldb, int64_t n, int64_t k) {
  Resize(k, n);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t d = 0; d < k; ++d) data_[d * padded_ + j] = b[j * ldb + d];
  }
}

void GemmRight::Pack(const float* b, int64_t ldb, int64_t k, int64_t n) {
  Resize(k, n);
  for (int64_t d = 0; d < k; ++d) std::copy(b + d * ldb, b + d * ldb + n, &data_[d * padded_]);
}

void GemmRight::MultiplyRows(int64_t rows, const float* a, int64_t lda, float beta, float* c,
                             int64_t ldc, double* moments) const {
  // Moments are summed in float over a tile's rows, then in double, in a
  // buffer whose rows are padded to whole vectors.
  thread_local std::vector<double> padded_moments;
  if (moments != nullptr) padded_moments.assign(2 * padded_, 0.0);
  for (int64_t m0 = 0; m0 < rows; m0 += kBlockRows) {
    const int64_t block = std::min(kBlockRows, rows - m0);
    for (int64_t k0 = 0; k0 < depth_; k0 += kDepth) {
      const bool last_depth = k0 + kDepth >= depth_;
      for (int64_t n0 = 0; n0 < columns_; n0 += kTileColumns) {
        const int64_t cols = std::min<int64_t>(kTileColumns, columns_ - n0);
        const int nv = static_cast<int>((cols + kLanes - 1) / kLanes);
        PanelTile t{a + m0 * lda + k0,
                    lda,
                    data_.data() + k0 * padded_ + n0,
                    padded_,
                    std::min(kDepth, depth_ - k0),
                    c + m0 * ldc + n0,
                    ldc,
                    static_cast<int>(cols - (nv - 1) * kLanes),
                    k0 > 0 || beta != 0.0f,
                    k0 > 0 ? 1.0f : beta,
                    moments != nullptr && last_depth ? padded_moments.data() + n0 : nullptr,
                    padded_};
        PanelTileColumn(nv, block, t);
      }
    }
  }
  if (moments == nullptr) return;
  for (int64_t j = 0; j < columns_; ++j) {
    moments[j] += padded_moments[j];
    moments[columns_ + j] += padded_moments[padded_ + j];
  }
}

// The vector side is whichever of A's n and B's k columns fills more lanes
// (the larger on a tie); with A's, the sums come out transposed.
void GemmOuterSums::Start(int64_t n, int64_t k, int chunks) {
  n_ = n;
  k_ = k;
  transposed_ = LaneUse(n) > LaneUse(k) || (LaneUse(n) == LaneUse(k) && n > k);
  p_ = transposed_ ? k : n;
  const int64_t q = transposed_ ? n : k;
  ldt_ = (q + kLanes - 1) / kLanes * kLanes;
  chunks_ = chunks;
  partials_.assign(static_cast<size_t>(chunks) * p_ * ldt_, 0.0f);
}

void GemmOuterSums::AddRows(int chunk, int64_t rows, const float* a, int64_t lda, const float* b,
                            int64_t ldb) {
  float* t = partials_.data() + static_cast<size_t>(chunk) * p_ * ldt_;
  if (transposed_) {
    OuterSums(rows, b, ldb, k_, a, lda, n_, t, ldt_);
  } else {
    OuterSums(rows, a, lda, n_, b, ldb, k_, t, ldt_);
  }
}

void GemmOuterSums::AccumulateInto(float* c, int64_t ldc) const {
  for (int chunk = 0; chunk < chunks_; ++chunk) {
    const float* t = partials_.data() + static_cast<size_t>(chunk) * p_ * ldt_;
    for (int64_t i = 0; i < n_; ++i) {
      for (int64_t j = 0; j < k_; ++j) {
        c[i * ldc + j] += transposed_ ? t[j * ldt_ + i] : t[i * ldt_ + j];
      }
    }
  }
}

void GemmABt(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
             int64_t ldb, float beta, float* c, int64_t ldc) {
  // The caller's own packing buffer, handed to the pool's threads by pointer.
  thread_local GemmRight packed;
  packed.PackTransposed(b, ldb, n, k);
  const GemmRight* right = &packed;
  Pool().ParallelFor(m, [=](int, int64_t begin, int64_t end) {
    right->MultiplyRows(end - begin, a + begin * lda, lda, beta, c + begin * ldc, ldc);
  });
}

void GemmAB(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
            int64_t ldb, float* c, int64_t ldc) {
  thread_local GemmRight packed;
  packed.Pack(b, ldb, k, n);
  const GemmRight* right = &packed;
  Pool().ParallelFor(m, [=](int, int64_t begin, int64_t end) {
    right->MultiplyRows(end - begin, a + begin * lda, lda, 0.0f, c + begin * ldc, ldc);
  });
}

void GemmAtBAccumulate(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                       const float* b, int64_t ldb, float* c, int64_t ldc, GemmOuterSums& sums) {
  sums.Start(n, k, Pool().num_threads());
  Pool().ParallelFor(m, [=, &sums](int chunk, int64_t begin, int64_t end) {
    sums.AddRows(chunk, end - begin, a + begin * lda, lda, b + begin * ldb, ldb);
  });
  sums.AccumulateInto(c, ldc);
}

}  // namespace qforge

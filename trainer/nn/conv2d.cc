#include "trainer/nn/conv2d.h"

#include <algorithm>
#include <cstring>

#include "trainer/nn/gemm.h"
#include "trainer/nn/parallel.h"
#include "trainer/nn/simd.h"

namespace qforge {
namespace {

// Sizes of one conv call, with the group's share of the channels.
struct Geometry {
  int64_t n, h, w, c, oh, ow, o;
  int k, stride, pad, groups;
  int64_t group_in() const { return c / groups; }
  int64_t group_out() const { return o / groups; }
  int64_t rows() const { return n * oh * ow; }                  // M
  int64_t patch() const { return int64_t{k} * k * group_in(); }  // K of the GEMM
};

// cols[m, (kh * KW + kw) * Cg + ci] = x[n, iy, ix, group * Cg + ci], or 0 in the padding.
void Im2Col(const Geometry& g, const float* x, int group, float* cols) {
  const int64_t cg = g.group_in();
  Pool().ParallelFor(g.rows(), [=](int, int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      const int64_t n = m / (g.oh * g.ow), oy = (m / g.ow) % g.oh, ox = m % g.ow;
      float* row = cols + m * g.patch();
      for (int kh = 0; kh < g.k; ++kh) {
        const int64_t iy = oy * g.stride - g.pad + kh;
        for (int kw = 0; kw < g.k; ++kw, row += cg) {
          const int64_t ix = ox * g.stride - g.pad + kw;
          if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) {
            std::memset(row, 0, cg * sizeof(float));
          } else {
            std::memcpy(row, x + ((n * g.h + iy) * g.w + ix) * g.c + group * cg, cg * sizeof(float));
          }
        }
      }
    }
  });
}

// The adjoint of Im2Col: dx[n, iy, ix, group * Cg + ci] += dcols[m, ...]. Split by
// image so that threads never write the same dx element.
void Col2Im(const Geometry& g, const float* dcols, int group, float* dx) {
  const int64_t cg = g.group_in();
  Pool().ParallelFor(g.n, [=](int, int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          const float* row = dcols + ((n * g.oh + oy) * g.ow + ox) * g.patch();
          for (int kh = 0; kh < g.k; ++kh) {
            const int64_t iy = oy * g.stride - g.pad + kh;
            for (int kw = 0; kw < g.k; ++kw, row += cg) {
              const int64_t ix = ox * g.stride - g.pad + kw;
              if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
              float* out = dx + ((n * g.h + iy) * g.w + ix) * g.c + group * cg;
              for (int64_t ci = 0; ci < cg; ++ci) out[ci] += row[ci];
            }
          }
        }
      }
    }
  });
}

// sums[j] += a[i, j] over the rows of a [rows, columns].
void AddColumnSums(const float* a, int64_t rows, int64_t columns, float* sums) {
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < columns; ++j) sums[j] += a[i * columns + j];
  }
}

}  // namespace

int64_t ConvOutputExtent(int64_t input, int kernel, int stride, int padding) {
  return (input + 2 * padding - kernel) / stride + 1;
}

Conv2d::Conv2d(const std::string& name, const Conv2dOptions& options, ParameterStore& params)
    : name_(name), options_(options), params_(params) {
  weight_ = params.Add(name + ".weight", {options.out_channels, options.kernel, options.kernel,
                                          options.in_channels / options.groups});
  if (options.bias) bias_ = params.Add(name + ".bias", {options.out_channels});
}

void Conv2d::Forward(const FloatTensor& x, FloatTensor& y, ChannelMoments* moments) {
  input_ = &x;
  out_h_ = ConvOutputExtent(x.dim(1), options_.kernel, options_.stride, options_.padding);
  out_w_ = ConvOutputExtent(x.dim(2), options_.kernel, options_.stride, options_.padding);
  y.Resize({x.dim(0), out_h_, out_w_, options_.out_channels});
  if (moments != nullptr) moments->Start(options_.out_channels, Pool().num_threads());
  if (depthwise()) {
    ForwardDepthwise(x, y, moments);
  } else {
    ForwardGemm(x, y, moments);
  }
}

void Conv2d::Backward(const FloatTensor& dy, FloatTensor* dx) {
  Backward(TensorGradientRows(dy, options_.out_channels), dx);
}

void Conv2d::Backward(const GradientRows& dy, FloatTensor* dx, RowsObserver* dx_observer,
                      bool accumulate_dx) {
  if (accumulate_dx && dx != nullptr && !pointwise()) {
    // Only the 1x1 GEMM adds to dx in place; the other paths add afterwards.
    Backward(dy, &dx_sum_);
    for (int64_t i = 0; i < dx->size(); ++i) dx->data[i] += dx_sum_.data[i];
    if (dx_observer != nullptr) ObserveRows(*dx, dx_observer);
    return;
  }
  if (dx != nullptr && !accumulate_dx) {
    dx->Resize(input_->shape);
    // The im2col path accumulates into dx; pointwise and depthwise overwrite it.
    if (!pointwise() && !depthwise()) std::fill(dx->data.begin(), dx->data.end(), 0.0f);
  }
  if (depthwise()) {
    BackwardDepthwise(dy, dx, dx_observer);
  } else if (pointwise()) {
    BackwardPointwise(dy, dx, dx_observer, accumulate_dx);
  } else {
    const int64_t rows = input_->dim(0) * out_h_ * out_w_;
    dy_rows_.resize(rows * options_.out_channels);
    BackwardGemm(dy.Rows(0, rows, dy_rows_.data()), dx);
    if (dx != nullptr && dx_observer != nullptr) ObserveRows(*dx, dx_observer);
  }
}

// Hands a finished dx to an observer, split by rows across the pool.
void Conv2d::ObserveRows(const FloatTensor& dx, RowsObserver* observer) const {
  const int64_t c = options_.in_channels;
  const float* rows = dx.ptr();
  Pool().ParallelFor(dx.size() / c, [=](int chunk, int64_t begin, int64_t end) {
    observer->Observe(chunk, begin, end, rows + begin * c);
  });
}

// y[m, o] = bias[o] + sum_k cols[m, k] * W[o, k], one GEMM per group.
void Conv2d::ForwardGemm(const FloatTensor& x, FloatTensor& y, ChannelMoments* moments) {
  const Geometry g{x.dim(0), x.dim(1), x.dim(2), x.dim(3), out_h_, out_w_,
                   options_.out_channels, options_.kernel, options_.stride, options_.padding,
                   options_.groups};
  const float* w = params_.value(weight_);
  float* out = y.ptr();
  if (bias_ >= 0) {
    const float* b = params_.value(bias_);
    for (int64_t m = 0; m < g.rows(); ++m) std::memcpy(out + m * g.o, b, g.o * sizeof(float));
  }
  const float beta = bias_ >= 0 ? 1.0f : 0.0f;
  for (int group = 0; group < g.groups; ++group) {
    const float* cols = x.ptr();
    if (!pointwise()) {
      columns_.resize(g.rows() * g.patch());
      Im2Col(g, x.ptr(), group, columns_.data());
      cols = columns_.data();
    }
    right_.PackTransposed(w + group * g.group_out() * g.patch(), g.patch(), g.group_out(),
                          g.patch());
    // One group's columns are the whole output: its moments come with the GEMM.
    const bool with_moments = moments != nullptr && g.groups == 1;
    Pool().ParallelFor(g.rows(), [&, cols, group](int chunk, int64_t begin, int64_t end) {
      right_.MultiplyRows(end - begin, cols + begin * g.patch(), g.patch(), beta,
                          out + begin * g.o + group * g.group_out(), g.o,
                          with_moments ? moments->chunk(chunk) : nullptr);
    });
  }
  if (moments != nullptr && g.groups > 1) {
    Pool().ParallelFor(g.rows(), [&](int chunk, int64_t begin, int64_t end) {
      double* m = moments->chunk(chunk);
      for (int64_t row = begin; row < end; ++row) {
        for (int64_t o = 0; o < g.o; ++o) {
          const double v = out[row * g.o + o];
          m[o] += v;
          m[g.o + o] += v * v;
        }
      }
    });
  }
}

// From y = cols . W^T + b:  dW += dy^T . cols,  db += sum_m dy,  dcols = dy . W.
void Conv2d::BackwardGemm(const float* dy, FloatTensor* dx) {
  const FloatTensor& x = *input_;
  const Geometry g{x.dim(0), x.dim(1), x.dim(2), x.dim(3), out_h_, out_w_,
                   options_.out_channels, options_.kernel, options_.stride, options_.padding,
                   options_.groups};
  const float* w = params_.value(weight_);
  float* dw = params_.grad(weight_);
  if (bias_ >= 0) {
    float* db = params_.grad(bias_);
    for (int64_t m = 0; m < g.rows(); ++m) {
      const float* row = dy + m * g.o;
      for (int64_t o = 0; o < g.o; ++o) db[o] += row[o];
    }
  }
  for (int group = 0; group < g.groups; ++group) {
    columns_.resize(g.rows() * g.patch());
    Im2Col(g, x.ptr(), group, columns_.data());
    const float* cols = columns_.data();
    const float* dy_group = dy + group * g.group_out();
    GemmAtBAccumulate(g.rows(), g.group_out(), g.patch(), dy_group, g.o, cols, g.patch(),
                      dw + group * g.group_out() * g.patch(), g.patch(), weight_sums_);
    if (dx == nullptr) continue;
    column_grads_.resize(g.rows() * g.patch());
    GemmAB(g.rows(), g.patch(), g.group_out(), dy_group, g.o,
           w + group * g.group_out() * g.patch(), g.patch(), column_grads_.data(), g.patch());
    Col2Im(g, column_grads_.data(), group, dx->ptr());
  }
}

// A 1x1 stride-1 conv is y = x . W^T (+ b) on [N*H*W, C] rows. Its backward
// takes dy a block of rows at a time and uses each block for dW += dy^T . x,
// dx = dy . W and db += sum dy while it is in cache: with a batch norm after
// the conv, dy is computed block by block and never written whole.
void Conv2d::BackwardPointwise(const GradientRows& dy, FloatTensor* dx, RowsObserver* dx_observer,
                               bool accumulate_dx) {
  const int64_t c = options_.in_channels, o = options_.out_channels;
  const int64_t rows = input_->size() / c;
  const int threads = Pool().num_threads();
  weight_sums_.Start(o, c, threads);
  if (dx != nullptr) right_.Pack(params_.value(weight_), c, o, c);
  if (bias_ >= 0) scratch_.assign(threads * o, 0.0f);
  block_rows_.resize(threads);
  // Rows per block: a quarter of a megabyte of dy.
  const int64_t block = std::max<int64_t>(16, 65536 / o);
  const float* x = input_->ptr();
  float* dx_data = dx != nullptr ? dx->ptr() : nullptr;
  Pool().ParallelFor(rows, [&, x, dx_data](int chunk, int64_t begin, int64_t end) {
    FloatBuffer& buffer = block_rows_[chunk];
    buffer.resize(block * o);
    for (int64_t b0 = begin; b0 < end; b0 += block) {
      const int64_t n = std::min(block, end - b0);
      const float* g = dy.Rows(b0, b0 + n, buffer.data());
      weight_sums_.AddRows(chunk, n, g, o, x + b0 * c, c);
      if (dx_data != nullptr) {
        right_.MultiplyRows(n, g, o, accumulate_dx ? 1.0f : 0.0f, dx_data + b0 * c, c);
        if (dx_observer != nullptr) dx_observer->Observe(chunk, b0, b0 + n, dx_data + b0 * c);
      }
      if (bias_ >= 0) AddColumnSums(g, n, o, scratch_.data() + chunk * o);
    }
  });
  weight_sums_.AccumulateInto(params_.grad(weight_), c);
  if (bias_ >= 0) {
    float* db = params_.grad(bias_);
    for (int t = 0; t < threads; ++t) {
      for (int64_t j = 0; j < o; ++j) db[j] += scratch_[t * o + j];
    }
  }
}

namespace {

// Sizes of a depthwise conv, copied into locals by the kernels below (a field
// read through a reference could alias their stores and would be reloaded).
struct DepthwiseShape {
  int64_t h, w, c, out_h, out_w;
  int k, stride, pad;
};

// The depthwise kernels work on one vector of channels [c0, c0 + lanes) at a
// time with their sums in registers. K is the kernel size when it is known at
// compile time (3, MobileNetV2's), or 0 for any other size.

// The weight vectors of the channels at wt [KH, KW, C] + c0: in registers for a
// known K, else read from L1 per tap.
template <int K>
class TapWeights {
 public:
  TapWeights(int kernel, const float* wt, int64_t c, int lanes)
      : k(K > 0 ? K : kernel), wt_(wt), c_(c), lanes_(lanes) {
    if constexpr (K > 0) {
      for (int t = 0; t < K * K; ++t) w_[t] = simd::LoadLanes(wt + t * c, lanes);
    }
  }
  simd::Vec operator[](int tap) const {
    if constexpr (K > 0) return w_[tap];
    return simd::LoadLanes(wt_ + tap * c_, lanes_);
  }
  const int k;

 private:
  simd::Vec w_[K > 0 ? K * K : 1];
  const float* wt_;
  int64_t c_;
  int lanes_;
};

// Output rows [begin, end) of n * OH: o = bias + sum over taps of x * w. Each
// row's channel vectors in turn, so the input rows it reads stay in L1. With
// `moments` ([2 * C]), adds the outputs' per-channel sums and sums of squares
// (summed in float over kMomentPixels pixels, then in double).
template <int K>
void DepthwiseForwardRows(const DepthwiseShape& s, const float* in, const float* wt,
                          const float* bias, float* out, int64_t begin, int64_t end,
                          double* moments) {
  const int64_t h = s.h, w = s.w, c = s.c, out_h = s.out_h, out_w = s.out_w;
  const int stride = s.stride, pad = s.pad;
  constexpr int kMomentPixels = 4;
  // The moments, each channel row padded to whole vectors.
  const int64_t padded = (c + simd::kLanes - 1) / simd::kLanes * simd::kLanes;
  thread_local std::vector<double> padded_moments;
  if (moments != nullptr) padded_moments.assign(2 * padded, 0.0);
  for (int64_t row = begin; row < end; ++row) {
    const int64_t n = row / out_h, oy = row % out_h;
    for (int64_t c0 = 0; c0 < c; c0 += simd::kLanes) {
      const int lanes = static_cast<int>(std::min<int64_t>(simd::kLanes, c - c0));
      const TapWeights<K> taps(s.k, wt + c0, c, lanes);
      const int k = taps.k;
      const simd::Vec b = bias != nullptr ? simd::LoadLanes(bias + c0, lanes) : simd::Zero();
      simd::Vec sum = simd::Zero(), squares = simd::Zero();
      for (int64_t ox = 0; ox < out_w; ++ox) {
        simd::Vec acc = b;
        for (int kh = 0; kh < k; ++kh) {
          const int64_t iy = oy * stride - pad + kh;
          if (iy < 0 || iy >= h) continue;
          const float* x_row = in + (n * h + iy) * w * c + c0;
          for (int kw = 0; kw < k; ++kw) {
            const int64_t ix = ox * stride - pad + kw;
            if (ix < 0 || ix >= w) continue;
            acc = simd::Fma(simd::LoadLanes(x_row + ix * c, lanes), taps[kh * k + kw], acc);
          }
        }
        simd::StoreLanes(out + (row * out_w + ox) * c + c0, acc, lanes);
        if (moments == nullptr) continue;
        sum = simd::Add(sum, acc);
        squares = simd::Fma(acc, acc, squares);
        if (ox % kMomentPixels == kMomentPixels - 1 || ox == out_w - 1) {
          simd::AddToDoubles(padded_moments.data() + c0, sum);
          simd::AddToDoubles(padded_moments.data() + padded + c0, squares);
          sum = squares = simd::Zero();
        }
      }
    }
  }
  if (moments == nullptr) return;
  for (int64_t ch = 0; ch < c; ++ch) {
    moments[ch] += padded_moments[ch];
    moments[c + ch] += padded_moments[padded + ch];
  }
}

// Images [begin, end): dwt[tap][ch] += g * x and db[ch] += g into this chunk's
// partials, over the output pixels of one image and channel vector at a time
// (the image stays in L2). A known K sums all taps in one sweep over the
// pixels; K = 0 makes one sweep per tap.
template <int K>
void DepthwiseWeightGradientImages(const DepthwiseShape& s, const float* in, const float* grad,
                                   float* dwt, float* db, int64_t begin, int64_t end) {
  const int64_t h = s.h, w = s.w, c = s.c, out_h = s.out_h, out_w = s.out_w;
  const int k = K > 0 ? K : s.k, stride = s.stride, pad = s.pad;
  constexpr int kSweepTaps = K > 0 ? K * K : 1;
  const int sweeps = K > 0 ? 1 : k * k;
  for (int64_t n = begin; n < end; ++n) {
    const float* image = in + n * h * w * c;
    const float* image_grad = grad + n * out_h * out_w * c;
    for (int64_t c0 = 0; c0 < c; c0 += simd::kLanes) {
      const int lanes = static_cast<int>(std::min<int64_t>(simd::kLanes, c - c0));
      for (int sweep = 0; sweep < sweeps; ++sweep) {
        simd::Vec acc[kSweepTaps];
        for (simd::Vec& a : acc) a = simd::Zero();
        simd::Vec bias_acc = simd::Zero();
        for (int64_t oy = 0; oy < out_h; ++oy) {
          for (int64_t ox = 0; ox < out_w; ++ox) {
            const simd::Vec g = simd::LoadLanes(image_grad + (oy * out_w + ox) * c + c0, lanes);
            if (sweep == 0) bias_acc = simd::Add(bias_acc, g);
            for (int t = 0; t < kSweepTaps; ++t) {
              const int tap = K > 0 ? t : sweep;
              const int64_t iy = oy * stride - pad + tap / k, ix = ox * stride - pad + tap % k;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              acc[t] = simd::Fma(g, simd::LoadLanes(image + (iy * w + ix) * c + c0, lanes), acc[t]);
            }
          }
        }
        for (int t = 0; t < kSweepTaps; ++t) {
          float* p = dwt + (K > 0 ? t : sweep) * c + c0;
          simd::StoreLanes(p, simd::Add(simd::LoadLanes(p, lanes), acc[t]), lanes);
        }
        if (sweep == 0) {
          simd::StoreLanes(db + c0, simd::Add(simd::LoadLanes(db + c0, lanes), bias_acc), lanes);
        }
      }
    }
  }
}

// The outputs that read input position i of a row or column of the image, and
// through which tap: for each i, the pairs (o, tap) with o * stride - pad + tap
// = i. Computed once per call, so the input-gradient loops below do no
// division.
struct GatherTaps {
  std::vector<int> offsets;                // [i]: first pair of position i; [extent]: the end
  std::vector<std::pair<int, int>> pairs;  // (output position, tap)

  GatherTaps(int64_t extent, int64_t out_extent, int k, int stride, int pad) {
    for (int64_t i = 0; i < extent; ++i) {
      offsets.push_back(static_cast<int>(pairs.size()));
      for (int tap = 0; tap < k; ++tap) {
        const int64_t t = i + pad - tap;  // = o * stride
        if (t >= 0 && t % stride == 0 && t / stride < out_extent) {
          pairs.emplace_back(static_cast<int>(t / stride), tap);
        }
      }
    }
    offsets.push_back(static_cast<int>(pairs.size()));
  }
};

// Images [begin, end): dx[iy, ix, ch] = sum over the outputs that read it of
// g * w[tap][ch]. Gathered per input pixel, so each dx element is written once
// (no zeroing, no read-modify-write); each row's channel vectors in turn.
template <int K>
void DepthwiseInputGradientImages(const DepthwiseShape& s, const GatherTaps& rows,
                                  const GatherTaps& cols, const float* wt, const float* grad,
                                  float* dx, int64_t begin, int64_t end) {
  const int64_t h = s.h, w = s.w, c = s.c, out_h = s.out_h, out_w = s.out_w;
  for (int64_t n = begin; n < end; ++n) {
    for (int64_t iy = 0; iy < h; ++iy) {
      for (int64_t c0 = 0; c0 < c; c0 += simd::kLanes) {
        const int lanes = static_cast<int>(std::min<int64_t>(simd::kLanes, c - c0));
        const TapWeights<K> taps(s.k, wt + c0, c, lanes);
        const int k = taps.k;
        for (int64_t ix = 0; ix < w; ++ix) {
          simd::Vec acc = simd::Zero();
          for (int r = rows.offsets[iy]; r < rows.offsets[iy + 1]; ++r) {
            const auto [oy, kh] = rows.pairs[r];
            const float* g_row = grad + (n * out_h + oy) * out_w * c + c0;
            for (int q = cols.offsets[ix]; q < cols.offsets[ix + 1]; ++q) {
              const auto [ox, kw] = cols.pairs[q];
              acc = simd::Fma(simd::LoadLanes(g_row + ox * c, lanes), taps[kh * k + kw], acc);
            }
          }
          simd::StoreLanes(dx + ((n * h + iy) * w + ix) * c + c0, acc, lanes);
        }
      }
    }
  }
}

// What one depthwise backward call's chunks share.
struct DepthwiseBackwardCall {
  DepthwiseShape shape;
  DepthwiseShape turned;  // dx as a forward conv of dy (stride 1)
  GatherTaps rows, cols;  // dx gathered per input pixel (other strides)
  const float* x;
  const float* weights;  // [KH, KW, C], turned 180 degrees when as_forward
  bool as_forward;
  float* partials;  // per chunk: dW as [KH, KW, C], then db
  int64_t partial_size;
  float* dx;  // null: not wanted
};

// Image n of a depthwise backward call, with g its dy [OH, OW, C]: this
// chunk's dW and db partial sums, and dx.
template <int K>
void DepthwiseBackwardImage(const DepthwiseBackwardCall& b, int chunk, int64_t n,
                            const float* g) {
  const DepthwiseShape& s = b.shape;
  float* dwt = b.partials + chunk * b.partial_size;
  const float* x = b.x + n * s.h * s.w * s.c;
  DepthwiseWeightGradientImages<K>(s, x, g, dwt, dwt + int64_t{s.k} * s.k * s.c, 0, 1);
  if (b.dx == nullptr) return;
  float* dx = b.dx + n * s.h * s.w * s.c;
  if (b.as_forward) {
    DepthwiseForwardRows<K>(b.turned, g, b.weights, nullptr, dx, 0, s.h, nullptr);
  } else {
    DepthwiseInputGradientImages<K>(s, b.rows, b.cols, b.weights, g, dx, 0, 1);
  }
}

// The weights [C, KH, KW, 1] as [KH, KW, C], so channel loops are contiguous.
void TransposeDepthwiseWeights(const float* weight, int64_t c, int taps, FloatBuffer& wt) {
  wt.resize(taps * c);
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int t = 0; t < taps; ++t) wt[t * c + ch] = weight[ch * taps + t];
  }
}

}  // namespace

// y[n, oy, ox, c] = bias[c] + sum_{kh, kw} x[n, iy, ix, c] * W[c, kh, kw].
void Conv2d::ForwardDepthwise(const FloatTensor& x, FloatTensor& y, ChannelMoments* moments) {
  const DepthwiseShape s{x.dim(1), x.dim(2),        x.dim(3),        out_h_,
                         out_w_,   options_.kernel, options_.stride, options_.padding};
  TransposeDepthwiseWeights(params_.value(weight_), s.c, s.k * s.k, transposed_weights_);
  const float* bias = bias_ >= 0 ? params_.value(bias_) : nullptr;
  const float* in = x.ptr();
  const float* wt = transposed_weights_.data();
  float* out = y.ptr();
  Pool().ParallelFor(x.dim(0) * out_h_, [=](int chunk, int64_t begin, int64_t end) {
    double* m = moments != nullptr ? moments->chunk(chunk) : nullptr;
    if (s.k == 3) {
      DepthwiseForwardRows<3>(s, in, wt, bias, out, begin, end, m);
    } else {
      DepthwiseForwardRows<0>(s, in, wt, bias, out, begin, end, m);
    }
  });
}

// From the forward line o[ch] += xp[ch] * wp[ch]:
//   dx[n, iy, ix, ch] += dy * W[ch, kh, kw]   (by image; see below)
//   dW[ch, kh, kw]    += dy * x               (per-thread partial sums, reduced in
//   db[ch]            += dy                    chunk order: reproducible)
// With stride 1, dx is a forward depthwise conv of dy with the kernel turned
// 180 degrees and padding k - 1 - pad; other strides gather per input pixel.
// dy comes an image at a time, used for all of these while in cache.
void Conv2d::BackwardDepthwise(const GradientRows& dy, FloatTensor* dx,
                               RowsObserver* dx_observer) {
  const FloatTensor& x = *input_;
  const DepthwiseShape s{x.dim(1),        x.dim(2),       x.dim(3),
                         out_h_,          out_w_,         options_.kernel,
                         options_.stride, options_.padding};
  const int64_t c = s.c, taps = int64_t{s.k} * s.k;
  TransposeDepthwiseWeights(params_.value(weight_), c, s.k * s.k, transposed_weights_);
  const int threads = Pool().num_threads();
  const int64_t partial_size = taps * c + c;  // dW (as [KH, KW, C]) then db
  scratch_.assign(threads * partial_size, 0.0f);
  const bool as_forward = s.stride == 1 && s.pad <= s.k - 1;
  if (as_forward) {
    turned_weights_.resize(taps * c);
    for (int64_t t = 0; t < taps; ++t) {
      std::copy_n(transposed_weights_.data() + (taps - 1 - t) * c, c,
                  turned_weights_.data() + t * c);
    }
  }
  DepthwiseBackwardCall call{s,
                             {s.out_h, s.out_w, c, s.h, s.w, s.k, 1, s.k - 1 - s.pad},
                             GatherTaps(s.h, s.out_h, s.k, s.stride, s.pad),
                             GatherTaps(s.w, s.out_w, s.k, s.stride, s.pad),
                             x.ptr(),
                             as_forward ? turned_weights_.data() : transposed_weights_.data(),
                             as_forward,
                             scratch_.data(),
                             partial_size,
                             dx != nullptr ? dx->ptr() : nullptr};
  const int64_t image_rows = s.out_h * s.out_w;
  block_rows_.resize(threads);
  Pool().ParallelFor(x.dim(0), [&](int chunk, int64_t begin, int64_t end) {
    FloatBuffer& buffer = block_rows_[chunk];
    buffer.resize(image_rows * c);
    for (int64_t n = begin; n < end; ++n) {
      const float* g = dy.Rows(n * image_rows, (n + 1) * image_rows, buffer.data());
      if (s.k == 3) {
        DepthwiseBackwardImage<3>(call, chunk, n, g);
      } else {
        DepthwiseBackwardImage<0>(call, chunk, n, g);
      }
      if (call.dx != nullptr && dx_observer != nullptr) {
        const int64_t pixels = s.h * s.w;
        dx_observer->Observe(chunk, n * pixels, (n + 1) * pixels, call.dx + n * pixels * c);
      }
    }
  });
  float* dw = params_.grad(weight_);
  float* db = bias_ >= 0 ? params_.grad(bias_) : nullptr;
  for (int t = 0; t < threads; ++t) {
    const float* dwt = scratch_.data() + t * partial_size;
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t tap = 0; tap < taps; ++tap) dw[ch * taps + tap] += dwt[tap * c + ch];
      if (db != nullptr) db[ch] += dwt[taps * c + ch];
    }
  }
}

}  // namespace qforge

#include "trainer/conv2d.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "trainer/parallel.h"

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
  Pool().ParallelFor(g.rows(), [&](int, int64_t begin, int64_t end) {
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
  Pool().ParallelFor(g.n, [&](int, int64_t begin, int64_t end) {
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

void Conv2d::Forward(const Tensor& x, Tensor& y) {
  input_ = &x;
  out_h_ = ConvOutputExtent(x.dim(1), options_.kernel, options_.stride, options_.padding);
  out_w_ = ConvOutputExtent(x.dim(2), options_.kernel, options_.stride, options_.padding);
  y.Resize({x.dim(0), out_h_, out_w_, options_.out_channels});
  if (depthwise()) {
    ForwardDepthwise(x, y);
  } else {
    ForwardGemm(x, y);
  }
}

void Conv2d::Backward(const Tensor& dy, Tensor* dx) {
  if (dx != nullptr) {
    dx->Resize(input_->shape);
    std::fill(dx->data.begin(), dx->data.end(), 0.0f);
  }
  if (depthwise()) {
    BackwardDepthwise(dy, dx);
  } else {
    BackwardGemm(dy, dx);
  }
}

// y[m, o] = bias[o] + sum_k cols[m, k] * W[o, k], one GEMM per group.
void Conv2d::ForwardGemm(const Tensor& x, Tensor& y) {
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
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g.rows(), g.group_out(), g.patch(), 1.0f,
                cols, g.patch(), w + group * g.group_out() * g.patch(), g.patch(), beta,
                out + group * g.group_out(), g.o);
  }
}

// From y = cols . W^T + b:  dW += dy^T . cols,  db += sum_m dy,  dcols = dy . W.
void Conv2d::BackwardGemm(const Tensor& dy, Tensor* dx) {
  const Tensor& x = *input_;
  const Geometry g{x.dim(0), x.dim(1), x.dim(2), x.dim(3), out_h_, out_w_,
                   options_.out_channels, options_.kernel, options_.stride, options_.padding,
                   options_.groups};
  const float* w = params_.value(weight_);
  float* dw = params_.grad(weight_);
  if (bias_ >= 0) {
    float* db = params_.grad(bias_);
    for (int64_t m = 0; m < g.rows(); ++m) {
      const float* row = dy.ptr() + m * g.o;
      for (int64_t o = 0; o < g.o; ++o) db[o] += row[o];
    }
  }
  std::vector<float> dcols;
  for (int group = 0; group < g.groups; ++group) {
    const float* cols = x.ptr();
    if (!pointwise()) {
      columns_.resize(g.rows() * g.patch());
      Im2Col(g, x.ptr(), group, columns_.data());
      cols = columns_.data();
    }
    const float* dy_group = dy.ptr() + group * g.group_out();
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g.group_out(), g.patch(), g.rows(), 1.0f,
                dy_group, g.o, cols, g.patch(), 1.0f, dw + group * g.group_out() * g.patch(),
                g.patch());
    if (dx == nullptr) continue;
    if (pointwise()) {  // dcols is dx itself
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.rows(), g.patch(), g.group_out(),
                  1.0f, dy_group, g.o, w, g.patch(), 0.0f, dx->ptr(), g.patch());
      continue;
    }
    dcols.resize(g.rows() * g.patch());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.rows(), g.patch(), g.group_out(), 1.0f,
                dy_group, g.o, w + group * g.group_out() * g.patch(), g.patch(), 0.0f,
                dcols.data(), g.patch());
    Col2Im(g, dcols.data(), group, dx->ptr());
  }
}

// y[n, oy, ox, c] = bias[c] + sum_{kh, kw} x[n, iy, ix, c] * W[c, kh, kw]; the
// weights are read transposed to [KH, KW, C] so the channel loop is contiguous.
void Conv2d::ForwardDepthwise(const Tensor& x, Tensor& y) {
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  const int k = options_.kernel, stride = options_.stride, pad = options_.padding;
  std::vector<float> wt(int64_t{k} * k * c);
  const float* weight = params_.value(weight_);
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int t = 0; t < k * k; ++t) wt[t * c + ch] = weight[ch * k * k + t];
  }
  const float* bias = bias_ >= 0 ? params_.value(bias_) : nullptr;
  const float* in = x.ptr();
  float* out = y.ptr();
  Pool().ParallelFor(n * out_h_, [&](int, int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / out_h_, oy = row % out_h_;
      for (int64_t ox = 0; ox < out_w_; ++ox) {
        float* o = out + (row * out_w_ + ox) * c;
        for (int64_t ch = 0; ch < c; ++ch) o[ch] = bias != nullptr ? bias[ch] : 0.0f;
        for (int kh = 0; kh < k; ++kh) {
          const int64_t iy = oy * stride - pad + kh;
          if (iy < 0 || iy >= h) continue;
          for (int kw = 0; kw < k; ++kw) {
            const int64_t ix = ox * stride - pad + kw;
            if (ix < 0 || ix >= w) continue;
            const float* xp = in + ((b * h + iy) * w + ix) * c;
            const float* wp = wt.data() + (kh * k + kw) * c;
            for (int64_t ch = 0; ch < c; ++ch) o[ch] += xp[ch] * wp[ch];
          }
        }
      }
    }
  });
}

// From the forward line o[ch] += xp[ch] * wp[ch]:
//   dx[n, iy, ix, ch] += dy * W[ch, kh, kw]   (split by image: disjoint writes)
//   dW[ch, kh, kw]    += dy * x               (per-thread partial sums, reduced in
//   db[ch]            += dy                    chunk order: reproducible)
void Conv2d::BackwardDepthwise(const Tensor& dy, Tensor* dx) {
  const Tensor& x = *input_;
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  const int k = options_.kernel, stride = options_.stride, pad = options_.padding;
  const int64_t taps = int64_t{k} * k;
  std::vector<float> wt(taps * c);
  const float* weight = params_.value(weight_);
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int t = 0; t < taps; ++t) wt[t * c + ch] = weight[ch * taps + t];
  }
  const int threads = Pool().num_threads();
  const int64_t partial_size = taps * c + c;  // dW (as [KH, KW, C]) then db
  scratch_.assign(threads * partial_size, 0.0f);
  Pool().ParallelFor(n, [&](int chunk, int64_t begin, int64_t end) {
    float* dwt = scratch_.data() + chunk * partial_size;
    float* db = dwt + taps * c;
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t oy = 0; oy < out_h_; ++oy) {
        for (int64_t ox = 0; ox < out_w_; ++ox) {
          const float* g = dy.ptr() + ((b * out_h_ + oy) * out_w_ + ox) * c;
          for (int64_t ch = 0; ch < c; ++ch) db[ch] += g[ch];
          for (int kh = 0; kh < k; ++kh) {
            const int64_t iy = oy * stride - pad + kh;
            if (iy < 0 || iy >= h) continue;
            for (int kw = 0; kw < k; ++kw) {
              const int64_t ix = ox * stride - pad + kw;
              if (ix < 0 || ix >= w) continue;
              const int64_t offset = ((b * h + iy) * w + ix) * c;
              const float* xp = x.ptr() + offset;
              const float* wp = wt.data() + (kh * k + kw) * c;
              float* dwp = dwt + (kh * k + kw) * c;
              for (int64_t ch = 0; ch < c; ++ch) dwp[ch] += g[ch] * xp[ch];
              if (dx != nullptr) {
                float* dxp = dx->ptr() + offset;
                for (int64_t ch = 0; ch < c; ++ch) dxp[ch] += g[ch] * wp[ch];
              }
            }
          }
        }
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

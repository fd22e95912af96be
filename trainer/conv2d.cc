#include "trainer/conv2d.h"

#include <algorithm>
#include <cstring>

#include "trainer/gemm.h"
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

void Conv2d::Forward(const FloatTensor& x, FloatTensor& y) {
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

void Conv2d::Backward(const FloatTensor& dy, FloatTensor* dx) {
  if (dx != nullptr) {
    dx->Resize(input_->shape);
    // The im2col path accumulates into dx; pointwise and depthwise overwrite it.
    if (!pointwise() && !depthwise()) std::fill(dx->data.begin(), dx->data.end(), 0.0f);
  }
  if (depthwise()) {
    BackwardDepthwise(dy, dx);
  } else {
    BackwardGemm(dy, dx);
  }
}

// y[m, o] = bias[o] + sum_k cols[m, k] * W[o, k], one GEMM per group.
void Conv2d::ForwardGemm(const FloatTensor& x, FloatTensor& y) {
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
    GemmABt(g.rows(), g.group_out(), g.patch(), cols, g.patch(),
            w + group * g.group_out() * g.patch(), g.patch(), beta, out + group * g.group_out(),
            g.o);
  }
}

// From y = cols . W^T + b:  dW += dy^T . cols,  db += sum_m dy,  dcols = dy . W.
void Conv2d::BackwardGemm(const FloatTensor& dy, FloatTensor* dx) {
  const FloatTensor& x = *input_;
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
  for (int group = 0; group < g.groups; ++group) {
    const float* cols = x.ptr();
    if (!pointwise()) {
      columns_.resize(g.rows() * g.patch());
      Im2Col(g, x.ptr(), group, columns_.data());
      cols = columns_.data();
    }
    const float* dy_group = dy.ptr() + group * g.group_out();
    GemmAtBAccumulate(g.rows(), g.group_out(), g.patch(), dy_group, g.o, cols, g.patch(),
                      dw + group * g.group_out() * g.patch(), g.patch(), gemm_scratch_);
    if (dx == nullptr) continue;
    if (pointwise()) {  // dcols is dx itself
      GemmAB(g.rows(), g.patch(), g.group_out(), dy_group, g.o, w, g.patch(), dx->ptr(),
             g.patch());
      continue;
    }
    column_grads_.resize(g.rows() * g.patch());
    GemmAB(g.rows(), g.patch(), g.group_out(), dy_group, g.o,
           w + group * g.group_out() * g.patch(), g.patch(), column_grads_.data(), g.patch());
    Col2Im(g, column_grads_.data(), group, dx->ptr());
  }
}

namespace {

// Sizes of a depthwise conv, copied into locals by the kernels below (a field
// read through a reference could alias their stores and would be reloaded).
struct DepthwiseShape {
  int64_t h, w, c, out_h, out_w;
  int k, stride, pad;
};

// Output rows [begin, end) of n * OH: o[ch] = bias[ch] + sum x[ch] * wt[tap][ch].
void DepthwiseForwardRows(const DepthwiseShape& s, const float* __restrict in,
                          const float* __restrict wt, const float* __restrict bias,
                          float* __restrict out, int64_t begin, int64_t end) {
  const int64_t h = s.h, w = s.w, c = s.c, out_h = s.out_h, out_w = s.out_w;
  const int k = s.k, stride = s.stride, pad = s.pad;
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / out_h, oy = row % out_h;
    for (int64_t ox = 0; ox < out_w; ++ox) {
      float* __restrict o = out + (row * out_w + ox) * c;
      for (int64_t ch = 0; ch < c; ++ch) o[ch] = bias != nullptr ? bias[ch] : 0.0f;
      for (int kh = 0; kh < k; ++kh) {
        const int64_t iy = oy * stride - pad + kh;
        if (iy < 0 || iy >= h) continue;
        for (int kw = 0; kw < k; ++kw) {
          const int64_t ix = ox * stride - pad + kw;
          if (ix < 0 || ix >= w) continue;
          const float* __restrict xp = in + ((b * h + iy) * w + ix) * c;
          const float* __restrict wp = wt + (kh * k + kw) * c;
          for (int64_t ch = 0; ch < c; ++ch) o[ch] += xp[ch] * wp[ch];
        }
      }
    }
  }
}

// Images [begin, end): dwt[tap][ch] += g * x and db[ch] += g into this chunk's
// partials, over the output pixels.
void DepthwiseWeightGradientImages(const DepthwiseShape& s, const float* __restrict in,
                                   const float* __restrict grad, float* __restrict dwt,
                                   float* __restrict db, int64_t begin, int64_t end) {
  const int64_t h = s.h, w = s.w, c = s.c, out_h = s.out_h, out_w = s.out_w;
  const int k = s.k, stride = s.stride, pad = s.pad;
  for (int64_t b = begin; b < end; ++b) {
    for (int64_t oy = 0; oy < out_h; ++oy) {
      for (int64_t ox = 0; ox < out_w; ++ox) {
        const float* __restrict g = grad + ((b * out_h + oy) * out_w + ox) * c;
        for (int64_t ch = 0; ch < c; ++ch) db[ch] += g[ch];
        for (int kh = 0; kh < k; ++kh) {
          const int64_t iy = oy * stride - pad + kh;
          if (iy < 0 || iy >= h) continue;
          for (int kw = 0; kw < k; ++kw) {
            const int64_t ix = ox * stride - pad + kw;
            if (ix < 0 || ix >= w) continue;
            const float* __restrict xp = in + ((b * h + iy) * w + ix) * c;
            float* __restrict dwp = dwt + (kh * k + kw) * c;
            for (int64_t ch = 0; ch < c; ++ch) dwp[ch] += g[ch] * xp[ch];
          }
        }
      }
    }
  }
}

// Images [begin, end): dx[iy, ix, ch] = sum over the outputs that read it of
// g * wt[tap][ch]. Gathered per input pixel, so each dx element is written once
// (no zeroing, no read-modify-write).
void DepthwiseInputGradientImages(const DepthwiseShape& s, const float* __restrict wt,
                                  const float* __restrict grad, float* __restrict dx,
                                  int64_t begin, int64_t end) {
  const int64_t h = s.h, w = s.w, c = s.c, out_h = s.out_h, out_w = s.out_w;
  const int k = s.k, stride = s.stride, pad = s.pad;
  for (int64_t b = begin; b < end; ++b) {
    for (int64_t iy = 0; iy < h; ++iy) {
      for (int64_t ix = 0; ix < w; ++ix) {
        float* __restrict dxp = dx + ((b * h + iy) * w + ix) * c;
        for (int64_t ch = 0; ch < c; ++ch) dxp[ch] = 0.0f;
        for (int kh = 0; kh < k; ++kh) {
          const int64_t ty = iy + pad - kh;  // = oy * stride
          if (ty < 0 || ty % stride != 0 || ty / stride >= out_h) continue;
          for (int kw = 0; kw < k; ++kw) {
            const int64_t tx = ix + pad - kw;
            if (tx < 0 || tx % stride != 0 || tx / stride >= out_w) continue;
            const float* __restrict g = grad + ((b * out_h + ty / stride) * out_w + tx / stride) * c;
            const float* __restrict wp = wt + (kh * k + kw) * c;
            for (int64_t ch = 0; ch < c; ++ch) dxp[ch] += g[ch] * wp[ch];
          }
        }
      }
    }
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
void Conv2d::ForwardDepthwise(const FloatTensor& x, FloatTensor& y) {
  const DepthwiseShape s{x.dim(1), x.dim(2), x.dim(3), out_h_, out_w_,
                         options_.kernel, options_.stride, options_.padding};
  TransposeDepthwiseWeights(params_.value(weight_), s.c, s.k * s.k, transposed_weights_);
  const float* bias = bias_ >= 0 ? params_.value(bias_) : nullptr;
  const float* in = x.ptr();
  const float* wt = transposed_weights_.data();
  float* out = y.ptr();
  Pool().ParallelFor(x.dim(0) * out_h_, [=](int, int64_t begin, int64_t end) {
    DepthwiseForwardRows(s, in, wt, bias, out, begin, end);
  });
}

// From the forward line o[ch] += xp[ch] * wp[ch]:
//   dx[n, iy, ix, ch] += dy * W[ch, kh, kw]   (gathered per input pixel, by image)
//   dW[ch, kh, kw]    += dy * x               (per-thread partial sums, reduced in
//   db[ch]            += dy                    chunk order: reproducible)
void Conv2d::BackwardDepthwise(const FloatTensor& dy, FloatTensor* dx) {
  const FloatTensor& x = *input_;
  const DepthwiseShape s{x.dim(1), x.dim(2), x.dim(3), out_h_, out_w_,
                         options_.kernel, options_.stride, options_.padding};
  const int64_t c = s.c, taps = int64_t{s.k} * s.k;
  TransposeDepthwiseWeights(params_.value(weight_), c, s.k * s.k, transposed_weights_);
  const int threads = Pool().num_threads();
  const int64_t partial_size = taps * c + c;  // dW (as [KH, KW, C]) then db
  scratch_.assign(threads * partial_size, 0.0f);
  float* partials = scratch_.data();
  const float* wt = transposed_weights_.data();
  const float* in = x.ptr();
  const float* grad = dy.ptr();
  float* dx_data = dx != nullptr ? dx->ptr() : nullptr;
  Pool().ParallelFor(x.dim(0), [=](int chunk, int64_t begin, int64_t end) {
    float* dwt = partials + chunk * partial_size;
    DepthwiseWeightGradientImages(s, in, grad, dwt, dwt + taps * c, begin, end);
    if (dx_data != nullptr) DepthwiseInputGradientImages(s, wt, grad, dx_data, begin, end);
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

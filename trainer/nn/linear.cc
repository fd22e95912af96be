#include "trainer/nn/linear.h"

#include <cstring>

#include "trainer/nn/gemm.h"
#include "trainer/nn/parallel.h"

namespace qforge {

Linear::Linear(const std::string& name, int in_features, int out_features,
               ParameterStore& params)
    : name_(name), in_(in_features), out_(out_features), params_(params) {
  weight_ = params.Add(name + ".weight", {out_features, in_features});
  bias_ = params.Add(name + ".bias", {out_features});
}

void Linear::Forward(const FloatTensor& x, FloatTensor& y) {
  input_ = &x;
  const int64_t n = x.dim(0);
  y.Resize({n, out_});
  const float* b = params_.value(bias_);
  for (int64_t i = 0; i < n; ++i) std::memcpy(y.ptr() + i * out_, b, out_ * sizeof(float));
  GemmABt(n, out_, in_, x.ptr(), in_, params_.value(weight_), in_, 1.0f, y.ptr(), out_);
}

void Linear::Backward(const FloatTensor& dy, FloatTensor* dx) {
  const int64_t n = dy.dim(0);
  GemmAtBAccumulate(n, out_, in_, dy.ptr(), out_, input_->ptr(), in_, params_.grad(weight_), in_,
                    weight_sums_);
  float* db = params_.grad(bias_);
  for (int64_t i = 0; i < n; ++i) {
    for (int o = 0; o < out_; ++o) db[o] += dy.data[i * out_ + o];
  }
  if (dx == nullptr) return;
  dx->Resize(input_->shape);
  GemmAB(n, in_, out_, dy.ptr(), out_, params_.value(weight_), in_, dx->ptr(), in_);
}

void MeanHW::Forward(const FloatTensor& x, FloatTensor& y) {
  input_shape_ = x.shape;
  const int64_t n = x.dim(0), pixels = x.dim(1) * x.dim(2), c = x.dim(3);
  y.Resize({n, c});
  const float* px = x.ptr();
  float* py = y.ptr();
  Pool().ParallelFor(n, [=](int, int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      float* out = py + b * c;
      std::memset(out, 0, c * sizeof(float));
      for (int64_t p = 0; p < pixels; ++p) {
        const float* in = px + (b * pixels + p) * c;
        for (int64_t ch = 0; ch < c; ++ch) out[ch] += in[ch];
      }
      for (int64_t ch = 0; ch < c; ++ch) out[ch] /= static_cast<float>(pixels);
    }
  });
}

void MeanHW::Backward(const FloatTensor& dy, FloatTensor& dx) {
  dx.Resize(input_shape_);
  const int64_t n = input_shape_[0], pixels = input_shape_[1] * input_shape_[2],
                c = input_shape_[3];
  const float inv = 1.0f / static_cast<float>(pixels);
  const float* pdy = dy.ptr();
  float* pdx = dx.ptr();
  Pool().ParallelFor(n, [=](int, int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const float* g = pdy + b * c;
      for (int64_t p = 0; p < pixels; ++p) {
        float* out = pdx + (b * pixels + p) * c;
        for (int64_t ch = 0; ch < c; ++ch) out[ch] = g[ch] * inv;
      }
    }
  });
}

}  // namespace qforge

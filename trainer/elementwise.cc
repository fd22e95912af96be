#include "trainer/elementwise.h"

#include <algorithm>

#include "common/random.h"
#include "trainer/parallel.h"

namespace qforge {

void ClampedReLU::Forward(const Tensor& x, Tensor& y) {
  y.Resize(x.shape);
  const float* in = x.ptr();
  float* out = y.ptr();
  Pool().ParallelFor(x.size(), [&](int, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = std::min(std::max(in[i], 0.0f), cap_);
  });
  output_ = &y;
}

void ClampedReLU::Backward(const Tensor& dy, Tensor& dx) {
  dx.Resize(dy.shape);
  const float* y = output_->ptr();
  const float* g = dy.ptr();
  float* out = dx.ptr();
  Pool().ParallelFor(dy.size(), [&](int, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = (y[i] > 0.0f && y[i] < cap_) ? g[i] : 0.0f;
  });
}

namespace {

// FNV-1a: a fixed hash of the layer name (std::hash may differ between builds).
uint64_t NameKey(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001b3ULL;
  return h;
}

}  // namespace

Dropout::Dropout(const std::string& name, float p) : name_(name), p_(p), key_(NameKey(name)) {}

void Dropout::Forward(const Tensor& x, Tensor& y, const PassContext& ctx) {
  y.Resize(x.shape);
  if (!ctx.training || p_ <= 0.0f) {
    mask_.clear();
    y.data = x.data;
    return;
  }
  mask_.resize(x.size());
  const float keep_scale = 1.0f / (1.0f - p_);
  SplitMix64 rng(DeriveSeed({ctx.seed, key_, static_cast<uint64_t>(ctx.step)}));
  for (float& m : mask_) m = rng.UniformFloat() < p_ ? 0.0f : keep_scale;
  for (int64_t i = 0; i < x.size(); ++i) y.data[i] = x.data[i] * mask_[i];
}

void Dropout::Backward(const Tensor& dy, Tensor& dx) {
  dx.Resize(dy.shape);
  if (mask_.empty()) {
    dx.data = dy.data;
    return;
  }
  for (int64_t i = 0; i < dy.size(); ++i) dx.data[i] = dy.data[i] * mask_[i];
}

void Add::Forward(const Tensor& a, const Tensor& b, Tensor& y) {
  y.Resize(a.shape);
  Pool().ParallelFor(a.size(), [&](int, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) y.data[i] = a.data[i] + b.data[i];
  });
}

void Add::Backward(const Tensor& dy, Tensor& da, Tensor& db) {
  Pool().ParallelFor(dy.size(), [&](int, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      da.data[i] += dy.data[i];
      db.data[i] += dy.data[i];
    }
  });
}

}  // namespace qforge

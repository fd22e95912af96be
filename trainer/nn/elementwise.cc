#include "trainer/nn/elementwise.h"

#include <algorithm>

#include "common/random.h"
#include "trainer/nn/parallel.h"

namespace qforge {

namespace {

// The loops of the parallel kernels live in plain functions: their pointer
// parameters cannot alias a lambda's captures, so the compiler vectorises them
// (inside a lambda it reloads every capture after each store).
void ClampRange(const float* __restrict in, float* __restrict out, float cap, int64_t begin,
                int64_t end) {
  for (int64_t i = begin; i < end; ++i) out[i] = std::min(std::max(in[i], 0.0f), cap);
}

void ClampGradientRange(const float* __restrict y, const float* __restrict g,
                        float* __restrict out, float cap, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float gi = g[i];  // loaded unconditionally, so the select vectorises
    out[i] = ((y[i] > 0.0f) & (y[i] < cap)) ? gi : 0.0f;
  }
}

void AddRange(const float* __restrict a, const float* __restrict b, float* __restrict out,
              int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) out[i] = a[i] + b[i];
}

void AccumulateRange(const float* __restrict g, float* __restrict a, float* __restrict b,
                     int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    a[i] += g[i];
    b[i] += g[i];
  }
}

}  // namespace

void ClampedReLU::Forward(const FloatTensor& x, FloatTensor& y) {
  y.Resize(x.shape);
  const float* in = x.ptr();
  float* out = y.ptr();
  const float cap = cap_;
  Pool().ParallelFor(x.size(), [=](int, int64_t begin, int64_t end) {
    ClampRange(in, out, cap, begin, end);
  });
  output_ = &y;
}

void ClampedReLU::Backward(const FloatTensor& dy, FloatTensor& dx) {
  dx.Resize(dy.shape);
  const float* y = output_->ptr();
  const float* g = dy.ptr();
  float* out = dx.ptr();
  const float cap = cap_;
  Pool().ParallelFor(dy.size(), [=](int, int64_t begin, int64_t end) {
    ClampGradientRange(y, g, out, cap, begin, end);
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

void Dropout::Forward(const FloatTensor& x, FloatTensor& y, const PassContext& ctx) {
  y.Resize(x.shape);
  if (!ctx.training || p_ <= 0.0f) {
    mask_.clear();
    y.data = x.data;
    return;
  }
  mask_.resize(x.size());
  const float keep_scale = 1.0f / (1.0f - p_);
  SplitMix64 rng(DeriveSeed({ctx.seed, key_, static_cast<uint64_t>(ctx.step)}));
  rng.Skip(static_cast<uint64_t>(ctx.row_offset * (x.size() / std::max<int64_t>(x.shape[0], 1))));
  for (float& m : mask_) m = rng.UniformFloat() < p_ ? 0.0f : keep_scale;
  for (int64_t i = 0; i < x.size(); ++i) y.data[i] = x.data[i] * mask_[i];
}

void Dropout::Backward(const FloatTensor& dy, FloatTensor& dx) {
  dx.Resize(dy.shape);
  if (mask_.empty()) {
    dx.data = dy.data;
    return;
  }
  for (int64_t i = 0; i < dy.size(); ++i) dx.data[i] = dy.data[i] * mask_[i];
}

void Add::Forward(const FloatTensor& a, const FloatTensor& b, FloatTensor& y) {
  y.Resize(a.shape);
  const float* pa = a.ptr();
  const float* pb = b.ptr();
  float* out = y.ptr();
  Pool().ParallelFor(a.size(), [=](int, int64_t begin, int64_t end) {
    AddRange(pa, pb, out, begin, end);
  });
}

void Add::Backward(const FloatTensor& dy, FloatTensor& da, FloatTensor& db) {
  const float* g = dy.ptr();
  float* pa = da.ptr();
  float* pb = db.ptr();
  Pool().ParallelFor(dy.size(), [=](int, int64_t begin, int64_t end) {
    AccumulateRange(g, pa, pb, begin, end);
  });
}

}  // namespace qforge

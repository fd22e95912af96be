#include "trainer/nn/batch_norm.h"

#include <algorithm>
#include <cmath>

#include "trainer/dist/collectives.h"
#include "trainer/nn/parallel.h"

namespace qforge {
namespace {

// The loops below are plain functions: their pointer parameters cannot alias a
// lambda's captures, so the compiler keeps them in registers and vectorises.

// s[c] += a[m, c] and sp[c] += a[m, c] * b[m, c] over rows [begin, end).
// Sums are taken in float over blocks of kBlockRows rows and the block sums
// added in double: float vectors run at twice the width of double ones, and a
// float sum of 32 terms loses nothing that matters next to the double total.
constexpr int64_t kBlockRows = 32;

// Adds a block's float sums into the double totals and clears them.
void FlushBlock(float* __restrict block, double* __restrict total, int n) {
  for (int i = 0; i < n; ++i) {
    total[i] += block[i];
    block[i] = 0.0f;
  }
}

void ChannelSumsRange(const float* __restrict a, const float* __restrict b, int channels,
                      double* __restrict s, double* __restrict sp, int64_t begin, int64_t end) {
  std::vector<float> block(2 * channels, 0.0f);
  float* __restrict bs = block.data();
  float* __restrict bsp = bs + channels;
  for (int64_t m = begin; m < end; ++m) {
    const float* __restrict ra = a + m * channels;
    const float* __restrict rb = b + m * channels;
    for (int c = 0; c < channels; ++c) {
      bs[c] += ra[c];
      bsp[c] += ra[c] * rb[c];
    }
    if ((m - begin) % kBlockRows == kBlockRows - 1 || m == end - 1) {
      FlushBlock(bs, s, channels);
      FlushBlock(bsp, sp, channels);
    }
  }
}

// Per-channel sums of a[m, c] and of a[m, c] * b[m, c] over the rows of [M, C]
// matrices (b null: of a[m, c]^2), totalled in double: per-thread partials
// reduced in chunk order, so the result is reproducible for a thread count.
void ChannelSums(const float* a, const float* b, int64_t rows, int channels,
                 std::vector<double>& partial, std::vector<double>& sum,
                 std::vector<double>& product_sum) {
  const int threads = Pool().num_threads();
  partial.assign(static_cast<size_t>(threads) * 2 * channels, 0.0);
  double* partials = partial.data();
  const float* second = b != nullptr ? b : a;
  Pool().ParallelFor(rows, [=](int chunk, int64_t begin, int64_t end) {
    double* s = partials + static_cast<size_t>(chunk) * 2 * channels;
    ChannelSumsRange(a, second, channels, s, s + channels, begin, end);
  });
  sum.assign(channels, 0.0);
  product_sum.assign(channels, 0.0);
  for (int t = 0; t < threads; ++t) {
    const double* s = partials + static_cast<size_t>(t) * 2 * channels;
    for (int c = 0; c < channels; ++c) {
      sum[c] += s[c];
      product_sum[c] += s[channels + c];
    }
  }
}

// y = clamp(x * scale + shift), rows [begin, end); clamp_max NaN: no clamp.
void NormalizeRange(const float* __restrict in, const float* __restrict scale,
                    const float* __restrict shift, int c, float clamp_max, float* __restrict out,
                    int64_t begin, int64_t end) {
  if (std::isnan(clamp_max)) {
    for (int64_t i = begin * c; i < end * c; i += c) {
      for (int ch = 0; ch < c; ++ch) out[i + ch] = in[i + ch] * scale[ch] + shift[ch];
    }
    return;
  }
  for (int64_t i = begin * c; i < end * c; i += c) {
    for (int ch = 0; ch < c; ++ch) {
      out[i + ch] = std::min(std::max(in[i + ch] * scale[ch] + shift[ch], 0.0f), clamp_max);
    }
  }
}

// The gradient at the normalised output: dy where the fused clamp passed it
// (0 < y < clamp_max, PyTorch's ReLU / hardtanh backward), else 0. The clamp's
// input x * scale + shift is recomputed from x, as Forward computed it, rather
// than y read back: one tensor less to stream. A multiply by the 0/1 mask
// rather than a select: GCC vectorises the loops around it.
template <bool kClamped>
inline float PassedGradient(float dy, float x, float scale, float shift, float clamp_max) {
  if (!kClamped) return dy;
  const float normalized = x * scale + shift;
  return dy * static_cast<float>((normalized > 0.0f) & (normalized < clamp_max));
}

// Per-channel values of the last Forward that Backward reads.
struct SavedStatistics {
  const float* mean;
  const float* inv_std;
  const float* scale;  // gamma * inv_std
  const float* shift;  // beta - mean * scale
};

// s[c] += g and sx[c] += g * x_hat over `rows` rows of dy and x, with g the
// gradient at the normalised output and x_hat = (x - mean) * inv_std recomputed.
template <bool kClamped>
void GradientSumsRange(const float* __restrict dy, const float* __restrict x,
                       const SavedStatistics& saved, int c, float clamp_max,
                       double* __restrict s, double* __restrict sx, int64_t rows) {
  const float* __restrict mean = saved.mean;
  const float* __restrict inv_std = saved.inv_std;
  const float* __restrict scale = saved.scale;
  const float* __restrict shift = saved.shift;
  std::vector<float> block(2 * c, 0.0f);
  float* __restrict bs = block.data();
  float* __restrict bsx = bs + c;
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t i = row * c;
    for (int ch = 0; ch < c; ++ch) {
      const float g =
          PassedGradient<kClamped>(dy[i + ch], x[i + ch], scale[ch], shift[ch], clamp_max);
      bs[ch] += g;
      bsx[ch] += g * ((x[i + ch] - mean[ch]) * inv_std[ch]);
    }
    if (row % kBlockRows == kBlockRows - 1 || row == rows - 1) {
      FlushBlock(bs, s, c);
      FlushBlock(bsx, sx, c);
    }
  }
}

// dx = gamma * inv_std * (g - mean_g - x_hat * mean_g_xhat) over `rows` rows.
template <bool kClamped>
void NormalizeGradientRange(const float* __restrict dy, const float* __restrict x,
                            const SavedStatistics& saved, const float* __restrict mean_g,
                            const float* __restrict mean_g_xhat, int c, float clamp_max,
                            float* __restrict out, int64_t rows) {
  const float* __restrict mean = saved.mean;
  const float* __restrict inv_std = saved.inv_std;
  const float* __restrict scale = saved.scale;
  const float* __restrict shift = saved.shift;
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t i = row * c;
    for (int ch = 0; ch < c; ++ch) {
      const float g =
          PassedGradient<kClamped>(dy[i + ch], x[i + ch], scale[ch], shift[ch], clamp_max);
      const float xhat = (x[i + ch] - mean[ch]) * inv_std[ch];
      out[i + ch] = scale[ch] * (g - mean_g[ch] - xhat * mean_g_xhat[ch]);
    }
  }
}

// Per-channel a and b, and `count` if given, summed over the ranks in one
// collective (synchronised batch norm).
void SumOverRanks(Collectives& ranks, std::vector<double>& a, std::vector<double>& b, double* count,
                  const char* what) {
  std::vector<double> packed(a);
  packed.insert(packed.end(), b.begin(), b.end());
  if (count != nullptr) packed.push_back(*count);
  ranks.Sum(packed.data(), static_cast<int64_t>(packed.size()), what);
  std::copy(packed.begin(), packed.begin() + a.size(), a.begin());
  std::copy(packed.begin() + a.size(), packed.begin() + a.size() + b.size(), b.begin());
  if (count != nullptr) *count = packed.back();
}

}  // namespace

BatchNorm2d::BatchNorm2d(const std::string& name, int channels, ParameterStore& params,
                         float clamp_max)
    : name_(name), channels_(channels), params_(params), clamp_max_(clamp_max) {
  gamma_ = params.Add(name + ".weight", {channels});
  beta_ = params.Add(name + ".bias", {channels});
  running_mean_ = params.Add(name + ".running_mean", {channels}, /*trainable=*/false);
  running_var_ = params.Add(name + ".running_var", {channels}, /*trainable=*/false);
  std::fill(params.value(gamma_), params.value(gamma_) + channels, 1.0f);
  std::fill(params.value(running_var_), params.value(running_var_) + channels, 1.0f);
}

void BatchNorm2d::Forward(const FloatTensor& x, FloatTensor& y, const PassContext& ctx,
                          const ChannelMoments* moments) {
  const int c = channels_;
  const int64_t rows = x.size() / c;
  const float* in = x.ptr();
  float* running_mean = params_.value(running_mean_);
  float* running_var = params_.value(running_var_);
  mean_.resize(c);
  inv_std_.resize(c);
  trained_pass_ = ctx.training;
  const float momentum = ctx.bn_momentum;
  if (ctx.training) {
    std::vector<double> sum, sq;
    if (moments != nullptr) {
      moments->Total(sum, sq);
    } else {
      ChannelSums(in, nullptr, rows, c, partial_, sum, sq);
    }
    sync_ = ctx.sync_batch_norm;
    rows_ = static_cast<double>(rows);
    if (sync_ != nullptr) SumOverRanks(*sync_, sum, sq, &rows_, "batch-norm statistics");
    const double n = rows_;
    for (int ch = 0; ch < c; ++ch) {
      const double mean = sum[ch] / n;
      mean_[ch] = static_cast<float>(mean);
      // Biased variance for normalisation, E[x^2] - E[x]^2 in double.
      const double var = std::max(0.0, sq[ch] / n - mean * mean);
      inv_std_[ch] = static_cast<float>(1.0 / std::sqrt(var + kEps));
      const double unbiased = n > 1 ? var * n / (n - 1) : var;
      running_mean[ch] = (1 - momentum) * running_mean[ch] + momentum * mean_[ch];
      running_var[ch] = static_cast<float>((1 - momentum) * running_var[ch] + momentum * unbiased);
    }
  } else {
    sync_ = nullptr;
    for (int ch = 0; ch < c; ++ch) {
      mean_[ch] = running_mean[ch];
      inv_std_[ch] = 1.0f / std::sqrt(running_var[ch] + kEps);
    }
  }
  // bn(x) = gamma * (x - mean) * inv_std + beta = x * scale + shift.
  const float* gamma = params_.value(gamma_);
  const float* beta = params_.value(beta_);
  scale_.resize(c);
  shift_.resize(c);
  for (int ch = 0; ch < c; ++ch) {
    scale_[ch] = gamma[ch] * inv_std_[ch];
    shift_[ch] = beta[ch] - mean_[ch] * scale_[ch];
  }
  y.Resize(x.shape);
  input_ = &x;
  float* out = y.ptr();
  const float* pscale = scale_.data();
  const float* pshift = shift_.data();
  const float clamp_max = clamp_max_;
  Pool().ParallelFor(rows, [=](int, int64_t begin, int64_t end) {
    NormalizeRange(in, pscale, pshift, c, clamp_max, out, begin, end);
  });
}

// With g = dL/d bn(x) (dy passed through the fused clamp) and
// x_hat = (x - mean) * inv_std, from bn(x) = gamma * x_hat + beta:
//   dgamma = sum g * x_hat,  dbeta = sum g,
//   training: dx = gamma * inv_std * (g - mean(g) - x_hat * mean(g * x_hat))
//             (mean and variance depend on x);
//   eval:     dx = gamma * inv_std * g.
void BatchNorm2d::Backward(const FloatTensor& dy, FloatTensor& dx) {
  BackwardStatistics(dy);
  dx.Resize(dy.shape);
  const float* g = dy.ptr();
  float* out = dx.ptr();
  Pool().ParallelFor(dy.size() / channels_, [=](int, int64_t begin, int64_t end) {
    BackwardRows(g, begin, end, out + begin * channels_);
  });
}

void BatchNorm2d::BackwardStatistics(const FloatTensor& dy) {
  StartGradientSums();
  const float* g = dy.ptr();
  Pool().ParallelFor(dy.size() / channels_, [=](int chunk, int64_t begin, int64_t end) {
    AddGradientSums(chunk, begin, end, g + begin * channels_);
  });
  FinishGradientSums();
}

void BatchNorm2d::StartGradientSums() {
  partial_.assign(static_cast<size_t>(Pool().num_threads()) * 2 * channels_, 0.0);
}

void BatchNorm2d::AddGradientSums(int chunk, int64_t begin, int64_t end, const float* dy_rows) {
  const int c = channels_;
  const SavedStatistics saved{mean_.data(), inv_std_.data(), scale_.data(), shift_.data()};
  double* s = partial_.data() + static_cast<size_t>(chunk) * 2 * c;
  const float* x = input_->ptr() + begin * c;
  if (std::isnan(clamp_max_)) {
    GradientSumsRange<false>(dy_rows, x, saved, c, clamp_max_, s, s + c, end - begin);
  } else {
    GradientSumsRange<true>(dy_rows, x, saved, c, clamp_max_, s, s + c, end - begin);
  }
}

void BatchNorm2d::FinishGradientSums() {
  const int c = channels_;
  const int chunks = static_cast<int>(partial_.size() / (2 * c));
  std::vector<double> dbeta(c, 0.0), dgamma(c, 0.0);
  for (int t = 0; t < chunks; ++t) {
    for (int ch = 0; ch < c; ++ch) {
      dbeta[ch] += partial_[static_cast<size_t>(t) * 2 * c + ch];
      dgamma[ch] += partial_[static_cast<size_t>(t) * 2 * c + c + ch];
    }
  }
  float* gamma_grad = params_.grad(gamma_);
  float* beta_grad = params_.grad(beta_);
  // This rank's share of the parameter gradients: the trainer sums those over
  // the ranks with the rest. dx needs the whole batch's means at once.
  for (int ch = 0; ch < c; ++ch) {
    gamma_grad[ch] += static_cast<float>(dgamma[ch]);
    beta_grad[ch] += static_cast<float>(dbeta[ch]);
  }
  double rows = static_cast<double>(input_->size() / c);
  if (sync_ != nullptr) {
    SumOverRanks(*sync_, dbeta, dgamma, nullptr, "batch-norm gradient sums");
    rows = rows_;  // the whole batch's, from Forward
  }
  mean_g_.resize(c);
  mean_g_xhat_.resize(c);
  for (int ch = 0; ch < c; ++ch) {
    mean_g_[ch] = trained_pass_ ? static_cast<float>(dbeta[ch] / rows) : 0.0f;
    mean_g_xhat_[ch] = trained_pass_ ? static_cast<float>(dgamma[ch] / rows) : 0.0f;
  }
}

void BatchNorm2d::BackwardRows(const float* dy, int64_t begin, int64_t end, float* out) const {
  const int c = channels_;
  const SavedStatistics saved{mean_.data(), inv_std_.data(), scale_.data(), shift_.data()};
  const float* x = input_->ptr() + begin * c;
  dy += begin * c;
  if (std::isnan(clamp_max_)) {
    NormalizeGradientRange<false>(dy, x, saved, mean_g_.data(), mean_g_xhat_.data(), c,
                                  clamp_max_, out, end - begin);
  } else {
    NormalizeGradientRange<true>(dy, x, saved, mean_g_.data(), mean_g_xhat_.data(), c, clamp_max_,
                                 out, end - begin);
  }
}

}  // namespace qforge

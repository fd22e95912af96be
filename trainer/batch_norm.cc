#include "trainer/batch_norm.h"

#include <cmath>

#include "trainer/parallel.h"

namespace qforge {
namespace {

// Per-channel sums of f(row, c) over the rows of an [M, C] matrix, in double:
// per-thread partials reduced in chunk order, so the result is reproducible.
template <typename F>
void ChannelSums(int64_t rows, int channels, std::vector<double>& partial,
                 std::vector<double>& sum, const F& f) {
  const int threads = Pool().num_threads();
  partial.assign(static_cast<size_t>(threads) * channels, 0.0);
  Pool().ParallelFor(rows, [&](int chunk, int64_t begin, int64_t end) {
    double* p = partial.data() + static_cast<size_t>(chunk) * channels;
    for (int64_t m = begin; m < end; ++m) {
      for (int c = 0; c < channels; ++c) p[c] += f(m, c);
    }
  });
  sum.assign(channels, 0.0);
  for (int t = 0; t < threads; ++t) {
    for (int c = 0; c < channels; ++c) sum[c] += partial[static_cast<size_t>(t) * channels + c];
  }
}

}  // namespace

BatchNorm2d::BatchNorm2d(const std::string& name, int channels, ParameterStore& params)
    : name_(name), channels_(channels), params_(params) {
  gamma_ = params.Add(name + ".weight", {channels});
  beta_ = params.Add(name + ".bias", {channels});
  running_mean_ = params.Add(name + ".running_mean", {channels}, /*trainable=*/false);
  running_var_ = params.Add(name + ".running_var", {channels}, /*trainable=*/false);
  std::fill(params.value(gamma_), params.value(gamma_) + channels, 1.0f);
  std::fill(params.value(running_var_), params.value(running_var_) + channels, 1.0f);
}

void BatchNorm2d::Forward(const Tensor& x, Tensor& y, const PassContext& ctx) {
  const int c = channels_;
  const int64_t rows = x.size() / c;
  const float* in = x.ptr();
  float* running_mean = params_.value(running_mean_);
  float* running_var = params_.value(running_var_);
  std::vector<float> mean(c);
  inv_std_.resize(c);
  trained_pass_ = ctx.training;
  if (ctx.training) {
    std::vector<double> sum, sq;
    ChannelSums(rows, c, partial_, sum, [&](int64_t m, int ch) { return in[m * c + ch]; });
    for (int ch = 0; ch < c; ++ch) mean[ch] = static_cast<float>(sum[ch] / rows);
    ChannelSums(rows, c, partial_, sq, [&](int64_t m, int ch) {
      const double d = in[m * c + ch] - mean[ch];
      return d * d;
    });
    for (int ch = 0; ch < c; ++ch) {
      const double var = sq[ch] / rows;  // biased, for normalisation
      inv_std_[ch] = static_cast<float>(1.0 / std::sqrt(var + kEps));
      const double unbiased = rows > 1 ? sq[ch] / (rows - 1) : var;
      running_mean[ch] = (1 - kMomentum) * running_mean[ch] + kMomentum * mean[ch];
      running_var[ch] =
          static_cast<float>((1 - kMomentum) * running_var[ch] + kMomentum * unbiased);
    }
  } else {
    for (int ch = 0; ch < c; ++ch) {
      mean[ch] = running_mean[ch];
      inv_std_[ch] = 1.0f / std::sqrt(running_var[ch] + kEps);
    }
  }
  y.Resize(x.shape);
  normalized_.Resize(x.shape);
  const float* gamma = params_.value(gamma_);
  const float* beta = params_.value(beta_);
  float* out = y.ptr();
  float* xhat = normalized_.ptr();
  Pool().ParallelFor(rows, [&](int, int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      for (int ch = 0; ch < c; ++ch) {
        const float h = (in[m * c + ch] - mean[ch]) * inv_std_[ch];
        xhat[m * c + ch] = h;
        out[m * c + ch] = gamma[ch] * h + beta[ch];
      }
    }
  });
}

// From y = gamma * x_hat + beta with x_hat = (x - mean) * inv_std:
//   dgamma = sum dy * x_hat,  dbeta = sum dy,
//   training: dx = gamma * inv_std / M * (M * dy - dbeta - x_hat * dgamma)
//             (mean and variance depend on x);
//   eval:     dx = gamma * inv_std * dy.
void BatchNorm2d::Backward(const Tensor& dy, Tensor& dx) {
  const int c = channels_;
  const int64_t rows = dy.size() / c;
  const float* g = dy.ptr();
  const float* xhat = normalized_.ptr();
  std::vector<double> dbeta, dgamma;
  ChannelSums(rows, c, partial_, dbeta, [&](int64_t m, int ch) { return g[m * c + ch]; });
  ChannelSums(rows, c, partial_, dgamma,
              [&](int64_t m, int ch) { return double{g[m * c + ch]} * xhat[m * c + ch]; });
  float* gamma_grad = params_.grad(gamma_);
  float* beta_grad = params_.grad(beta_);
  for (int ch = 0; ch < c; ++ch) {
    gamma_grad[ch] += static_cast<float>(dgamma[ch]);
    beta_grad[ch] += static_cast<float>(dbeta[ch]);
  }
  const float* gamma = params_.value(gamma_);
  dx.Resize(dy.shape);
  float* out = dx.ptr();
  std::vector<float> scale(c), mean_dy(c), mean_dy_xhat(c);
  for (int ch = 0; ch < c; ++ch) {
    scale[ch] = gamma[ch] * inv_std_[ch];
    mean_dy[ch] = trained_pass_ ? static_cast<float>(dbeta[ch] / rows) : 0.0f;
    mean_dy_xhat[ch] = trained_pass_ ? static_cast<float>(dgamma[ch] / rows) : 0.0f;
  }
  Pool().ParallelFor(rows, [&](int, int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      for (int ch = 0; ch < c; ++ch) {
        const int64_t i = m * c + ch;
        out[i] = scale[ch] * (g[i] - mean_dy[ch] - xhat[i] * mean_dy_xhat[ch]);
      }
    }
  });
}

}  // namespace qforge

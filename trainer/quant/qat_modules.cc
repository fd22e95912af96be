#include "trainer/quant/qat_modules.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/batch_norm_folding.h"
#include "trainer/nn/parallel.h"

namespace qforge {
namespace {

Conv2dOptions WithoutBias(Conv2dOptions options) {
  options.bias = false;
  return options;
}

int64_t OutputChannels(const ParameterStore& params, int weight_id) {
  return params.info(weight_id).shape[0];
}

std::string WeightFakeQuantName(const std::string& layer) {
  return layer + ".weight_fake_quant";
}

std::string OutputFakeQuantName(const std::string& layer) {
  return layer + ".activation_post_process";
}

// grad[i] += add[i].
void Accumulate(const float* add, int64_t count, float* grad) {
  for (int64_t i = 0; i < count; ++i) grad[i] += add[i];
}

}  // namespace

QatConvBn::QatConvBn(Conv2d& conv, BatchNorm2d& bn, ParameterStore& params,
                     ParameterStore& state)
    : conv_(conv),
      bn_(bn),
      params_(params),
      qconv_(conv.name(), WithoutBias(conv.options()), shadow_),
      weight_fq_(WeightFakeQuantName(conv.name()), conv.options().out_channels, state),
      output_fq_(OutputFakeQuantName(conv.name()), state) {}

const FloatTensor& QatConvBn::Forward(const FloatTensor& x, const PassContext& ctx) {
  const int64_t out = conv_.options().out_channels;
  const int64_t count = params_.info(conv_.weight_id()).size, per_out = count / out;
  const float* w = params_.value(conv_.weight_id());
  const float* gamma = params_.value(bn_.weight_id());
  const float* running_var = params_.value(bn_.running_var_id());
  scale_.resize(out);
  std_.resize(out);
  scaled_.resize(count);
  for (int64_t o = 0; o < out; ++o) {
    std_[o] = BatchNormStd(running_var[o], BatchNorm2d::kEps);
    scale_[o] = BatchNormScale(gamma[o], running_var[o], BatchNorm2d::kEps);
    for (int64_t i = 0; i < per_out; ++i) scaled_[o * per_out + i] = w[o * per_out + i] * scale_[o];
  }
  weight_fq_.Forward(scaled_.data(), count, shadow_.value(qconv_.weight_id()));
  qconv_.Forward(x, conv_out_);
  // z = conv / s (+ b): the conv's output as the float model computes it.
  z_.Resize(conv_out_.shape);
  const float* bias = conv_.bias_id() >= 0 ? params_.value(conv_.bias_id()) : nullptr;
  const float* conv_out = conv_out_.ptr();
  const float* scale = scale_.data();
  float* z = z_.ptr();
  Pool().ParallelFor(conv_out_.size() / out, [=](int, int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      for (int64_t c = 0; c < out; ++c) {
        const int64_t i = row * out + c;
        z[i] = conv_out[i] / scale[c] + (bias ? bias[c] : 0.0f);
      }
    }
  });
  PassContext bn_ctx = ctx;
  bn_ctx.training = ctx.training && !freeze_bn_;
  bn_.Forward(z_, bn_out_, bn_ctx);
  output_fq_.Forward(bn_out_, out_);
  return out_;
}

// Backward of Forward's lines, last first.
void QatConvBn::Backward(const FloatTensor& dy, FloatTensor* dx) {
  const int64_t out = conv_.options().out_channels;
  const int64_t count = params_.info(conv_.weight_id()).size, per_out = count / out;
  // y = fake_quant(act(bn(z))): the straight-through mask, then BN (and its
  // clamp) backward, which also accumulates dgamma and dbeta.
  output_fq_.Backward(dy, d_bn_out_);
  bn_.Backward(d_bn_out_, dz_);
  // z = conv / s + b: dconv = dz / s; db += dz; ds gets -dz * conv / s^2.
  std::vector<double> d_scale(out, 0.0), d_bias(out, 0.0);
  ChannelTerms(out, d_scale, d_bias);
  if (conv_.bias_id() >= 0) {
    float* db = params_.grad(conv_.bias_id());
    for (int64_t o = 0; o < out; ++o) db[o] += static_cast<float>(d_bias[o]);
  }
  // conv(x, w_q): dx, and dw_q into the shadow store.
  shadow_.ZeroGrads();
  qconv_.Backward(d_conv_, dx);
  // w_q = fake_quant(w * s): straight through, then dw += d(w s) * s and
  // ds += d(w s) * w.
  d_scaled_.resize(count);
  weight_fq_.Backward(shadow_.grad(qconv_.weight_id()), count, d_scaled_.data());
  const float* w = params_.value(conv_.weight_id());
  float* dw = params_.grad(conv_.weight_id());
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < per_out; ++i) {
      const int64_t k = o * per_out + i;
      dw[k] += d_scaled_[k] * scale_[o];
      d_scale[o] += static_cast<double>(d_scaled_[k]) * w[k];
    }
  }
  // s = gamma / std (std from the running variance, a constant): dgamma += ds / std.
  float* d_gamma = params_.grad(bn_.weight_id());
  for (int64_t o = 0; o < out; ++o) d_gamma[o] += static_cast<float>(d_scale[o] / std_[o]);
}

// d_conv_ = dz_ / s, and per channel the sums of -dz * conv / s^2 (into
// d_scale) and of dz (into d_bias), over rows split across the pool. Each
// chunk sums into its own slice and the slices are added in chunk order, so
// the result does not depend on timing.
void QatConvBn::ChannelTerms(int64_t out, std::vector<double>& d_scale,
                             std::vector<double>& d_bias) {
  const int chunks = Pool().num_threads();
  partial_.assign(static_cast<size_t>(chunks) * 2 * out, 0.0);
  d_conv_.Resize(dz_.shape);
  const float* dz = dz_.ptr();
  const float* conv_out = conv_out_.ptr();
  const float* scale = scale_.data();
  float* d_conv = d_conv_.ptr();
  double* partial = partial_.data();
  Pool().ParallelFor(dz_.size() / out, [=](int chunk, int64_t begin, int64_t end) {
    double* ds = partial + chunk * 2 * out;
    double* db = ds + out;
    for (int64_t row = begin; row < end; ++row) {
      for (int64_t c = 0; c < out; ++c) {
        const int64_t i = row * out + c;
        d_conv[i] = dz[i] / scale[c];
        ds[c] -= static_cast<double>(dz[i]) * conv_out[i] / (double{scale[c]} * scale[c]);
        db[c] += dz[i];
      }
    }
  });
  for (int chunk = 0; chunk < chunks; ++chunk) {
    for (int64_t c = 0; c < out; ++c) {
      d_scale[c] += partial_[chunk * 2 * out + c];
      d_bias[c] += partial_[chunk * 2 * out + out + c];
    }
  }
}

QatConvAct::QatConvAct(Conv2d& conv, float clamp_max, ParameterStore& params,
                       ParameterStore& state)
    : conv_(conv),
      params_(params),
      qconv_(conv.name(), conv.options(), shadow_),
      act_(conv.name() + ".act", clamp_max),
      weight_fq_(WeightFakeQuantName(conv.name()), conv.options().out_channels, state),
      output_fq_(OutputFakeQuantName(conv.name()), state) {}

const FloatTensor& QatConvAct::Forward(const FloatTensor& x) {
  const int64_t count = params_.info(conv_.weight_id()).size;
  weight_fq_.Forward(params_.value(conv_.weight_id()), count, shadow_.value(qconv_.weight_id()));
  std::memcpy(shadow_.value(qconv_.bias_id()), params_.value(conv_.bias_id()),
              conv_.options().out_channels * sizeof(float));
  qconv_.Forward(x, conv_out_);
  act_.Forward(conv_out_, act_out_);
  output_fq_.Forward(act_out_, out_);
  return out_;
}

void QatConvAct::Backward(const FloatTensor& dy, FloatTensor* dx) {
  const int64_t count = params_.info(conv_.weight_id()).size;
  output_fq_.Backward(dy, d_act_out_);
  act_.Backward(d_act_out_, d_conv_);
  shadow_.ZeroGrads();
  qconv_.Backward(d_conv_, dx);
  d_weight_.resize(count);
  weight_fq_.Backward(shadow_.grad(qconv_.weight_id()), count, d_weight_.data());
  Accumulate(d_weight_.data(), count, params_.grad(conv_.weight_id()));
  Accumulate(shadow_.grad(qconv_.bias_id()), conv_.options().out_channels,
             params_.grad(conv_.bias_id()));
}

QatLinear::QatLinear(const Linear& linear, ParameterStore& params, ParameterStore& state)
    : linear_(linear),
      params_(params),
      qlinear_(linear.name(), static_cast<int>(params.info(linear.weight_id()).shape[1]),
               static_cast<int>(params.info(linear.weight_id()).shape[0]), shadow_),
      weight_fq_(WeightFakeQuantName(linear.name()), OutputChannels(params, linear.weight_id()),
                 state),
      output_fq_(OutputFakeQuantName(linear.name()), state) {}

const FloatTensor& QatLinear::Forward(const FloatTensor& x) {
  const int64_t count = params_.info(linear_.weight_id()).size;
  weight_fq_.Forward(params_.value(linear_.weight_id()), count,
                     shadow_.value(qlinear_.weight_id()));
  std::memcpy(shadow_.value(qlinear_.bias_id()), params_.value(linear_.bias_id()),
              params_.info(linear_.bias_id()).size * sizeof(float));
  qlinear_.Forward(x, y_);
  output_fq_.Forward(y_, out_);
  return out_;
}

void QatLinear::Backward(const FloatTensor& dy, FloatTensor* dx) {
  const int64_t count = params_.info(linear_.weight_id()).size;
  output_fq_.Backward(dy, d_y_);
  shadow_.ZeroGrads();
  qlinear_.Backward(d_y_, dx);
  d_weight_.resize(count);
  weight_fq_.Backward(shadow_.grad(qlinear_.weight_id()), count, d_weight_.data());
  Accumulate(d_weight_.data(), count, params_.grad(linear_.weight_id()));
  Accumulate(shadow_.grad(qlinear_.bias_id()), params_.info(linear_.bias_id()).size,
             params_.grad(linear_.bias_id()));
}

const FloatTensor& QatAdd::Forward(const FloatTensor& a, const FloatTensor& b) {
  sum_.Resize(a.shape);
  for (int64_t i = 0; i < a.size(); ++i) sum_.data[i] = a.data[i] + b.data[i];
  output_fq_.Forward(sum_, out_);
  return out_;
}

}  // namespace qforge

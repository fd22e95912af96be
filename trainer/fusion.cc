#include "trainer/fusion.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace qforge {

void FoldBatchNorm(const float* gamma, const float* beta, const float* running_mean,
                   const float* running_var, float eps, int64_t out_channels,
                   int64_t per_output, float* weight, float* bias) {
  for (int64_t o = 0; o < out_channels; ++o) {
    const float scale = gamma[o] / std::sqrt(running_var[o] + eps);
    for (int64_t i = 0; i < per_output; ++i) weight[o * per_output + i] *= scale;
    bias[o] = (bias[o] - running_mean[o]) * scale + beta[o];
  }
}

namespace {

Conv2dOptions WithBias(Conv2dOptions options) {
  options.bias = true;
  return options;
}


}  // namespace

FusedConv::FusedConv(const Conv2d& source_conv, const BatchNorm2d& bn,
                     const ParameterStore& source, ParameterStore& params)
    : conv(source_conv.name(), WithBias(source_conv.options()), params),
      clamp_max(bn.clamp_max()) {
  const ParamInfo& w = source.info(source_conv.weight_id());
  float* weight = params.value(conv.weight_id());
  float* bias = params.value(conv.bias_id());
  std::memcpy(weight, source.value(source_conv.weight_id()), w.size * sizeof(float));
  const int64_t out = w.shape[0];
  if (source_conv.bias_id() >= 0) {
    std::memcpy(bias, source.value(source_conv.bias_id()), out * sizeof(float));
  } else {
    std::fill(bias, bias + out, 0.0f);
  }
  FoldBatchNorm(source.value(bn.weight_id()), source.value(bn.bias_id()),
                source.value(bn.running_mean_id()), source.value(bn.running_var_id()),
                BatchNorm2d::kEps, out, w.size / out, weight, bias);
}

FloatTensor& FusedConv::Forward(const FloatTensor& x) {
  conv.Forward(x, conv_out);
  if (std::isnan(clamp_max)) return conv_out;
  out.Resize(conv_out.shape);
  for (int64_t i = 0; i < conv_out.size(); ++i) {
    out.data[i] = std::min(std::max(conv_out.data[i], 0.0f), clamp_max);
  }
  return out;
}

FusedMobileNetV2::FusedMobileNetV2(MobileNetV2Model& model, const ParameterStore& source)
    : pool_("pool"),
      classifier_("classifier.1", model.layers().last_channel, model.layers().num_classes,
                  params_) {
  for (size_t b = 0; b < model.features().size(); ++b) {
    Block block;
    block.name = model.layers().features[b].name;
    for (auto& layer : model.features()[b].layers) {
      block.convs.push_back(std::make_unique<FusedConv>(layer->conv, layer->bn, source, params_));
    }
    block.residual = model.layers().features[b].residual;
    blocks_.push_back(std::move(block));
  }
  const Linear& fc = model.classifier();
  std::memcpy(params_.value(classifier_.weight_id()), source.value(fc.weight_id()),
              source.info(fc.weight_id()).size * sizeof(float));
  std::memcpy(params_.value(classifier_.bias_id()), source.value(fc.bias_id()),
              source.info(fc.bias_id()).size * sizeof(float));
}

std::vector<std::string> FusedMobileNetV2::LayerNames() const {
  std::vector<std::string> names = {"quant"};
  for (const Block& block : blocks_) {
    for (const auto& conv : block.convs) names.push_back(conv->conv.name());
    if (block.residual) names.push_back(block.name + ".skip_add");
  }
  names.push_back("pool");
  names.push_back(classifier_.name());
  return names;
}

const FloatTensor& FusedMobileNetV2::Forward(const FloatTensor& x) {
  input_ = x;  // a copy the observer may rewrite
  Observe("quant", input_);
  FloatTensor* h = &input_;
  for (Block& block : blocks_) {
    const FloatTensor* block_in = h;
    for (auto& conv : block.convs) {
      h = &conv->Forward(*h);
      Observe(conv->conv.name(), *h);
    }
    if (block.residual) {
      block.sum.Resize(h->shape);
      for (int64_t i = 0; i < h->size(); ++i) block.sum.data[i] = block_in->data[i] + h->data[i];
      h = &block.sum;
      Observe(block.name + ".skip_add", *h);
    }
  }
  pool_.Forward(*h, pooled_);
  Observe("pool", pooled_);
  classifier_.Forward(pooled_, logits_);
  Observe(classifier_.name(), logits_);
  return logits_;
}

}  // namespace qforge

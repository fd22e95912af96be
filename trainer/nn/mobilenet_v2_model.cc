#include "trainer/nn/mobilenet_v2_model.h"

#include <cmath>

#include "common/random.h"
#include "trainer/nn/step_profile.h"

namespace qforge {
namespace {

// The module after `name`, e.g. the batch norm after a conv: "a.b.0" -> "a.b.1" (ConvBNReLU), and
// "features.i.conv.K" -> "features.i.conv.K+1" (the projection), as PyTorch
// numbers the modules of the tutorial's MobileNetV2; applied to a BN's name, it
// gives the activation's.
std::string NextModuleName(const std::string& conv_name) {
  const size_t dot = conv_name.rfind('.');
  const int index = std::stoi(conv_name.substr(dot + 1));
  return conv_name.substr(0, dot + 1) + std::to_string(index + 1);
}

// The conv's kind in a step profile.
const char* ConvKind(const Conv2dOptions& o) {
  if (o.groups == o.in_channels && o.groups > 1) return "depthwise conv";
  return o.kernel == 1 ? "1x1 conv" : "first conv (im2col)";
}

}  // namespace

ConvBnAct::ConvBnAct(const ConvLayer& layer, bool relu6, ParameterStore& params)
    : conv(layer.name,
           {layer.in_channels, layer.out_channels, layer.kernel, layer.stride,
            (layer.kernel - 1) / 2, layer.groups, /*bias=*/false},
           params),
      bn(NextModuleName(layer.name), layer.out_channels, params,
         /*clamp_max=*/!layer.activation ? NAN : relu6 ? 6.0f : INFINITY) {}

// In training, the conv sums its outputs' batch statistics as it writes them,
// sparing the batch norm a pass over them.
const FloatTensor& ConvBnAct::Forward(const FloatTensor& x, const PassContext& ctx) {
  ChannelMoments* batch_moments = ctx.training ? &moments : nullptr;
  {
    ProfileScope scope("forward", ConvKind(conv.options()));
    conv.Forward(x, conv_out, batch_moments);
  }
  ProfileScope scope("forward", "batch norm + activation");
  bn.Forward(conv_out, bn_out, ctx, batch_moments);
  return bn_out;
}

// The batch norm's dx is the conv's dy, computed block by block as the conv's
// backward asks for it, and the batch norm's sums over dy were taken, when
// dy_observed, as the next layer wrote dy; their time counts as the convs'.
void ConvBnAct::Backward(const FloatTensor& dy, FloatTensor* dx, bool dy_observed,
                         RowsObserver* dx_observer, bool accumulate_dx) {
  {
    ProfileScope scope("backward", "batch norm + activation");
    if (dy_observed) {
      bn.FinishGradientSums();
    } else {
      bn.BackwardStatistics(dy);
    }
  }
  ProfileScope scope("backward", ConvKind(conv.options()));
  conv.Backward(BatchNormInputGradient(bn, dy), dx, dx_observer, accumulate_dx);
}

RowsObserver* ConvBnAct::GradientSums() {
  bn.StartGradientSums();
  return &bn_sums;
}

void ConvBnAct::GradientsFinal(GradientListener* listener) const {
  ReportGradientsFinal(listener, {conv.weight_id(), conv.bias_id(), bn.weight_id(), bn.bias_id()});
}

MobileNetV2Model::MobileNetV2Model(const MobileNetV2Config& config, bool relu6,
                                   ParameterStore& params, float dropout)
    : layers_(BuildMobileNetV2Layers(config)),
      params_(params),
      quant_("quant"),
      pool_("pool"),
      dropout_("classifier.0", dropout),
      classifier_("classifier.1", layers_.last_channel, layers_.num_classes, params),
      dequant_("dequant") {
  for (const FeatureBlock& block : layers_.features) {
    FeatureBlockLayers f;
    for (const ConvLayer& conv : block.convs) {
      f.layers.push_back(std::make_unique<ConvBnAct>(conv, relu6, params));
    }
    if (block.residual) f.skip_add = std::make_unique<Add>(block.name + ".skip_add");
    features_.push_back(std::move(f));
  }
}

std::vector<Module> MobileNetV2Model::Modules() const {
  std::vector<Module> modules;
  for (const FeatureBlockLayers& f : features_) {
    for (const auto& layer : f.layers) {
      modules.push_back({layer->conv.name(), Module::kConv2d, &layer->conv});
      modules.push_back({layer->bn.name(), Module::kBatchNorm2d, nullptr, &layer->bn});
      if (layer->bn.fused_activation()) {
        modules.push_back({NextModuleName(layer->bn.name()),
                           std::isinf(layer->bn.clamp_max()) ? Module::kReLU : Module::kReLU6});
      }
    }
  }
  modules.push_back({classifier_.name(), Module::kLinear, nullptr, nullptr, &classifier_});
  return modules;
}

void MobileNetV2Model::Initialize(uint64_t seed) {
  SplitMix64 rng(DeriveSeed({seed, 0x696e6974}));
  for (FeatureBlockLayers& f : features_) {
    for (auto& layer : f.layers) {
      const ParamInfo& w = params_.info(layer->conv.weight_id());
      const double fan_out = double(w.shape[0]) * w.shape[1] * w.shape[2];
      const float std_dev = static_cast<float>(std::sqrt(2.0 / fan_out));
      float* v = params_.value(layer->conv.weight_id());
      for (int64_t i = 0; i < w.size; ++i) v[i] = std_dev * rng.Normal();
    }
  }
  const ParamInfo& w = params_.info(classifier_.weight_id());
  float* v = params_.value(classifier_.weight_id());
  for (int64_t i = 0; i < w.size; ++i) v[i] = 0.01f * rng.Normal();
  // BN weights are 1 and all biases 0 from construction.
}

// The tutorial's QuantizableMobileNetV2.forward: quant, features, mean over H
// and W, classifier (dropout, linear), dequant.
const FloatTensor& MobileNetV2Model::Forward(const FloatTensor& x, const PassContext& ctx) {
  const FloatTensor* h = &quant_.Forward(x);
  for (FeatureBlockLayers& f : features_) {
    const FloatTensor* block_in = h;
    for (auto& layer : f.layers) h = &layer->Forward(*h, ctx);
    if (f.skip_add != nullptr) {
      ProfileScope scope("forward", "residual add");
      f.skip_add->Forward(*block_in, *h, f.sum);
      h = &f.sum;
    }
  }
  ProfileScope scope("forward", "pool + classifier");
  pool_.Forward(*h, pooled_);
  dropout_.Forward(pooled_, dropped_, ctx);
  classifier_.Forward(dropped_, logits_);
  return dequant_.Forward(logits_);
}

void MobileNetV2Model::Backward(const FloatTensor& dlogits, GradientListener* listener) {
  {
    ProfileScope scope("backward", "pool + classifier");
    classifier_.Backward(dequant_.Backward(dlogits), &d_dropped_);
    ReportGradientsFinal(listener, {classifier_.weight_id(), classifier_.bias_id()});
    dropout_.Backward(d_dropped_, d_pooled_);
    pool_.Backward(d_pooled_, d_features_);
  }
  // d_features_ holds the gradient of the current block's output; each block
  // turns it into the gradient of its input, through d_block_. Each layer's
  // dx is handed, as it is written, to the batch norm of the layer before
  // (the previous block's last layer for a block's first), which takes its
  // backward sums from it.
  bool observed = false;  // whether the current dy went to its layer's sums
  for (size_t b = features_.size(); b-- > 0;) {
    FeatureBlockLayers& f = features_[b];
    // y = x + F(x): dL/dx = dL/dy + dL/dx through F. d_skip_ keeps dL/dy, the
    // input of F's last layer, and F's first layer adds its dx to it.
    const bool residual = f.skip_add != nullptr;
    if (residual) std::swap(d_skip_, d_features_);
    const FloatTensor* dy = residual ? &d_skip_ : &d_features_;
    for (size_t l = f.layers.size(); l-- > 0;) {
      ConvBnAct& layer = *f.layers[l];
      const bool network_input = b == 0 && l == 0;
      // An inverted residual has a depthwise and a projection conv at least
      // (common/mobilenet_v2.cc), so the first layer's dy is never d_skip_.
      const bool add_to_skip = residual && l == 0;
      FloatTensor* dx = network_input ? nullptr : add_to_skip ? &d_skip_ : &d_block_;
      ConvBnAct* before = network_input ? nullptr
                          : l > 0       ? f.layers[l - 1].get()
                                        : features_[b - 1].layers.back().get();
      RowsObserver* dx_observer = before != nullptr ? before->GradientSums() : nullptr;
      layer.Backward(*dy, dx, observed, dx_observer, add_to_skip);
      layer.GradientsFinal(listener);
      observed = dx_observer != nullptr;
      if (network_input) break;
      std::swap(d_features_, *dx);
      dy = &d_features_;
    }
  }
}

}  // namespace qforge

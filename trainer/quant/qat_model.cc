#include "trainer/quant/qat_model.h"

#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"

namespace qforge {

QatMobileNetV2::QatMobileNetV2(MobileNetV2Model& model, ParameterStore& params, float dropout)
    : quant_fq_("quant.activation_post_process", state_),
      pool_("pool"),
      pool_fq_("pool.activation_post_process", state_),
      dropout_("classifier.0", dropout),
      classifier_(model.classifier(), params, state_) {
  outputs_["quant"] = &quant_fq_;
  for (size_t b = 0; b < model.features().size(); ++b) {
    FeatureBlockLayers& f = model.features()[b];
    Block block;
    for (auto& layer : f.layers) {
      block.layers.push_back(std::make_unique<QatConvBn>(layer->conv, layer->bn, params, state_));
      QatConvBn& qat = *block.layers.back();
      outputs_[layer->conv.name()] = &qat.output_fake_quant();
      weights_[layer->conv.name()] = &qat.weight_fake_quant();
    }
    if (f.skip_add != nullptr) {
      const std::string name = model.layers().features[b].name + ".skip_add";
      block.skip_add = std::make_unique<QatAdd>(name, state_);
      outputs_[name] = &block.skip_add->output_fake_quant();
    }
    blocks_.push_back(std::move(block));
  }
  outputs_["pool"] = &pool_fq_;
  outputs_[model.classifier().name()] = &classifier_.output_fake_quant();
  weights_[model.classifier().name()] = &classifier_.weight_fake_quant();
}

// The tutorial's QuantizableMobileNetV2.forward, with its QAT modules.
const FloatTensor& QatMobileNetV2::Forward(const FloatTensor& x, const PassContext& ctx) {
  quant_fq_.Forward(x, input_q_);
  const FloatTensor* h = &input_q_;
  for (Block& block : blocks_) {
    const FloatTensor* block_in = h;
    for (auto& layer : block.layers) h = &layer->Forward(*h, ctx);
    if (block.skip_add != nullptr) h = &block.skip_add->Forward(*block_in, *h);
  }
  pool_.Forward(*h, pooled_);
  pool_fq_.Forward(pooled_, pooled_q_);
  dropout_.Forward(pooled_q_, dropped_, ctx);
  return classifier_.Forward(dropped_);
}

// MobileNetV2Model::Backward, through the fake quantizers' straight-through
// gradients.
void QatMobileNetV2::Backward(const FloatTensor& dlogits, GradientListener* listener) {
  classifier_.Backward(dlogits, &d_dropped_);
  classifier_.GradientsFinal(listener);
  dropout_.Backward(d_dropped_, d_pooled_q_);
  pool_fq_.Backward(d_pooled_q_, d_pooled_);
  pool_.Backward(d_pooled_, d_features_);
  for (size_t b = blocks_.size(); b-- > 0;) {
    Block& block = blocks_[b];
    if (block.skip_add != nullptr) {
      // y = fake_quant(x + F(x)): both paths take the masked gradient.
      block.skip_add->Backward(d_features_, d_block_);
      std::swap(d_features_, d_block_);
      d_skip_ = d_features_;
    }
    for (size_t l = block.layers.size(); l-- > 0;) {
      const bool network_input = b == 0 && l == 0;  // nothing trainable before it
      block.layers[l]->Backward(d_features_, network_input ? nullptr : &d_block_);
      block.layers[l]->GradientsFinal(listener);
      if (!network_input) std::swap(d_features_, d_block_);
    }
    if (block.skip_add != nullptr) {
      for (int64_t i = 0; i < d_features_.size(); ++i) d_features_.data[i] += d_skip_.data[i];
    }
  }
}

void QatMobileNetV2::set_activation_observers_enabled(bool on) {
  for (auto& [point, fake_quant] : outputs_) fake_quant->set_observer_enabled(on);
}

void QatMobileNetV2::set_ranks(Collectives* ranks) {
  for (auto& [point, fake_quant] : outputs_) fake_quant->set_ranks(ranks);
}

void QatMobileNetV2::set_range_learning(bool on) {
  for (auto& [point, fake_quant] : outputs_) fake_quant->set_range_learning(on);
}

void QatMobileNetV2::StepRanges(float lr, Collectives* ranks) {
  if (ranks != nullptr) SumRangeGradients(*ranks);
  for (auto& [point, fake_quant] : outputs_) fake_quant->StepRange(lr);
}

// Each rank's gradient scale is 1 / sqrt(its shard's values * 127), sqrt(ranks)
// times one process's for the whole batch: the sum takes that back out (exact
// for shards of equal size).
void QatMobileNetV2::SumRangeGradients(Collectives& ranks) {
  std::vector<double> gradients;
  for (auto& [point, fake_quant] : outputs_) {
    gradients.insert(gradients.end(), fake_quant->range_gradient(),
                     fake_quant->range_gradient() + 2);
  }
  ranks.Sum(gradients.data(), static_cast<int64_t>(gradients.size()),
            "the activation ranges' gradients");
  const double shard_scale = 1 / std::sqrt(static_cast<double>(ranks.size()));
  size_t at = 0;
  for (auto& [point, fake_quant] : outputs_) {
    for (int i = 0; i < 2; ++i) fake_quant->range_gradient()[i] = gradients[at++] * shard_scale;
  }
}

void QatMobileNetV2::set_weight_observers_enabled(bool on) {
  for (auto& [layer, fake_quant] : weights_) fake_quant->set_observer_enabled(on);
}

absl::Status QatMobileNetV2::SetActivationRanges(const RangeSource& ranges) {
  for (auto& [point, fake_quant] : outputs_) {
    absl::StatusOr<Range> range = ranges.ActivationRange(point);
    if (!range.ok()) return range.status();
    fake_quant->SetRange(*range);
  }
  return absl::OkStatus();
}

void QatMobileNetV2::set_freeze_bn(bool on) {
  for (Block& block : blocks_) {
    for (auto& layer : block.layers) layer->set_freeze_bn(on);
  }
}

absl::StatusOr<Range> QatMobileNetV2::ActivationRange(const std::string& point) const {
  auto it = outputs_.find(point);
  if (it == outputs_.end()) {
    return absl::NotFoundError(absl::StrCat("the QAT model has no fake quantizer at ", point));
  }
  return it->second->ObservedRange();
}

std::optional<absl::StatusOr<std::vector<Range>>> QatMobileNetV2::WeightRanges(
    const std::string& layer) const {
  auto it = weights_.find(layer);
  if (it == weights_.end()) {
    return absl::NotFoundError(absl::StrCat("the QAT model has no weight fake quantizer at ", layer));
  }
  return it->second->ObservedRanges();
}

}  // namespace qforge

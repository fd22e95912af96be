#include "trainer/quant/fusion.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/batch_norm_folding.h"

namespace qforge {

namespace {

Conv2dOptions WithBias(Conv2dOptions options) {
  options.bias = true;
  return options;
}

// The model's own groups failed to fuse: a bug in qforge, not bad input.
[[noreturn]] void Bug(const absl::Status& status) {
  std::fprintf(stderr, "qforge: internal error fusing MobileNetV2: %s\n",
               std::string(status.message()).c_str());
  std::abort();
}

absl::Status NotFusable(const std::vector<std::string>& group, const std::string& why) {
  return absl::InvalidArgumentError(
      absl::StrCat("cannot fuse [", absl::StrJoin(group, ", "), "]: ", why,
                   " (fusable: conv+bn, conv+bn+relu, conv+bn+relu6, conv+relu, conv+relu6, "
                   "linear+relu)"));
}

// The weight and bias (zeros when it has none) of a conv or linear.
void CopyWeights(const ParameterStore& source, int weight_id, int bias_id, FusedLayer& layer) {
  const ParamInfo& w = source.info(weight_id);
  layer.weight_shape = w.shape;
  layer.weight.assign(source.value(weight_id), source.value(weight_id) + w.size);
  if (bias_id >= 0) {
    layer.bias.assign(source.value(bias_id), source.value(bias_id) + w.shape[0]);
  } else {
    layer.bias.assign(w.shape[0], 0.0f);
  }
}

}  // namespace

absl::StatusOr<FusedLayer> FuseModules(const std::vector<Module>& modules,
                                       const ParameterStore& source,
                                       const std::vector<std::string>& group) {
  std::vector<const Module*> m;
  for (const std::string& name : group) {
    m.push_back(FindModule(modules, name));
    if (m.back() == nullptr) return NotFusable(group, absl::StrCat("no module '", name, "'"));
  }
  if (m.empty()) return NotFusable(group, "the group is empty");
  FusedLayer layer;
  layer.name = m[0]->name;
  size_t next = 1;
  if (m[0]->kind == Module::kConv2d) {
    layer.conv = m[0]->conv;
    CopyWeights(source, layer.conv->weight_id(), layer.conv->bias_id(), layer);
    if (next < m.size() && m[next]->kind == Module::kBatchNorm2d) {
      const BatchNorm2d& bn = *m[next++]->bn;
      if (source.info(bn.weight_id()).size != layer.weight_shape[0]) {
        return NotFusable(group, "the batch norm's channels are not the conv's outputs");
      }
      const BatchNormStatistics statistics{
          source.value(bn.weight_id()), source.value(bn.bias_id()),
          source.value(bn.running_mean_id()), source.value(bn.running_var_id()), BatchNorm2d::kEps};
      FoldBatchNorm(statistics, layer.weight_shape[0],
                    static_cast<int64_t>(layer.weight.size()) / layer.weight_shape[0],
                    layer.weight.data(), layer.bias.data());
    }
  } else if (m[0]->kind == Module::kLinear) {
    layer.linear = m[0]->linear;
    CopyWeights(source, layer.linear->weight_id(), layer.linear->bias_id(), layer);
  } else {
    return NotFusable(group, "it does not start with a conv or linear");
  }
  if (next < m.size() && (m[next]->kind == Module::kReLU || m[next]->kind == Module::kReLU6)) {
    layer.clamp_max = m[next++]->kind == Module::kReLU ? INFINITY : 6.0f;
  }
  if (next != m.size()) return NotFusable(group, absl::StrCat("'", m[next]->name, "' is out of place"));
  return layer;
}

std::vector<std::vector<std::string>> MobileNetV2FusionGroups(const MobileNetV2Model& model) {
  const std::vector<Module> modules = model.Modules();
  std::vector<std::vector<std::string>> groups;
  for (size_t i = 0; i < modules.size(); ++i) {
    if (modules[i].kind != Module::kConv2d) continue;
    std::vector<std::string> group = {modules[i].name, modules[i + 1].name};  // conv, bn
    if (i + 2 < modules.size() &&
        (modules[i + 2].kind == Module::kReLU || modules[i + 2].kind == Module::kReLU6)) {
      group.push_back(modules[i + 2].name);
    }
    groups.push_back(std::move(group));
  }
  return groups;
}

FusedConv::FusedConv(const FusedLayer& layer, ParameterStore& params)
    : conv(layer.name, WithBias(layer.conv->options()), params), clamp_max(layer.clamp_max) {
  std::copy(layer.weight.begin(), layer.weight.end(), params.value(conv.weight_id()));
  std::copy(layer.bias.begin(), layer.bias.end(), params.value(conv.bias_id()));
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
      classifier_(model.classifier().name(), model.layers().last_channel,
                  model.layers().num_classes, params_) {
  const std::vector<Module> modules = model.Modules();
  const std::vector<std::vector<std::string>> groups = MobileNetV2FusionGroups(model);
  std::vector<FusedLayer> fused;
  for (const std::vector<std::string>& group : groups) {
    absl::StatusOr<FusedLayer> layer = FuseModules(modules, source, group);
    if (!layer.ok()) Bug(layer.status());
    fused.push_back(*std::move(layer));
  }
  // Every conv lives in a group, in order: hand them to the blocks.
  size_t next = 0;
  for (size_t b = 0; b < model.features().size(); ++b) {
    Block block;
    block.name = model.layers().features[b].name;
    for (size_t i = 0; i < model.features()[b].layers.size(); ++i) {
      block.convs.push_back(std::make_unique<FusedConv>(fused[next++], params_));
    }
    block.residual = model.layers().features[b].residual;
    blocks_.push_back(std::move(block));
  }
  absl::StatusOr<FusedLayer> fc = FuseModules(modules, source, {model.classifier().name()});
  if (!fc.ok()) Bug(fc.status());
  std::copy(fc->weight.begin(), fc->weight.end(), params_.value(classifier_.weight_id()));
  std::copy(fc->bias.begin(), fc->bias.end(), params_.value(classifier_.bias_id()));
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

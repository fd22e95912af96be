#include "common/mobilenet_v2.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace qforge {

int MakeDivisible(float v, int divisor, int min_value) {
  if (min_value == 0) min_value = divisor;
  int new_v = std::max(min_value, static_cast<int>(v + divisor / 2.0f) / divisor * divisor);
  if (new_v < 0.9f * v) new_v += divisor;
  return new_v;
}

namespace {

ConvLayer Conv(std::string name, int in, int out, int kernel, int stride, int groups,
               bool activation) {
  return ConvLayer{std::move(name), in, out, kernel, stride, groups, activation};
}

// InvertedResidual(inp, oup, stride, expand_ratio) with the tutorial's module names.
FeatureBlock InvertedResidual(const std::string& name, int inp, int oup, int stride, int t) {
  const int hidden = static_cast<int>(std::lround(inp * static_cast<double>(t)));
  FeatureBlock block{name, {}, stride == 1 && inp == oup};
  int index = 0;
  if (t != 1) {
    block.convs.push_back(Conv(absl::StrCat(name, ".conv.", index++, ".0"), inp, hidden, 1, 1,
                               1, true));
  }
  block.convs.push_back(
      Conv(absl::StrCat(name, ".conv.", index++, ".0"), hidden, hidden, 3, stride, hidden, true));
  block.convs.push_back(Conv(absl::StrCat(name, ".conv.", index), hidden, oup, 1, 1, 1, false));
  return block;
}

}  // namespace

MobileNetV2Layers BuildMobileNetV2Layers(const MobileNetV2Config& config) {
  MobileNetV2Layers layers;
  int input_channel = MakeDivisible(32 * config.width_mult, config.round_nearest);
  layers.last_channel =
      MakeDivisible(1280 * std::max(1.0f, config.width_mult), config.round_nearest);
  layers.num_classes = config.num_classes;
  layers.features.push_back(
      {"features.0",
       {Conv("features.0.0", config.input_channels, input_channel, 3,
             config.small_input ? 1 : 2, 1, true)},
       false});
  for (size_t stage = 0; stage < config.settings.size(); ++stage) {
    const InvertedResidualSetting& s = config.settings[stage];
    const int output_channel = MakeDivisible(s.channels * config.width_mult, config.round_nearest);
    const int stage_stride = (config.small_input && stage == 1) ? 1 : s.stride;
    for (int i = 0; i < s.repeats; ++i) {
      const std::string name = absl::StrCat("features.", layers.features.size());
      layers.features.push_back(InvertedResidual(name, input_channel, output_channel,
                                                 i == 0 ? stage_stride : 1, s.expansion));
      input_channel = output_channel;
    }
  }
  const std::string last = absl::StrCat("features.", layers.features.size());
  layers.features.push_back(
      {last, {Conv(last + ".0", input_channel, layers.last_channel, 1, 1, 1, true)}, false});
  return layers;
}

int64_t MobileNetV2Macs(const MobileNetV2Config& config) {
  const MobileNetV2Layers layers = BuildMobileNetV2Layers(config);
  int64_t size = config.input_size;
  int64_t macs = 0;
  for (const FeatureBlock& block : layers.features) {
    for (const ConvLayer& conv : block.convs) {
      const int64_t pad = (conv.kernel - 1) / 2;
      size = (size + 2 * pad - conv.kernel) / conv.stride + 1;
      macs += size * size * conv.out_channels * conv.kernel * conv.kernel *
              (conv.in_channels / conv.groups);
    }
  }
  return macs + int64_t{layers.last_channel} * layers.num_classes;
}

}  // namespace qforge

// The MobileNetV2 architecture of PyTorch's static quantization tutorial, as a
// list of layers that the trainer and the model builders both walk: one source
// of truth for channel counts (`_make_divisible`), strides, groups and the
// PyTorch module names that fusion, checkpoints and error messages use.
#ifndef QFORGE_COMMON_MOBILENET_V2_H_
#define QFORGE_COMMON_MOBILENET_V2_H_

#include <cstdint>
#include <string>
#include <vector>

namespace qforge {

// One row of the inverted residual table: expansion t, channels c, repeats n, stride s.
struct InvertedResidualSetting {
  int expansion;
  int channels;
  int repeats;
  int stride;
};

struct MobileNetV2Config {
  int input_channels = 3;
  int input_size = 224;  // square inputs
  int num_classes = 1000;
  float width_mult = 1.0f;
  int round_nearest = 8;
  // The tutorial's table; replace it to make other variants.
  std::vector<InvertedResidualSetting> settings = {
      {1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
      {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  // For 28x28 or 32x32 inputs: the first conv and the second stage use stride 1,
  // so the feature map is not reduced to 1x1 too early.
  bool small_input = false;
};

// A convolution with its batch norm (and activation, if `activation`).
struct ConvLayer {
  std::string name;  // the conv's PyTorch module name, e.g. "features.2.conv.1.0"
  int in_channels;
  int out_channels;
  int kernel;
  int stride;
  int groups;
  bool activation;  // ReLU / ReLU6 after BN; false for the linear bottleneck
};

// features.i: one ConvBNReLU, or an inverted residual block of 2 or 3 convs.
struct FeatureBlock {
  std::string name;  // "features.i"
  std::vector<ConvLayer> convs;
  bool residual;  // output = input + convs(input)
};

struct MobileNetV2Layers {
  std::vector<FeatureBlock> features;
  int last_channel;  // the features' output channels, the classifier's input
  int num_classes;
};

// _make_divisible from the tutorial (after TensorFlow's slim MobileNet): the
// nearest multiple of `divisor`, never below min_value (default divisor) and
// never more than 10% below v.
int MakeDivisible(float v, int divisor, int min_value = 0);

MobileNetV2Layers BuildMobileNetV2Layers(const MobileNetV2Config& config);

// Multiply-accumulates of one forward pass of one image (convs and classifier).
int64_t MobileNetV2Macs(const MobileNetV2Config& config);

}  // namespace qforge

#endif  // QFORGE_COMMON_MOBILENET_V2_H_

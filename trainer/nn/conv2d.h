// Conv2d over NHWC activations with OHWI weights: any kernel, stride, symmetric
// zero padding and groups (depthwise included), optional bias; dilation 1, as
// PyTorch's nn.Conv2d(in, out, k, stride, padding, groups=g, bias=b).
//
// N batch, H/W input size, C input channels, OH/OW output size, O output
// channels, KH/KW kernel, G groups. Three paths with one semantics:
//   - groups == 1 (and any group with more than one input channel): im2col then
//     GEMM (trainer/nn/gemm.h); a 1x1 stride-1 unpadded conv skips im2col;
//   - depthwise (groups == C == O): direct loops vectorised across channels.
#ifndef QFORGE_TRAINER_NN_CONV2D_H_
#define QFORGE_TRAINER_NN_CONV2D_H_

#include <string>
#include <vector>

#include "trainer/nn/gemm.h"
#include "trainer/nn/layer.h"
#include "trainer/nn/parameters.h"
#include "trainer/nn/tensor.h"

namespace qforge {

struct Conv2dOptions {
  int in_channels = 1;
  int out_channels = 1;
  int kernel = 1;
  int stride = 1;
  int padding = 0;
  int groups = 1;
  bool bias = false;
};

class Conv2d {
 public:
  // Registers "<name>.weight" [O, KH, KW, C/G] and, with bias, "<name>.bias" [O].
  Conv2d(const std::string& name, const Conv2dOptions& options, ParameterStore& params);

  // x [N, H, W, C] -> y [N, OH, OW, O]. Keeps a pointer to x for Backward.
  // With `moments`, also gathers y's per-channel sums and sums of squares.
  void Forward(const FloatTensor& x, FloatTensor& y, ChannelMoments* moments = nullptr);
  // dy [N, OH, OW, O] -> dx [N, H, W, C] (skipped if dx is null); dW, db +=.
  void Backward(const FloatTensor& dy, FloatTensor* dx);
  // The same with dy as rows [N * OH * OW, O] handed over block by block (a
  // batch norm after the conv computes them on demand). `dx_observer` sees
  // each block of dx's rows once final; with `accumulate_dx`, dx += (dx must
  // hold the input's shape).
  void Backward(const GradientRows& dy, FloatTensor* dx, RowsObserver* dx_observer = nullptr,
                bool accumulate_dx = false);

  const std::string& name() const { return name_; }
  const Conv2dOptions& options() const { return options_; }
  int weight_id() const { return weight_; }
  int bias_id() const { return bias_; }  // -1 without bias

 private:
  bool depthwise() const {
    return options_.groups == options_.in_channels && options_.out_channels == options_.in_channels;
  }
  bool pointwise() const {
    return options_.kernel == 1 && options_.stride == 1 && options_.padding == 0 &&
           options_.groups == 1;
  }
  void ForwardGemm(const FloatTensor& x, FloatTensor& y, ChannelMoments* moments);
  void BackwardGemm(const float* dy, FloatTensor* dx);
  void BackwardPointwise(const GradientRows& dy, FloatTensor* dx, RowsObserver* dx_observer,
                         bool accumulate_dx);
  void ObserveRows(const FloatTensor& dx, RowsObserver* observer) const;
  void ForwardDepthwise(const FloatTensor& x, FloatTensor& y, ChannelMoments* moments);
  void BackwardDepthwise(const GradientRows& dy, FloatTensor* dx, RowsObserver* dx_observer);

  std::string name_;
  Conv2dOptions options_;
  ParameterStore& params_;
  int weight_ = -1;
  int bias_ = -1;
  const FloatTensor* input_ = nullptr;
  int64_t out_h_ = 0, out_w_ = 0;
  FloatBuffer columns_;       // im2col of one group: [N*OH*OW, KH*KW*C/G]
  FloatBuffer column_grads_;  // its gradient
  FloatBuffer transposed_weights_;  // depthwise weights as [KH, KW, C]
  FloatBuffer turned_weights_;      // the same turned 180 degrees (stride-1 dx)
  std::vector<float> scratch_;      // per-thread partial dW (depthwise) or db (1x1)
  GemmOuterSums weight_sums_;       // per-chunk partial dW (GEMM)
  GemmRight right_;                 // the weights, packed for y = x . W^T or dx = dy . W
  std::vector<FloatBuffer> block_rows_;  // per chunk: a block of dy's rows
  FloatBuffer dy_rows_;             // dy whole, for the im2col path
  FloatTensor dx_sum_;              // dx before it is added (accumulate_dx, not 1x1)
};

int64_t ConvOutputExtent(int64_t input, int kernel, int stride, int padding);

}  // namespace qforge

#endif  // QFORGE_TRAINER_NN_CONV2D_H_

// Linear, as PyTorch's nn.Linear(in, out): y = x W^T + b with W [O, K].
#ifndef QFORGE_TRAINER_NN_LINEAR_H_
#define QFORGE_TRAINER_NN_LINEAR_H_

#include <string>
#include <vector>

#include "trainer/nn/gemm.h"
#include "trainer/nn/parameters.h"
#include "trainer/nn/tensor.h"

namespace qforge {

class Linear {
 public:
  // Registers "<name>.weight" [O, K] and "<name>.bias" [O].
  Linear(const std::string& name, int in_features, int out_features, ParameterStore& params);

  // x [N, K] -> y [N, O].
  void Forward(const FloatTensor& x, FloatTensor& y);
  // From y = x W^T + b: dW += dy^T x, db += sum_n dy, dx = dy W.
  void Backward(const FloatTensor& dy, FloatTensor* dx);

  const std::string& name() const { return name_; }
  int weight_id() const { return weight_; }
  int bias_id() const { return bias_; }

 private:
  std::string name_;
  int in_, out_;
  ParameterStore& params_;
  int weight_, bias_;
  const FloatTensor* input_ = nullptr;
  GemmOuterSums weight_sums_;
};

// Mean over H and W: x [N, H, W, C] -> y [N, C] (PyTorch: x.mean([2, 3])).
class MeanHW {
 public:
  explicit MeanHW(const std::string& name) : name_(name) {}
  void Forward(const FloatTensor& x, FloatTensor& y);
  void Backward(const FloatTensor& dy, FloatTensor& dx);  // dx = dy / (H * W) everywhere
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::vector<int64_t> input_shape_;
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_NN_LINEAR_H_

// QuantStub and DeQuantStub, as in PyTorch's eager quantization: identity in
// float training, they mark where a model's int8 region begins and ends. The
// observer before a QuantStub's output gives the input's quantization, and
// convert puts the model's QUANTIZE and DEQUANTIZE ops at these points.
#ifndef QFORGE_TRAINER_NN_STUBS_H_
#define QFORGE_TRAINER_NN_STUBS_H_

#include <string>

#include "trainer/nn/tensor.h"

namespace qforge {

class QuantStub {
 public:
  explicit QuantStub(std::string name) : name_(std::move(name)) {}
  const FloatTensor& Forward(const FloatTensor& x) const { return x; }
  const FloatTensor& Backward(const FloatTensor& dy) const { return dy; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

class DeQuantStub {
 public:
  explicit DeQuantStub(std::string name) : name_(std::move(name)) {}
  const FloatTensor& Forward(const FloatTensor& x) const { return x; }
  const FloatTensor& Backward(const FloatTensor& dy) const { return dy; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_NN_STUBS_H_

// Element-wise layers: ReLU, ReLU6, Dropout and the residual Add (the role of
// PyTorch's FloatFunctional.add: a named module, so quantization can observe
// its output).
#ifndef QFORGE_TRAINER_NN_ELEMENTWISE_H_
#define QFORGE_TRAINER_NN_ELEMENTWISE_H_

#include <string>
#include <vector>

#include "trainer/nn/layer.h"
#include "trainer/nn/tensor.h"

namespace qforge {

// y = min(max(x, 0), cap): ReLU with cap = +inf, ReLU6 with cap = 6.
class ClampedReLU {
 public:
  ClampedReLU(const std::string& name, float cap) : name_(name), cap_(cap) {}
  void Forward(const FloatTensor& x, FloatTensor& y);
  // dx = dy where 0 < y < cap (PyTorch's threshold / hardtanh backward), else 0.
  void Backward(const FloatTensor& dy, FloatTensor& dx);
  const std::string& name() const { return name_; }
  float cap() const { return cap_; }

 private:
  std::string name_;
  float cap_;
  const FloatTensor* output_ = nullptr;
};

// Inverted dropout: in training, zero each element with probability p and scale
// the rest by 1 / (1 - p); identity in eval. The mask of element i at step s is
// drawn from (seed, layer, s, i) alone, so it does not depend on threads or on
// whether the run was resumed.
class Dropout {
 public:
  Dropout(const std::string& name, float p);
  void Forward(const FloatTensor& x, FloatTensor& y, const PassContext& ctx);
  void Backward(const FloatTensor& dy, FloatTensor& dx);  // dx = dy * mask
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  float p_;
  uint64_t key_;  // from the name: layers draw independent masks
  std::vector<float> mask_;  // 0 or 1 / (1 - p) per element; empty: identity
};

// y = a + b.
class Add {
 public:
  explicit Add(const std::string& name) : name_(name) {}
  void Forward(const FloatTensor& a, const FloatTensor& b, FloatTensor& y);
  // da += dy and db += dy: a residual's input gradient gathers both paths.
  void Backward(const FloatTensor& dy, FloatTensor& da, FloatTensor& db);
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_NN_ELEMENTWISE_H_

// The trainer's float tensor: a shape and contiguous row-major data. Activations
// are NHWC ([N, H, W, C]); conv weights OHWI ([O, KH, KW, C / groups]), the
// flat model's layout, so convert needs no transposes.
#ifndef QFORGE_TRAINER_TENSOR_H_
#define QFORGE_TRAINER_TENSOR_H_

#include <cstdint>
#include <vector>

namespace qforge {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;

  Tensor() = default;
  explicit Tensor(std::vector<int64_t> s) { Resize(std::move(s)); }

  // Sets the shape; keeps the allocation when it is large enough, so a layer's
  // buffers follow the batch size without reallocating every step.
  void Resize(std::vector<int64_t> new_shape) {
    int64_t n = 1;
    for (int64_t d : new_shape) n *= d;
    shape = std::move(new_shape);
    data.resize(n);
  }
  int64_t size() const { return static_cast<int64_t>(data.size()); }
  int64_t dim(int i) const { return shape[i]; }
  float* ptr() { return data.data(); }
  const float* ptr() const { return data.data(); }
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_TENSOR_H_

// The trainer's float tensor: a shape and contiguous row-major data. Activations
// are NHWC ([N, H, W, C]); conv weights OHWI ([O, KH, KW, C / groups]), the
// flat model's layout, so convert needs no transposes.
#ifndef QFORGE_TRAINER_NN_TENSOR_H_
#define QFORGE_TRAINER_NN_TENSOR_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>
#include <vector>

namespace qforge {

// An allocator whose resize leaves new elements uninitialised: buffers that a
// layer overwrites anyway are not zeroed first (that memset cost as much as a
// ReLU's backward pass).
template <typename T>
struct UninitializedAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitializedAllocator<U>;
  };
  UninitializedAllocator() = default;
  template <typename U>
  UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;  // default-initialisation: no zeroing
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

using FloatBuffer = std::vector<float, UninitializedAllocator<float>>;

struct FloatTensor {
  std::vector<int64_t> shape;
  FloatBuffer data;

  FloatTensor() = default;
  // A tensor of zeros.
  explicit FloatTensor(std::vector<int64_t> s) {
    Resize(std::move(s));
    std::fill(data.begin(), data.end(), 0.0f);
  }

  // Sets the shape, leaving the contents unspecified (every layer overwrites its
  // outputs). Keeps the allocation when it is large enough, so buffers follow
  // the batch size without reallocating every step.
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

#endif  // QFORGE_TRAINER_NN_TENSOR_H_

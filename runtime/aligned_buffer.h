// A heap buffer aligned to kTensorAlignment, zero-filled, with `tail` spare
// bytes: XNNPACK may read (never write) up to 16 bytes past a tensor.
#ifndef QFORGE_RUNTIME_ALIGNED_BUFFER_H_
#define QFORGE_RUNTIME_ALIGNED_BUFFER_H_

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "runtime/memory_plan.h"

namespace qforge {

class AlignedBuffer {
 public:
  static constexpr int64_t kTail = 64;

  AlignedBuffer() = default;
  explicit AlignedBuffer(int64_t bytes) : size_(bytes) {
    const int64_t padded =
        (bytes + kTail + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
    data_.reset(static_cast<uint8_t*>(std::aligned_alloc(kTensorAlignment, padded)));
    if (data_ != nullptr) std::memset(data_.get(), 0, padded);
  }

  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  int64_t size() const { return size_; }
  // False if the allocation failed.
  bool ok() const { return data_ != nullptr; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> data_;
  int64_t size_ = 0;
};

}  // namespace qforge

#endif  // QFORGE_RUNTIME_ALIGNED_BUFFER_H_

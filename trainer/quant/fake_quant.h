// Fake quantization, as PyTorch's fake_quantize_per_tensor_affine and
// fake_quantize_per_channel_affine compute it on CPU:
//   q = round_half_even(x * (1 / scale)) + zero_point  (common/quantization.h)
//   y = (clamp(q, qmin, qmax) - zero_point) * scale
// but for NaN, which becomes 0 as in the runtime (PyTorch makes it qmin).
// The forward of the trainer's quantization simulation and of QAT. Where a mask
// is asked for, it records qmin <= q <= qmax: the straight-through estimator
// passes the gradient there and zeroes it where the value was clamped.
#ifndef QFORGE_TRAINER_QUANT_FAKE_QUANT_H_
#define QFORGE_TRAINER_QUANT_FAKE_QUANT_H_

#include <cstdint>
#include <vector>

namespace qforge {

struct FakeQuantParams {
  float scale = 1;
  int32_t zero_point = 0;
  int32_t qmin = -128, qmax = 127;
};

// y may alias x; mask (n entries) may be null.
void FakeQuantizePerTensor(const float* x, int64_t n, const FakeQuantParams& p, float* y,
                           uint8_t* mask);

struct PerChannelFakeQuantParams {
  std::vector<float> scales;
  std::vector<int32_t> zero_points;  // one per scale
  int32_t qmin = -127, qmax = 127;   // symmetric int8 weights
};

// x holds p.scales.size() channels of `inner` values each along its outermost
// axis (OHWI weights: axis 0). y may alias x; mask may be null.
void FakeQuantizePerChannel(const float* x, int64_t inner, const PerChannelFakeQuantParams& p,
                            float* y, uint8_t* mask);

// The straight-through gradient: dx = dy where mask, else 0. dx may alias dy.
void FakeQuantizeBackward(const float* dy, const uint8_t* mask, int64_t n, float* dx);

}  // namespace qforge

#endif  // QFORGE_TRAINER_QUANT_FAKE_QUANT_H_

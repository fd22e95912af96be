#include "trainer/fake_quant.h"

#include <algorithm>
#include <cmath>

#include "trainer/parallel.h"

namespace qforge {
namespace {

// One value: PyTorch multiplies by the float reciprocal rather than dividing,
// and rounds with nearbyint (half to even in the default rounding mode). The
// clamp stays in float so that huge values, infinities and NaN (fmax picks
// qmin over NaN) never reach an integer conversion.
inline float FakeQuantizeOne(float x, const FakeQuantParams& p, float inv_scale,
                             uint8_t* in_range) {
  const float q = static_cast<float>(p.zero_point) + std::nearbyint(x * inv_scale);
  *in_range = q >= p.qmin && q <= p.qmax;
  const float clamped = std::fmin(std::fmax(q, static_cast<float>(p.qmin)), p.qmax);
  return (clamped - static_cast<float>(p.zero_point)) * p.scale;
}

// x[n] -> y[n], mask[n] (may be null).
void FakeQuantizeRange(const float* x, int64_t n, const FakeQuantParams& p, float* y,
                       uint8_t* mask) {
  const float inv_scale = 1.0f / p.scale;
  uint8_t in_range;
  for (int64_t i = 0; i < n; ++i) {
    y[i] = FakeQuantizeOne(x[i], p, inv_scale, &in_range);
    if (mask != nullptr) mask[i] = in_range;
  }
}

}  // namespace

void FakeQuantizePerTensor(const float* x, int64_t n, const FakeQuantParams& p, float* y,
                           uint8_t* mask) {
  Pool().ParallelFor(n, [&](int, int64_t begin, int64_t end) {
    FakeQuantizeRange(x + begin, end - begin, p, y + begin, mask ? mask + begin : nullptr);
  });
}

void FakeQuantizePerChannel(const float* x, int64_t inner, const PerChannelFakeQuantParams& p,
                            float* y, uint8_t* mask) {
  const int64_t channels = static_cast<int64_t>(p.scales.size());
  Pool().ParallelFor(channels, [&](int, int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const FakeQuantParams channel{p.scales[c], p.zero_points[c], p.qmin, p.qmax};
      FakeQuantizeRange(x + c * inner, inner, channel, y + c * inner, mask ? mask + c * inner : nullptr);
    }
  });
}

void FakeQuantizeBackward(const float* dy, const uint8_t* mask, int64_t n, float* dx) {
  Pool().ParallelFor(n, [&](int, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) dx[i] = mask[i] ? dy[i] : 0.0f;
  });
}

}  // namespace qforge

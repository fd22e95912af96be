#include "trainer/quant/fake_quant.h"

#include <algorithm>
#include <cmath>

#include "common/quantization.h"
#include "trainer/nn/parallel.h"

namespace qforge {
namespace {

// x[n] -> y[n], mask[n] (may be null). Rounds with common/quantization.h's
// RoundToGrid, as the runtime and convert do, so the simulation and the int8
// model cannot part on a tie. The clamp stays in float, so huge values and
// infinities never reach an integer conversion. NaN becomes the zero point
// (real 0), as in the runtime, with its gradient masked; PyTorch makes it qmin.
// Branch-free, so the compiler vectorizes it.
void FakeQuantizeRange(const float* x, int64_t n, const FakeQuantParams& p, float* y,
                       uint8_t* mask) {
  const float scale = p.scale, inverse_scale = InverseScale(p.scale);
  const float zero_point = static_cast<float>(p.zero_point);
  const float qmin = static_cast<float>(p.qmin), qmax = static_cast<float>(p.qmax);
  if (mask != nullptr) {
    for (int64_t i = 0; i < n; ++i) {
      const float q = RoundToGrid(x[i], inverse_scale, zero_point);
      mask[i] = (q >= qmin) & (q <= qmax);
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    const float q = RoundToGrid(x[i], inverse_scale, zero_point);
    const float clamped = std::min(qmax, std::max(qmin, q));
    y[i] = ((x[i] == x[i] ? clamped : zero_point) - zero_point) * scale;
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

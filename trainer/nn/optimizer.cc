#include "trainer/nn/optimizer.h"

#include <cmath>

namespace qforge {

void Sgd::Step(std::vector<float>& params, const std::vector<float>& grads, float lr,
               float momentum) {
  const bool first = buffer_.empty();
  if (first && momentum != 0.0f) buffer_.assign(params.size(), 0.0f);
  const float wd = options_.weight_decay;
  for (size_t i = 0; i < params.size(); ++i) {
    float d = grads[i] + wd * params[i];
    if (momentum != 0.0f) {
      buffer_[i] = first ? d : momentum * buffer_[i] + d;
      d = options_.nesterov ? d + momentum * buffer_[i] : buffer_[i];
    }
    params[i] -= lr * d;
  }
}

namespace {

// PyTorch's OneCycleLR._annealing_cos: from start (pct 0) to end (pct 1).
double AnnealCos(double start, double end, double pct) {
  return end + (start - end) / 2.0 * (std::cos(M_PI * pct) + 1.0);
}

ScheduleValue OneCycle(const ScheduleOptions& o, int64_t i) {
  const double initial = o.base_lr / o.div_factor;
  const double final_lr = initial / o.final_div_factor;
  const double up_end = o.pct_start * o.total_iterations - 1;
  const double down_end = o.total_iterations - 1;
  if (i <= up_end) {
    const double pct = up_end > 0 ? i / up_end : 1.0;
    return {static_cast<float>(AnnealCos(initial, o.base_lr, pct)),
            static_cast<float>(AnnealCos(o.max_momentum, o.base_momentum, pct))};
  }
  const double pct = (i - up_end) / (down_end - up_end);
  return {static_cast<float>(AnnealCos(o.base_lr, final_lr, pct)),
          static_cast<float>(AnnealCos(o.base_momentum, o.max_momentum, pct))};
}

}  // namespace

ScheduleValue ScheduleAt(const ScheduleOptions& o, int64_t i) {
  switch (o.kind) {
    case Schedule::kStep: {
      const int64_t epoch = i / o.iterations_per_epoch;
      return {static_cast<float>(o.base_lr * std::pow(o.gamma, epoch / o.step_epochs)), -1.0f};
    }
    case Schedule::kCosine:
      return {static_cast<float>(o.base_lr * 0.5 *
                                 (1.0 + std::cos(M_PI * i / static_cast<double>(o.total_iterations)))),
              -1.0f};
    case Schedule::kOneCycle:
      return OneCycle(o, i);
    default:
      return {o.base_lr, -1.0f};
  }
}

}  // namespace qforge

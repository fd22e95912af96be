// SGD with momentum, weight decay and Nesterov, exactly as PyTorch's
// torch.optim.SGD (dampening 0), and the learning-rate schedules the trainer
// offers: constant, step, cosine and one-cycle (PyTorch's StepLR,
// CosineAnnealingLR and OneCycleLR, evaluated per iteration).
#ifndef QFORGE_TRAINER_NN_OPTIMIZER_H_
#define QFORGE_TRAINER_NN_OPTIMIZER_H_

#include <cstdint>
#include <vector>

namespace qforge {

struct SgdOptions {
  float lr = 0.1f;
  float momentum = 0.9f;
  float weight_decay = 0.0f;
  bool nesterov = false;
};

class Sgd {
 public:
  explicit Sgd(const SgdOptions& options) : options_(options) {}

  // One step over a parameter block and its gradients:
  //   d = g + wd * p;  buf = d (first step) or momentum * buf + d;
  //   d = nesterov ? d + momentum * buf : buf;  p -= lr * d.
  // lr and momentum are this step's (a schedule may change them).
  void Step(std::vector<float>& params, const std::vector<float>& grads, float lr,
            float momentum);

  const SgdOptions& options() const { return options_; }
  // Momentum buffers, for checkpoints; empty before the first step.
  std::vector<float>& momentum_buffer() { return buffer_; }

 private:
  SgdOptions options_;
  std::vector<float> buffer_;
};

enum class Schedule { kConstant, kStep, kCosine, kOneCycle };

struct ScheduleOptions {
  Schedule kind = Schedule::kConstant;
  float base_lr = 0.1f;        // constant, step and cosine: the initial rate;
                               // one-cycle: the peak (PyTorch's max_lr)
  int64_t total_iterations = 1;
  int64_t iterations_per_epoch = 1;
  int step_epochs = 30;        // step: multiply by gamma every step_epochs
  float gamma = 0.1f;
  float pct_start = 0.3f;      // one-cycle: share of iterations spent rising
  float div_factor = 25.0f;    // one-cycle: initial lr = peak / div_factor
  float final_div_factor = 1e4f;  // one-cycle: final lr = initial / final_div_factor
  float base_momentum = 0.85f;    // one-cycle cycles momentum the other way
  float max_momentum = 0.95f;
};

struct ScheduleValue {
  float lr;
  float momentum;  // < 0: keep the optimizer's own momentum
};

// The rate (and, for one-cycle, the momentum) of 0-based iteration `i`.
ScheduleValue ScheduleAt(const ScheduleOptions& options, int64_t i);

}  // namespace qforge

#endif  // QFORGE_TRAINER_NN_OPTIMIZER_H_

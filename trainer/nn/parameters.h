// All of a model's parameters in one contiguous block, their gradients in a
// second of the same layout, and non-trained buffers (batch-norm running
// statistics) in a third; layers hold ids and read named views. Zeroing the
// gradients, the optimizer step and checkpointing are each one loop over a block.
#ifndef QFORGE_TRAINER_NN_PARAMETERS_H_
#define QFORGE_TRAINER_NN_PARAMETERS_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace qforge {

struct ParamInfo {
  std::string name;  // PyTorch's state_dict name, e.g. "features.0.0.weight"
  std::vector<int64_t> shape;
  int64_t offset = 0;  // in its block
  int64_t size = 0;
  bool trainable = true;  // false: a buffer (running_mean, running_var)
};

// Told during a backward pass as each parameter's gradient becomes final, so
// that data-parallel training can sum it over the ranks while the rest of the
// pass runs (trainer/dist/gradient_buckets.h).
class GradientListener {
 public:
  virtual ~GradientListener() = default;
  virtual void Final(int id) = 0;
};

// Tells `listener` (if any) that the gradients of `ids` are final; ids below 0
// (a conv without bias) are skipped.
void ReportGradientsFinal(GradientListener* listener, std::initializer_list<int> ids);

class ParameterStore {
 public:
  // Registers a tensor and returns its id. Values start at zero. Adding moves the
  // blocks: take value()/grad() pointers only after the model is built.
  int Add(const std::string& name, std::vector<int64_t> shape, bool trainable = true);

  float* value(int id) { return Block(id).data() + info_[id].offset; }
  const float* value(int id) const { return Block(id).data() + info_[id].offset; }
  float* grad(int id) { return grads_.data() + info_[id].offset; }  // trainable only
  const ParamInfo& info(int id) const { return info_[id]; }
  // The id of the tensor called `name`, or -1.
  int Find(const std::string& name) const;
  int count() const { return static_cast<int>(info_.size()); }

  // The whole trainable block and its gradients, for the optimizer.
  std::vector<float>& values() { return values_; }
  std::vector<float>& grads() { return grads_; }
  std::vector<float>& buffers() { return buffers_; }
  void ZeroGrads();

 private:
  std::vector<float>& Block(int id) { return info_[id].trainable ? values_ : buffers_; }
  const std::vector<float>& Block(int id) const {
    return info_[id].trainable ? values_ : buffers_;
  }

  std::vector<ParamInfo> info_;
  std::vector<float> values_;
  std::vector<float> grads_;
  std::vector<float> buffers_;
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_NN_PARAMETERS_H_

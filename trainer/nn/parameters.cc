#include "trainer/nn/parameters.h"

#include <algorithm>

namespace qforge {

int ParameterStore::Add(const std::string& name, std::vector<int64_t> shape, bool trainable) {
  ParamInfo p;
  p.name = name;
  p.size = 1;
  for (int64_t d : shape) p.size *= d;
  p.shape = std::move(shape);
  p.trainable = trainable;
  std::vector<float>& block = trainable ? values_ : buffers_;
  p.offset = static_cast<int64_t>(block.size());
  block.resize(block.size() + p.size, 0.0f);
  if (trainable) grads_.resize(values_.size(), 0.0f);
  info_.push_back(std::move(p));
  return count() - 1;
}

int ParameterStore::Find(const std::string& name) const {
  for (int id = 0; id < count(); ++id) {
    if (info_[id].name == name) return id;
  }
  return -1;
}

void ReportGradientsFinal(GradientListener* listener, std::initializer_list<int> ids) {
  if (listener == nullptr) return;
  for (int id : ids) {
    if (id >= 0) listener->Final(id);
  }
}

void ParameterStore::ZeroGrads() { std::fill(grads_.begin(), grads_.end(), 0.0f); }

}  // namespace qforge

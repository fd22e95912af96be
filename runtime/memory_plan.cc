#include "runtime/memory_plan.h"

#include <algorithm>
#include <numeric>

#include "runtime/model_validator.h"

namespace qforge {
namespace {

struct Lifetime {
  int first = 0;  // op index that writes the tensor (-1: a model input)
  int last = 0;   // op index of its last reader (num_ops: a model output)
  bool input = false;
  bool output = false;
  // Two tensors may share bytes only if no op needs both. Besides, a model
  // input never shares with a model output: callers may write the next input
  // while they still read the last output.
  bool ConflictsWith(const Lifetime& other) const {
    return (first <= other.last && other.first <= last) || (input && other.output) ||
           (output && other.input);
  }
};

int64_t AlignedBytes(const Tensor& t) {
  const int64_t bytes = *ElementCount(t) * static_cast<int64_t>(ElementSize(t.type()));
  return (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
}

}  // namespace

MemoryPlan PlanMemory(const Model& model) {
  const int num_tensors = model.tensors_size();
  const int num_ops = model.ops_size();
  std::vector<Lifetime> life(num_tensors);
  std::vector<bool> planned(num_tensors, false);
  for (int id : model.inputs()) {
    life[id].first = life[id].last = -1;
    life[id].input = true;
    planned[id] = true;
  }
  for (int i = 0; i < num_ops; ++i) {
    const Op& op = model.ops(i);
    for (int id : op.inputs()) life[id].last = std::max(life[id].last, i);
    life[op.outputs(0)].first = life[op.outputs(0)].last = i;
    planned[op.outputs(0)] = true;
  }
  for (int id : model.outputs()) {
    life[id].last = num_ops;
    life[id].output = true;
  }

  MemoryPlan plan;
  plan.offsets.assign(num_tensors, -1);
  std::vector<int> order;
  for (int id = 0; id < num_tensors; ++id) {
    if (!planned[id]) continue;
    order.push_back(id);
    plan.unshared_bytes += AlignedBytes(model.tensors(id));
  }
  // Largest first; ties by id so the plan is deterministic.
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return AlignedBytes(model.tensors(a)) > AlignedBytes(model.tensors(b));
  });
  std::vector<int> placed;
  for (int id : order) {
    const int64_t size = AlignedBytes(model.tensors(id));
    // Collect the intervals of live neighbours, sorted by offset, and take the
    // first gap that fits.
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (int other : placed) {
      if (life[id].ConflictsWith(life[other])) {
        busy.emplace_back(plan.offsets[other],
                          plan.offsets[other] + AlignedBytes(model.tensors(other)));
      }
    }
    std::sort(busy.begin(), busy.end());
    int64_t offset = 0;
    for (const auto& [begin, end] : busy) {
      if (offset + size <= begin) break;
      offset = std::max(offset, end);
    }
    plan.offsets[id] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + size);
    placed.push_back(id);
  }
  return plan;
}

}  // namespace qforge

// One arena for all the tensors the ops compute, with buffers reused by
// lifetime: two tensors share bytes only if no op needs both alive at once.
// Greedy by size (as TFLite's arena planner): place the largest tensors first,
// each at the lowest offset that does not collide with a placed tensor whose
// lifetime overlaps its own.
#ifndef QFORGE_RUNTIME_MEMORY_PLAN_H_
#define QFORGE_RUNTIME_MEMORY_PLAN_H_

#include <cstdint>
#include <vector>

#include "common/model.pb.h"

namespace qforge {

// Every buffer starts on this boundary (a cache line, and enough for SIMD loads).
inline constexpr int64_t kTensorAlignment = 64;

struct MemoryPlan {
  int64_t arena_bytes = 0;
  std::vector<int64_t> offsets;  // per tensor id; -1 for constants and unused tensors
  int64_t unshared_bytes = 0;    // what one buffer per tensor would take, for comparison
};

// For a model that passed ValidateModel. Model inputs live from before the first
// op, model outputs until after the last, and the two never share bytes.
MemoryPlan PlanMemory(const Model& model);

}  // namespace qforge

#endif  // QFORGE_RUNTIME_MEMORY_PLAN_H_

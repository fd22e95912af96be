// One arena for all the tensors the ops compute, with buffers reused by
// lifetime: two tensors share bytes only if no op needs both alive at once.
// Greedy by size (as TFLite's arena planner): place the largest tensors first,
// each at the lowest offset that does not collide with a placed tensor whose
// lifetime overlaps its own. That costs time in the number of overlapping
// pairs, so a model with more than kConflictsPerTensor of them per tensor (a
// file made to be slow to load, or thousands of model outputs) is planned in
// op order instead, best fit from a free list: O(n log n) either way.
#ifndef QFORGE_RUNTIME_MEMORY_PLAN_H_
#define QFORGE_RUNTIME_MEMORY_PLAN_H_

#include <cstdint>
#include <vector>

#include "common/model.pb.h"

namespace qforge {

// Every buffer starts on this boundary (a cache line, and enough for SIMD loads).
inline constexpr int64_t kTensorAlignment = 64;

// MobileNetV2 has about 1.5 overlapping pairs per tensor.
inline constexpr int64_t kConflictsPerTensor = 32;

struct MemoryPlan {
  int64_t arena_bytes = 0;
  std::vector<int64_t> offsets;  // per tensor id; -1 for constants and unused tensors
  int64_t unshared_bytes = 0;    // what one buffer per tensor would take, for comparison
};

// For a model that passed ValidateModel. Model inputs live from before the first
// op, model outputs until after the last, and the two never share bytes.
MemoryPlan PlanMemory(const Model& model);

// PlanMemory's plan in op order, whatever the model (for tests).
MemoryPlan PlanMemoryInOrder(const Model& model);

}  // namespace qforge

#endif  // QFORGE_RUNTIME_MEMORY_PLAN_H_

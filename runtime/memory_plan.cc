#include "runtime/memory_plan.h"

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "runtime/model_validator.h"

namespace qforge {
namespace {

struct Lifetime {
  int first = 0;  // op index that writes the tensor (-1: a model input)
  int last = 0;   // op index of its last reader (num_ops: a model output)
  bool input = false;
  bool output = false;
  int64_t bytes = 0;  // aligned
};

int64_t AlignedBytes(const Tensor& t) {
  const int64_t bytes = *ElementCount(t) * static_cast<int64_t>(ElementSize(t.type()));
  return (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
}

// Lifetimes of the tensors the arena holds (model inputs and op outputs); the
// ids of those in `planned`, by id.
std::vector<Lifetime> Lifetimes(const Model& model, std::vector<int>& planned) {
  const int num_ops = model.ops_size();
  std::vector<Lifetime> life(model.tensors_size());
  std::vector<bool> is_planned(model.tensors_size(), false);
  for (int id : model.inputs()) {
    life[id].first = life[id].last = -1;
    life[id].input = true;
    is_planned[id] = true;
  }
  for (int i = 0; i < num_ops; ++i) {
    const Op& op = model.ops(i);
    for (int id : op.inputs()) life[id].last = std::max(life[id].last, i);
    life[op.outputs(0)].first = life[op.outputs(0)].last = i;
    is_planned[op.outputs(0)] = true;
  }
  for (int id : model.outputs()) {
    life[id].last = num_ops;
    life[id].output = true;
  }
  for (int id = 0; id < model.tensors_size(); ++id) {
    if (!is_planned[id]) continue;
    planned.push_back(id);
    life[id].bytes = AlignedBytes(model.tensors(id));
  }
  return life;
}

// Per tensor id, the tensors it must not share bytes with: ids[start[id]] to
// ids[start[id + 1] - 1].
struct ConflictLists {
  std::vector<int64_t> start;
  std::vector<int> ids;
};

// Two tensors may share bytes only if no op needs both. Besides, a model input
// never shares with a model output: callers may write the next input while
// they still read the last output. Nothing if there are more than `budget`
// such pairs.
std::optional<ConflictLists> Conflicts(const std::vector<Lifetime>& life,
                                       const std::vector<int>& planned, int64_t budget) {
  std::vector<int> inputs, outputs;
  for (int id : planned) {
    if (life[id].input) inputs.push_back(id);
    if (life[id].output) outputs.push_back(id);
  }
  if (static_cast<int64_t>(inputs.size()) * static_cast<int64_t>(outputs.size()) > budget) {
    return std::nullopt;
  }
  std::vector<std::pair<int, int>> pairs;
  for (int a : inputs) {
    for (int b : outputs) pairs.emplace_back(a, b);
  }
  // Sweep by first op: each overlapping pair is found once, from the tensor
  // that starts first, and counted against the budget as it is found, so the
  // sweep stops early on a dense model.
  std::vector<int> by_first = planned;
  std::stable_sort(by_first.begin(), by_first.end(),
                   [&](int a, int b) { return life[a].first < life[b].first; });
  for (size_t i = 0; i < by_first.size(); ++i) {
    const Lifetime& a = life[by_first[i]];
    for (size_t j = i + 1; j < by_first.size() && life[by_first[j]].first <= a.last; ++j) {
      if (a.input && life[by_first[j]].output) continue;  // already a pair
      if (static_cast<int64_t>(pairs.size()) >= budget) return std::nullopt;
      pairs.emplace_back(by_first[i], by_first[j]);
    }
  }
  ConflictLists lists;
  lists.start.assign(life.size() + 1, 0);
  for (const auto& [a, b] : pairs) {
    ++lists.start[a + 1];
    ++lists.start[b + 1];
  }
  for (size_t id = 0; id < life.size(); ++id) lists.start[id + 1] += lists.start[id];
  lists.ids.resize(2 * pairs.size());
  std::vector<int64_t> next(lists.start.begin(), lists.start.end() - 1);
  for (const auto& [a, b] : pairs) {
    lists.ids[next[a]++] = b;
    lists.ids[next[b]++] = a;
  }
  return lists;
}

// Greedy by size (as TFLite's arena planner): the largest tensors first, each
// at the lowest offset that does not collide with a placed tensor it conflicts
// with. O(n log n + pairs log pairs).
void PlaceBySize(const std::vector<Lifetime>& life, const std::vector<int>& planned,
                 const ConflictLists& conflicts, MemoryPlan& plan) {
  std::vector<int> order = planned;
  // Ties by id so the plan is deterministic.
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return life[a].bytes > life[b].bytes; });
  std::vector<std::pair<int64_t, int64_t>> busy;
  for (int id : order) {
    const int64_t size = life[id].bytes;
    busy.clear();
    for (int64_t k = conflicts.start[id]; k < conflicts.start[id + 1]; ++k) {
      const int other = conflicts.ids[k];
      if (plan.offsets[other] < 0) continue;  // not placed yet
      busy.emplace_back(plan.offsets[other], plan.offsets[other] + life[other].bytes);
    }
    std::sort(busy.begin(), busy.end());
    int64_t offset = 0;
    for (const auto& [begin, end] : busy) {
      if (offset + size <= begin) break;
      offset = std::max(offset, end);
    }
    plan.offsets[id] = offset;
    plan.arena_bytes = std::max(plan.arena_bytes, offset + size);
  }
}

// Free blocks of the arena, best fit with neighbours merged. O(log n) per call.
class FreeList {
 public:
  int64_t Allocate(int64_t size, int64_t& arena_bytes) {
    auto fit = by_size_.lower_bound({size, 0});
    if (fit == by_size_.end()) {
      // Grow the arena, starting inside a free block that ends at its top.
      int64_t offset = arena_bytes;
      if (auto top = by_offset_.rbegin();
          top != by_offset_.rend() && top->first + top->second == arena_bytes) {
        offset = top->first;
        Take(offset, top->second);
      }
      arena_bytes = offset + size;
      return offset;
    }
    const auto [block_size, offset] = *fit;
    Take(offset, block_size);
    if (block_size > size) Put(offset + size, block_size - size);
    return offset;
  }

  void Release(int64_t offset, int64_t size) {
    auto next = by_offset_.lower_bound(offset);
    if (next != by_offset_.end() && offset + size == next->first) {
      size += next->second;
      Take(next->first, next->second);
    }
    auto after = by_offset_.lower_bound(offset);
    if (after != by_offset_.begin()) {
      auto prev = std::prev(after);
      if (prev->first + prev->second == offset) {
        offset = prev->first;
        size += prev->second;
        Take(prev->first, prev->second);
      }
    }
    Put(offset, size);
  }

 private:
  void Put(int64_t offset, int64_t size) {
    by_offset_[offset] = size;
    by_size_.insert({size, offset});
  }
  void Take(int64_t offset, int64_t size) {
    by_offset_.erase(offset);
    by_size_.erase({size, offset});
  }
  std::map<int64_t, int64_t> by_offset_;
  std::set<std::pair<int64_t, int64_t>> by_size_;
};

// For models whose lifetimes overlap too much for PlaceBySize: the tensors in
// the order the ops write them, each in the best-fitting free block, freed
// after its last reader. Model inputs and outputs are never freed, so they
// share bytes with neither each other nor anything that outlives them.
void PlaceInOrder(const Model& model, const std::vector<Lifetime>& life, MemoryPlan& plan) {
  FreeList free;
  auto allocate = [&](int id) {
    plan.offsets[id] = free.Allocate(life[id].bytes, plan.arena_bytes);
  };
  for (int id : model.inputs()) allocate(id);
  for (int i = 0; i < model.ops_size(); ++i) {
    const Op& op = model.ops(i);
    allocate(op.outputs(0));
    auto release = [&](int id) {
      if (life[id].input || life[id].output || life[id].last != i) return;
      free.Release(plan.offsets[id], life[id].bytes);
    };
    for (int k = 0; k < op.inputs_size(); ++k) {
      const int id = op.inputs(k);
      const bool seen =
          std::find(op.inputs().begin(), op.inputs().begin() + k, id) != op.inputs().begin() + k;
      if (plan.offsets[id] >= 0 && !seen) release(id);
    }
    release(op.outputs(0));  // written but never read
  }
}

MemoryPlan Plan(const Model& model, bool by_size) {
  std::vector<int> planned;
  const std::vector<Lifetime> life = Lifetimes(model, planned);
  MemoryPlan plan;
  plan.offsets.assign(model.tensors_size(), -1);
  for (int id : planned) plan.unshared_bytes += life[id].bytes;
  const int64_t budget = kConflictsPerTensor * static_cast<int64_t>(planned.size() + 1);
  std::optional<ConflictLists> conflicts;
  if (by_size) conflicts = Conflicts(life, planned, budget);
  if (conflicts) {
    PlaceBySize(life, planned, *conflicts, plan);
  } else {
    PlaceInOrder(model, life, plan);
  }
  return plan;
}

}  // namespace

MemoryPlan PlanMemory(const Model& model) { return Plan(model, /*by_size=*/true); }

MemoryPlan PlanMemoryInOrder(const Model& model) { return Plan(model, /*by_size=*/false); }

}  // namespace qforge

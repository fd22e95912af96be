#include "runtime/memory_plan.h"

#include <algorithm>
#include <string>
#include <vector>

#include "common/model_builder.h"
#include "common/random.h"
#include "gtest/gtest.h"

namespace qforge {
namespace {

// A chain of `length` float ops over [1, 8, 8, 16] tensors (4 KiB each): two
// buffers alternate however long the chain, plus one for the output, which
// never shares with the input.
Model Chain(int length) {
  ModelBuilder b;
  int prev = b.AddFloatTensor("t0", {1, 8, 8, 16});
  b.AddInput(prev);
  for (int i = 1; i <= length; ++i) {
    const int next = b.AddFloatTensor("t" + std::to_string(i), {1, 8, 8, 16});
    b.AddOp(ADD, "add" + std::to_string(i), {prev, prev}, next);
    prev = next;
  }
  b.AddOutput(prev);
  return b.model();
}

TEST(PlanMemory, ChainReusesBuffers) {
  const MemoryPlan plan = PlanMemory(Chain(10));
  EXPECT_EQ(plan.unshared_bytes, 11 * 4096);
  EXPECT_EQ(plan.arena_bytes, 3 * 4096);
}

TEST(PlanMemory, LiveTensorsNeverShareBytes) {
  // A residual block: t0 stays alive across two ops and is added back in.
  ModelBuilder b;
  const int t0 = b.AddFloatTensor("t0", {1, 4, 4, 8});
  const int t1 = b.AddFloatTensor("t1", {1, 4, 4, 8});
  const int t2 = b.AddFloatTensor("t2", {1, 4, 4, 8});
  const int t3 = b.AddFloatTensor("t3", {1, 4, 4, 8});
  b.AddOp(ADD, "a", {t0, t0}, t1);
  b.AddOp(ADD, "b", {t1, t1}, t2);
  b.AddOp(ADD, "c", {t2, t0}, t3);
  b.AddInput(t0);
  b.AddOutput(t3);
  const MemoryPlan plan = PlanMemory(b.model());
  // Each op's inputs and output must be distinct, and t0 must survive until op c.
  auto disjoint = [&](int x, int y) { return plan.offsets[x] != plan.offsets[y]; };
  EXPECT_TRUE(disjoint(t0, t1));
  EXPECT_TRUE(disjoint(t0, t2));
  EXPECT_TRUE(disjoint(t1, t2));
  EXPECT_TRUE(disjoint(t2, t3));
  EXPECT_TRUE(disjoint(t0, t3));
  EXPECT_EQ(plan.arena_bytes, 3 * 512);  // t1 and t3 can share
  for (int id : {t0, t1, t2, t3}) EXPECT_EQ(plan.offsets[id] % kTensorAlignment, 0);
}

TEST(PlanMemory, InputsAndOutputsNeverShare) {
  // The input dies after op 0 and the output is born at op 1: their lifetimes
  // do not overlap, but a caller may set the next input before reading the
  // output, so they must not share bytes.
  ModelBuilder b;
  const int x = b.AddFloatTensor("x", {1, 16});
  const int mid = b.AddFloatTensor("mid", {1, 16});
  const int y = b.AddFloatTensor("y", {1, 16});
  b.AddOp(ADD, "a", {x, x}, mid);
  b.AddOp(ADD, "b", {mid, mid}, y);
  b.AddInput(x);
  b.AddOutput(y);
  const MemoryPlan plan = PlanMemory(b.model());
  EXPECT_NE(plan.offsets[x], plan.offsets[y]);
  EXPECT_NE(plan.offsets[mid], plan.offsets[y]);
}

TEST(PlanMemory, ConstantsAreNotPlanned) {
  ModelBuilder b;
  const int x = b.AddFloatTensor("x", {1, 3});
  const int c = b.AddFloatConstant("c", {1, 3}, {1, 2, 3});
  const int y = b.AddFloatTensor("y", {1, 3});
  b.AddOp(ADD, "add", {x, c}, y);
  b.AddInput(x);
  b.AddOutput(y);
  const MemoryPlan plan = PlanMemory(b.model());
  EXPECT_EQ(plan.offsets[c], -1);
  EXPECT_EQ(plan.arena_bytes, 2 * kTensorAlignment);
}

// A random graph of ops over tensors of random sizes: each op reads one or two
// earlier tensors, some tensors are read long after they are made, and a few
// are model outputs. The planner reads only shapes and ids, so the ops need not
// be valid models.
Model RandomGraph(uint64_t seed) {
  SplitMix64 rng(seed);
  ModelBuilder b;
  auto tensor = [&](int i) {
    const int64_t channels = 1 + static_cast<int64_t>(rng.Below(300));
    return b.AddFloatTensor("t" + std::to_string(i), {1, channels});
  };
  std::vector<int> made = {tensor(0), tensor(1)};
  b.AddInput(made[0]);
  b.AddInput(made[1]);
  const int num_ops = 5 + static_cast<int>(rng.Below(60));
  for (int i = 0; i < num_ops; ++i) {
    const int a = made[rng.Below(made.size())];
    const int c = made[made.size() - 1 - rng.Below(std::min<size_t>(made.size(), 3))];
    const int out = tensor(static_cast<int>(made.size()));
    b.AddOp(ADD, "op" + std::to_string(i), {a, c}, out);
    made.push_back(out);
    if (rng.Below(8) == 0) b.AddOutput(out);
  }
  b.AddOutput(made.back());
  return b.model();
}

int64_t Bytes(const Tensor& t) { return t.shape(1) * 4; }

// Every pair of tensors that must hold their values at the same time: both
// alive across some op (from the op that writes one until the last op that
// reads it, model inputs from the start, model outputs to the end), or one a
// model input and the other a model output.
TEST(PlanMemory, LiveRangesNeverOverlapOnRandomGraphs) {
  for (uint64_t run = 2; run <= 401; ++run) {
    // Odd runs: the op-order plan, for models too dense for the greedy one.
    const uint64_t seed = run / 2;
    const Model model = RandomGraph(seed);
    const MemoryPlan plan = run % 2 ? PlanMemoryInOrder(model) : PlanMemory(model);
    const int n = model.tensors_size(), end = model.ops_size();
    std::vector<int> first(n, -1), last(n, -1);
    std::vector<bool> input(n, false), output(n, false);
    for (int id : model.inputs()) input[id] = true;
    for (int id : model.outputs()) output[id] = true;
    for (int i = 0; i < end; ++i) {
      first[model.ops(i).outputs(0)] = last[model.ops(i).outputs(0)] = i;
      for (int id : model.ops(i).inputs()) last[id] = i;
    }
    for (int id = 0; id < n; ++id) {
      if (output[id]) last[id] = end;
      ASSERT_GE(plan.offsets[id], 0) << "seed " << seed << " tensor " << id;
      ASSERT_EQ(plan.offsets[id] % kTensorAlignment, 0);
      ASSERT_LE(plan.offsets[id] + Bytes(model.tensors(id)), plan.arena_bytes);
    }
    for (int x = 0; x < n; ++x) {
      for (int y = x + 1; y < n; ++y) {
        const bool live_together = (first[x] <= last[y] && first[y] <= last[x]) ||
                                   (input[x] && output[y]) || (output[x] && input[y]);
        if (!live_together) continue;
        const bool apart = plan.offsets[x] + Bytes(model.tensors(x)) <= plan.offsets[y] ||
                           plan.offsets[y] + Bytes(model.tensors(y)) <= plan.offsets[x];
        ASSERT_TRUE(apart) << "seed " << seed << (run % 2 ? " in order" : "") << ": tensors " << x
                           << " and " << y << " are live together and overlap";
      }
    }
    EXPECT_LE(plan.arena_bytes, plan.unshared_bytes);
  }
}

}  // namespace
}  // namespace qforge

#include "runtime/memory_plan.h"

#include <vector>

#include "common/model_builder.h"
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

}  // namespace
}  // namespace qforge

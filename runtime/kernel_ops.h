// Glue between prepared ops and qforge's own int8 kernels (runtime/kernels):
// a KernelOp packs an op's weights once and binds its tensors, so running it
// is a call over a range of independent work units that callers may split
// across threads. The fast executor uses these for every op they cover and
// XNNPACK for the rest.
#ifndef QFORGE_RUNTIME_KERNEL_OPS_H_
#define QFORGE_RUNTIME_KERNEL_OPS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/prepare.h"
#include "runtime/kernels/isa.h"

namespace qforge {

class KernelOp {
 public:
  virtual ~KernelOp() = default;
  virtual int64_t units() const = 0;
  // Runs units [begin, end); disjoint ranges may run at once on different threads.
  virtual void Run(int64_t begin, int64_t end) = 0;
};

// The op on qforge's kernels at `isa` (already resolved against the CPU), or
// null if the kernels do not run this op (float ops, grouped convolutions that
// are not depthwise, RESHAPE). `tensors[id]` is tensor id's buffer.
std::unique_ptr<KernelOp> MakeKernelOp(const PreparedOp& op, const std::vector<void*>& tensors,
                                       kernels::Isa isa);

}  // namespace qforge

#endif  // QFORGE_RUNTIME_KERNEL_OPS_H_

// DDP's gradient buckets: the gradient block is cut, at parameter boundaries,
// into pieces of about Collectives::bucket_bytes(), from the end, and a
// piece's sum over the ranks starts as soon as the backward pass has made
// every gradient in it final. The sums of the last layers' gradients then
// travel while the first layers' backward runs, instead of all of them after
// it. (The classifier's parameters come first in the block, so its small sum
// goes with the first layers', last.)
#ifndef QFORGE_TRAINER_DIST_GRADIENT_BUCKETS_H_
#define QFORGE_TRAINER_DIST_GRADIENT_BUCKETS_H_

#include <cstdint>
#include <vector>

#include "trainer/dist/collectives.h"
#include "trainer/nn/parameters.h"

namespace qforge {

class GradientBuckets : public GradientListener {
 public:
  // `params` and `ranks` must outlive the buckets.
  GradientBuckets(ParameterStore& params, Collectives& ranks);

  // Starts the sum of the bucket `id` belongs to once all of its gradients
  // are final, and lets the sums already started move on. A tensor without a
  // gradient, or one reported twice in a pass, stops the run: its bucket
  // would be summed before its gradients are.
  void Final(int id) override;
  // Starts the buckets not started yet (a parameter nobody reported) and
  // waits for every sum: the gradients are then summed over the ranks. Readies
  // the buckets for the next backward pass.
  void Finish();

  int count() const { return static_cast<int>(buckets_.size()); }

 private:
  struct Bucket {
    int64_t begin = 0, end = 0;  // in the gradient block
    int parameters = 0;
    int waiting = 0;  // parameters not final yet in this backward pass
  };
  void Start(Bucket& bucket);

  ParameterStore& params_;
  Collectives& ranks_;
  std::vector<Bucket> buckets_;
  std::vector<int> bucket_of_;  // by parameter id; -1 for buffers
  std::vector<bool> reported_;  // by parameter id, in this backward pass
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_DIST_GRADIENT_BUCKETS_H_

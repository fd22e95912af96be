// The collective operations data-parallel training needs, over the ranks
// (processes) of one run: sums of gradients and batch statistics, and rank 0's
// state handed to the others. A run started without an MPI launcher has one
// rank and every operation is a no-op; trainer/dist/mpi_collectives.h is the
// Open MPI implementation.
#ifndef QFORGE_TRAINER_DIST_COLLECTIVES_H_
#define QFORGE_TRAINER_DIST_COLLECTIVES_H_

#include <cstdint>
#include <string>

namespace qforge {

class Collectives {
 public:
  virtual ~Collectives() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Element-wise sums over all ranks, in place; every rank receives the same
  // values. `what` names the operation in a timeout's error.
  virtual void Sum(float* data, int64_t count, const char* what) = 0;
  virtual void Sum(double* data, int64_t count, const char* what) = 0;
  // Rank 0's data (or bytes, resized to rank 0's length) on every rank.
  virtual void Broadcast(float* data, int64_t count, const char* what) = 0;
  virtual void Broadcast(std::string& bytes, const char* what) = 0;
  // Prints `message` naming this rank and stops every rank of the run.
  [[noreturn]] virtual void Abort(const std::string& message) = 0;
};

// The one rank of a run started without an MPI launcher.
class SingleProcess : public Collectives {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void Sum(float*, int64_t, const char*) override {}
  void Sum(double*, int64_t, const char*) override {}
  void Broadcast(float*, int64_t, const char*) override {}
  void Broadcast(std::string&, const char*) override {}
  [[noreturn]] void Abort(const std::string& message) override;
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_DIST_COLLECTIVES_H_

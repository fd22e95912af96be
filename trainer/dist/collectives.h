// The collective operations data-parallel training needs, over the ranks
// (processes) of one run: sums of gradients and batch statistics, and rank 0's
// state handed to the others. A run started without an MPI launcher has one
// rank and every operation is a no-op; trainer/dist/mpi_collectives.h is the
// Open MPI implementation.
#ifndef QFORGE_TRAINER_DIST_COLLECTIVES_H_
#define QFORGE_TRAINER_DIST_COLLECTIVES_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace qforge {

// What a rank's collectives have cost so far: the wall time inside MPI calls
// (waiting for slower ranks included; a started sum's travel while the rank
// computes is not) and the bytes handed to them.
struct CollectiveTraffic {
  double seconds = 0;
  int64_t bytes = 0;
};

class Collectives {
 public:
  virtual ~Collectives() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Element-wise sums over all ranks, in place; every rank receives the same
  // values. `what` names the operation in a timeout's error.
  virtual void Sum(float* data, int64_t count, const char* what) = 0;
  virtual void Sum(double* data, int64_t count, const char* what) = 0;
  // Element-wise maxima over all ranks, in place (a minimum is the negated
  // maximum of the negated values).
  virtual void Max(float* data, int64_t count, const char* what) = 0;
  // Rank 0's data (or bytes, resized to rank 0's length) on every rank.
  virtual void Broadcast(float* data, int64_t count, const char* what) = 0;
  virtual void Broadcast(std::string& bytes, const char* what) = 0;

  // A sum as Sum(), started now and finished by FinishSums(): meanwhile the
  // caller computes, leaves `data` alone, and calls Progress() now and then so
  // the data moves. Every rank starts the same sums in the same order, among
  // the same other collectives (batch norm's sums in the backward pass).
  virtual void StartSum(float* data, int64_t count, const char* what) = 0;
  virtual void Progress() = 0;
  virtual void FinishSums() = 0;

  // Prints `message` naming this rank and stops every rank of the run.
  [[noreturn]] virtual void Abort(const std::string& message) = 0;
  virtual CollectiveTraffic traffic() const = 0;

  // The size of the pieces gradient sums are cut into (GradientBuckets).
  static constexpr double kDefaultBucketMegabytes = 1;  // 10^6 bytes each
  int64_t bucket_bytes() const { return bucket_bytes_; }
  void set_bucket_bytes(int64_t bytes) { bucket_bytes_ = bytes; }

 private:
  int64_t bucket_bytes_ = static_cast<int64_t>(kDefaultBucketMegabytes * 1e6);
};

// The one rank of a run started without an MPI launcher.
class SingleProcess : public Collectives {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void Sum(float*, int64_t, const char*) override {}
  void Sum(double*, int64_t, const char*) override {}
  void Max(float*, int64_t, const char*) override {}
  void Broadcast(float*, int64_t, const char*) override {}
  void Broadcast(std::string&, const char*) override {}
  void StartSum(float*, int64_t, const char*) override {}
  void Progress() override {}
  void FinishSums() override {}
  [[noreturn]] void Abort(const std::string& message) override;
  CollectiveTraffic traffic() const override { return {}; }
};

// Stops every rank if `status` (this rank's data, say) is an error: the
// others would go on to collectives this rank skips.
void StopAllIfFailed(Collectives& ranks, const absl::Status& status);

// Every rank applies the same summed gradients to the same parameters, so
// they stay identical, unless a sum rounds differently on some rank (MPI
// promises the same result everywhere only as advice). Compares fingerprints
// of `blocks` and, where any rank's differ, gives every rank rank 0's values,
// saying so on rank 0.
void MendDrift(Collectives& ranks, std::initializer_list<std::vector<float>*> blocks);

}  // namespace qforge

#endif  // QFORGE_TRAINER_DIST_COLLECTIVES_H_

#include "trainer/dist/mpi_collectives.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/strings/str_format.h"

namespace qforge {
namespace {

// MPI counts are ints: larger arrays go in pieces.
constexpr int64_t kMaxPiece = int64_t{1} << 30;
// Polls before the wait starts sleeping between them: short collectives (batch
// statistics, a few hundred bytes) finish within these and pay no sleep.
constexpr int kSpinPolls = 2000;

class MpiCollectives : public Collectives {
 public:
  explicit MpiCollectives(double timeout_seconds) : timeout_seconds_(timeout_seconds) {
    int provided = 0;
    // Only the thread that runs the training loop calls MPI.
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    if (provided < MPI_THREAD_FUNNELED) {
      Abort("this MPI library cannot be called from a threaded program (MPI_THREAD_FUNNELED)");
    }
  }
  ~MpiCollectives() override { MPI_Finalize(); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  CollectiveTraffic traffic() const override { return traffic_; }

  void Sum(float* data, int64_t count, const char* what) override {
    ReduceInPieces(data, count, MPI_FLOAT, sizeof(float), MPI_SUM, what);
  }
  void Sum(double* data, int64_t count, const char* what) override {
    ReduceInPieces(data, count, MPI_DOUBLE, sizeof(double), MPI_SUM, what);
  }

  void Max(float* data, int64_t count, const char* what) override {
    ReduceInPieces(data, count, MPI_FLOAT, sizeof(float), MPI_MAX, what);
  }

  void Broadcast(float* data, int64_t count, const char* what) override {
    BroadcastInPieces(data, count, MPI_FLOAT, sizeof(float), what);
  }

  void Broadcast(std::string& bytes, const char* what) override {
    int64_t length = static_cast<int64_t>(bytes.size());
    BroadcastInPieces(&length, 1, MPI_INT64_T, sizeof(int64_t), what);
    bytes.resize(length);
    BroadcastInPieces(bytes.data(), length, MPI_CHAR, 1, what);
  }

  void Abort(const std::string& message) override {
    std::fflush(stdout);
    std::fprintf(stderr, "qforge: rank %d of %d: %s\n", rank_, size_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::exit(1);  // MPI_Abort does not return; this tells the compiler so
  }

 private:
  void ReduceInPieces(void* data, int64_t count, MPI_Datatype type, size_t bytes, MPI_Op op,
                      const char* what) {
    char* at = static_cast<char*>(data);
    traffic_.bytes += count * static_cast<int64_t>(bytes);
    for (int64_t done = 0; done < count;) {
      const int piece = static_cast<int>(std::min(kMaxPiece, count - done));
      MPI_Request request;
      MPI_Iallreduce(MPI_IN_PLACE, at + done * bytes, piece, type, op, MPI_COMM_WORLD, &request);
      Wait(request, what);
      done += piece;
    }
  }

  void BroadcastInPieces(void* data, int64_t count, MPI_Datatype type, size_t bytes,
                         const char* what) {
    char* at = static_cast<char*>(data);
    traffic_.bytes += count * static_cast<int64_t>(bytes);
    for (int64_t done = 0; done < count;) {
      const int piece = static_cast<int>(std::min(kMaxPiece, count - done));
      MPI_Request request;
      MPI_Ibcast(at + done * bytes, piece, type, 0, MPI_COMM_WORLD, &request);
      Wait(request, what);
      done += piece;
    }
  }

  void Wait(MPI_Request& request, const char* what) {
    const auto start = std::chrono::steady_clock::now();
    for (int polls = 0;; ++polls) {
      int done = 0;
      MPI_Test(&request, &done, MPI_STATUS_IGNORE);
      if (done) {
        traffic_.seconds +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        return;
      }
      if (polls < kSpinPolls) continue;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
      const double waited =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (waited > timeout_seconds_) {
        Abort(absl::StrFormat(
            "%s did not complete within %g s (--collective_timeout): another rank has stopped "
            "or stalled",
            what, timeout_seconds_));
      }
    }
  }

  double timeout_seconds_;
  CollectiveTraffic traffic_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace

bool StartedByMpiLauncher() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr;
}

std::unique_ptr<Collectives> StartCollectives(double timeout_seconds) {
  if (!StartedByMpiLauncher()) return std::make_unique<SingleProcess>();
  return std::make_unique<MpiCollectives>(timeout_seconds);
}

}  // namespace qforge

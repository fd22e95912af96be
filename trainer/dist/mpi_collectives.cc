#include "trainer/dist/mpi_collectives.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

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
    WaitFor(StartReduce(data, count, MPI_FLOAT, MPI_SUM, what));
  }
  void Sum(double* data, int64_t count, const char* what) override {
    WaitFor(StartReduce(data, count, MPI_DOUBLE, MPI_SUM, what));
  }

  void Max(float* data, int64_t count, const char* what) override {
    WaitFor(StartReduce(data, count, MPI_FLOAT, MPI_MAX, what));
  }

  void Broadcast(float* data, int64_t count, const char* what) override {
    WaitFor(StartBroadcast(data, count, MPI_FLOAT, what));
  }

  void Broadcast(std::string& bytes, const char* what) override {
    int64_t length = static_cast<int64_t>(bytes.size());
    WaitFor(StartBroadcast(&length, 1, MPI_INT64_T, what));
    bytes.resize(length);
    WaitFor(StartBroadcast(bytes.data(), length, MPI_CHAR, what));
  }

  void StartSum(float* data, int64_t count, const char* what) override {
    for (Started& s : StartReduce(data, count, MPI_FLOAT, MPI_SUM, what)) started_.push_back(s);
  }

  // MPI moves a started sum's data only inside MPI calls: each test lets it
  // take its next step.
  void Progress() override {
    const auto start = std::chrono::steady_clock::now();
    for (Started& s : started_) {
      int done = 0;  // a finished request is MPI_REQUEST_NULL, which tests done
      MPI_Test(&s.request, &done, MPI_STATUS_IGNORE);
    }
    traffic_.seconds += SecondsSince(start);
  }

  void FinishSums() override {
    WaitFor(std::move(started_));
    started_.clear();
  }

  void Abort(const std::string& message) override {
    std::fflush(stdout);
    std::fprintf(stderr, "qforge: rank %d of %d: %s\n", rank_, size_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::exit(1);  // MPI_Abort does not return; this tells the compiler so
  }

 private:
  struct Started {
    MPI_Request request;
    const char* what;
  };

  static double SecondsSince(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  std::vector<Started> StartReduce(void* data, int64_t count, MPI_Datatype type, MPI_Op op,
                                   const char* what) {
    return StartInPieces(data, count, type, what, [&](void* piece, int n, MPI_Request* request) {
      MPI_Iallreduce(MPI_IN_PLACE, piece, n, type, op, MPI_COMM_WORLD, request);
    });
  }

  std::vector<Started> StartBroadcast(void* data, int64_t count, MPI_Datatype type,
                                      const char* what) {
    return StartInPieces(data, count, type, what, [&](void* piece, int n, MPI_Request* request) {
      MPI_Ibcast(piece, n, type, 0, MPI_COMM_WORLD, request);
    });
  }

  // Starts `start(piece, n, &request)` on each piece of at most kMaxPiece
  // elements (MPI counts are ints) and returns the requests.
  template <typename StartPiece>
  std::vector<Started> StartInPieces(void* data, int64_t count, MPI_Datatype type, const char* what,
                                     StartPiece start) {
    const auto started_at = std::chrono::steady_clock::now();
    int bytes = 0;
    MPI_Type_size(type, &bytes);
    traffic_.bytes += count * bytes;
    std::vector<Started> requests;
    char* at = static_cast<char*>(data);
    for (int64_t done = 0; done < count;) {
      const int n = static_cast<int>(std::min(kMaxPiece, count - done));
      start(at + done * bytes, n, &requests.emplace_back(Started{MPI_REQUEST_NULL, what}).request);
      done += n;
    }
    traffic_.seconds += SecondsSince(started_at);
    return requests;
  }

  // Waits for every request, at most --collective_timeout in all.
  void WaitFor(std::vector<Started> requests) {
    const auto start = std::chrono::steady_clock::now();
    for (Started& s : requests) {
      for (int polls = 0;; ++polls) {
        int done = 0;
        MPI_Test(&s.request, &done, MPI_STATUS_IGNORE);
        if (done) break;
        if (polls < kSpinPolls) continue;
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        if (SecondsSince(start) > timeout_seconds_) {
          Abort(absl::StrFormat(
              "%s did not complete within %g s (--collective_timeout): another rank has stopped "
              "or stalled",
              s.what, timeout_seconds_));
        }
      }
    }
    traffic_.seconds += SecondsSince(start);
  }

  double timeout_seconds_;
  CollectiveTraffic traffic_;
  int rank_ = 0;
  int size_ = 1;
  std::vector<Started> started_;  // by StartSum, until FinishSums
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

// Prints how far apart two training checkpoints are: the largest relative
// distance ||a - b|| / ||a|| over their tensors and the SGD momentum, and
// which tensor it is in. tests/data_parallel_test.sh compares data-parallel
// runs with one-process runs by it.
//
//   checkpoint_distance A/checkpoint.pb B/checkpoint.pb
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "trainer/checkpoint.h"

namespace qforge {
namespace {

std::vector<float> Floats(const std::string& bytes) {
  std::vector<float> values(bytes.size() / sizeof(float));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
  return values;
}

// ||a - b|| / ||a||, or ||a - b|| where ||a|| < 1 (a running mean near 0).
// a and b have the same size.
double Distance(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(a[i]) * a[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1.0);
}

int Run(const char* path_a, const char* path_b) {
  absl::StatusOr<Checkpoint> a = ReadCheckpoint(path_a);
  absl::StatusOr<Checkpoint> b = ReadCheckpoint(path_b);
  for (const auto* c : {&a, &b}) {
    if (!c->ok()) {
      std::fprintf(stderr, "checkpoint_distance: %s\n", std::string(c->status().message()).c_str());
      return 2;
    }
  }
  if (a->momentum().size() != b->momentum().size() || a->tensors_size() != b->tensors_size()) {
    std::fprintf(stderr, "checkpoint_distance: the checkpoints hold different tensors\n");
    return 2;
  }
  std::map<std::string, std::vector<float>> tensors_b;
  for (const NamedTensor& t : b->tensors()) tensors_b[t.name()] = Floats(t.data());
  double worst = Distance(Floats(a->momentum()), Floats(b->momentum()));
  std::string where = "the momentum";
  for (const NamedTensor& t : a->tensors()) {
    auto found = tensors_b.find(t.name());
    const std::vector<float> values = Floats(t.data());
    if (found == tensors_b.end() || found->second.size() != values.size()) {
      std::fprintf(stderr, "checkpoint_distance: %s is missing or differs in shape\n",
                   t.name().c_str());
      return 2;
    }
    const double d = Distance(values, found->second);
    if (d > worst) {
      worst = d;
      where = t.name();
    }
  }
  std::printf("%.3g %s\n", worst, where.c_str());
  return 0;
}

}  // namespace
}  // namespace qforge

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: checkpoint_distance A/checkpoint.pb B/checkpoint.pb\n");
    return 2;
  }
  return qforge::Run(argv[1], argv[2]);
}

#include "trainer/dist/collectives.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace qforge {

void SingleProcess::Abort(const std::string& message) {
  std::fprintf(stderr, "qforge: %s\n", message.c_str());
  std::exit(1);
}

namespace {

// FNV-1a of a block's bytes.
uint64_t Fingerprint(const std::vector<float>& block) {
  uint64_t h = 0xcbf29ce484222325ULL;
  const auto* bytes = reinterpret_cast<const unsigned char*>(block.data());
  for (size_t i = 0; i < block.size() * sizeof(float); ++i) h = (h ^ bytes[i]) * 0x100000001b3ULL;
  return h;
}

}  // namespace

void StopAllIfFailed(Collectives& ranks, const absl::Status& status) {
  if (ranks.size() > 1 && !status.ok()) ranks.Abort(std::string(status.message()));
}

void MendDrift(Collectives& ranks, std::initializer_list<std::vector<float>*> blocks) {
  if (ranks.size() == 1) return;
  std::string mine;
  for (const std::vector<float>* block : blocks) absl::StrAppend(&mine, Fingerprint(*block), ",");
  std::string rank0 = mine;
  ranks.Broadcast(rank0, "the parameter check");
  double drifted = rank0 != mine ? 1 : 0;
  ranks.Sum(&drifted, 1, "the parameter check");
  if (drifted == 0) return;
  if (ranks.rank() == 0) {
    std::fprintf(stderr, "qforge: parameters drifted apart on %.0f rank(s); they take rank 0's\n",
                 drifted);
  }
  for (std::vector<float>* block : blocks) {
    ranks.Broadcast(block->data(), static_cast<int64_t>(block->size()), "the parameters");
  }
}

}  // namespace qforge

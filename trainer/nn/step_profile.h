// Where a training step's time goes, by pass and kind of layer, for
// `train_benchmark --profile`. Off unless a profile is active: then each
// ProfileScope adds its wall time to the active profile's table.
#ifndef QFORGE_TRAINER_NN_STEP_PROFILE_H_
#define QFORGE_TRAINER_NN_STEP_PROFILE_H_

#include <chrono>
#include <map>
#include <string>
#include <utility>

namespace qforge {

class StepProfile {
 public:
  // Seconds by (pass, kind), e.g. ("backward", "depthwise conv").
  using Table = std::map<std::pair<std::string, std::string>, double>;

  void Add(const char* pass, const char* kind, double seconds) { table_[{pass, kind}] += seconds; }
  const Table& table() const { return table_; }

 private:
  Table table_;
};

// The profile scopes add to (null: none). Not thread safe: set it between
// steps, from the thread that runs them.
void SetActiveProfile(StepProfile* profile);
StepProfile* ActiveProfile();

class ProfileScope {
 public:
  ProfileScope(const char* pass, const char* kind)
      : profile_(ActiveProfile()), pass_(pass), kind_(kind) {
    if (profile_ != nullptr) start_ = std::chrono::steady_clock::now();
  }
  ~ProfileScope() {
    if (profile_ == nullptr) return;
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start_;
    profile_->Add(pass_, kind_, elapsed.count());
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  StepProfile* profile_;
  const char* pass_;
  const char* kind_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_NN_STEP_PROFILE_H_

#include "trainer/nn/step_profile.h"

namespace qforge {
namespace {
StepProfile* active_profile = nullptr;
}  // namespace

void SetActiveProfile(StepProfile* profile) { active_profile = profile; }
StepProfile* ActiveProfile() { return active_profile; }

}  // namespace qforge

// A model's layers by name and kind, as PyTorch's named_modules() lists them,
// for code that addresses layers the way the tutorial does (fusion by name).
// An activation the trainer fuses into the layer before it (BatchNorm2d's
// clamp) is still listed under its PyTorch name, without parameters.
#ifndef QFORGE_TRAINER_NN_MODULE_H_
#define QFORGE_TRAINER_NN_MODULE_H_

#include <string>
#include <vector>

#include "trainer/nn/batch_norm.h"
#include "trainer/nn/conv2d.h"
#include "trainer/nn/linear.h"

namespace qforge {

struct Module {
  enum Kind { kConv2d, kBatchNorm2d, kReLU, kReLU6, kLinear };
  std::string name;  // e.g. "features.0.0"
  Kind kind;
  const Conv2d* conv = nullptr;        // kConv2d
  const BatchNorm2d* bn = nullptr;     // kBatchNorm2d
  const Linear* linear = nullptr;      // kLinear
};

// The module called `name`, or null.
inline const Module* FindModule(const std::vector<Module>& modules, const std::string& name) {
  for (const Module& m : modules) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

}  // namespace qforge

#endif  // QFORGE_TRAINER_NN_MODULE_H_

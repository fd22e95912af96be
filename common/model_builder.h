// Helpers that assemble a flat model (common/model.proto) in code: for tests,
// the MobileNetV2 benchmark builder and the trainer's convert. They fill fields;
// they do not validate (the runtime does, and tests rely on building broken
// models on purpose).
#ifndef QFORGE_COMMON_MODEL_BUILDER_H_
#define QFORGE_COMMON_MODEL_BUILDER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/model.pb.h"

namespace qforge {

class ModelBuilder {
 public:
  ModelBuilder();

  // A tensor the ops compute (or a model input); returns its id.
  int AddFloatTensor(const std::string& name, const std::vector<int64_t>& shape);
  int AddInt8Tensor(const std::string& name, const std::vector<int64_t>& shape, float scale,
                    int32_t zero_point);

  // Constants, symmetric (no zero points written). Per-channel int8 weights
  // pass one scale per index along `axis`; a bias may pass no scales, leaving
  // the runtime to imply input_scale * weight_scale[c].
  int AddFloatConstant(const std::string& name, const std::vector<int64_t>& shape,
                       const std::vector<float>& values);
  int AddInt8Constant(const std::string& name, const std::vector<int64_t>& shape,
                      const std::vector<int8_t>& values, const std::vector<float>& scales,
                      int axis = 0);
  int AddInt32Constant(const std::string& name, const std::vector<int64_t>& shape,
                       const std::vector<int32_t>& values, const std::vector<float>& scales,
                       int axis = 0);

  Op& AddOp(OpKind kind, const std::string& name, const std::vector<int>& inputs, int output,
            Activation activation = ACTIVATION_NONE);
  // A Conv2D with symmetric padding `pad` on every side.
  Op& AddConv2D(const std::string& name, int input, int filter, int bias, int output, int stride,
                int pad, int groups, Activation activation);

  void AddInput(int id) { model_.add_inputs(id); }
  void AddOutput(int id) { model_.add_outputs(id); }

  Model& model() { return model_; }

 private:
  Tensor& NewTensor(const std::string& name, const std::vector<int64_t>& shape, ElementType type);
  Model model_;
};

}  // namespace qforge

#endif  // QFORGE_COMMON_MODEL_BUILDER_H_

// A valid small int8 model, then that model broken one field at a time: each
// break must give InvalidArgument naming the tensor or op and the bad value.
#include "runtime/model_validator.h"

#include <functional>
#include <string>
#include <vector>

#include "common/model_builder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qforge {
namespace {

using ::testing::HasSubstr;

// float [1,4,4,2] -> QUANTIZE -> CONV2D 3x3 pad 1 (per-channel) -> DEQUANTIZE.
// Tensor ids: 0 input, 1 quantized, 2 weights, 3 bias, 4 conv out, 5 output.
Model ValidModel() {
  ModelBuilder b;
  const int input = b.AddFloatTensor("input", {1, 4, 4, 2});
  const int quantized = b.AddInt8Tensor("quantized", {1, 4, 4, 2}, 0.02f, 3);
  const int weights = b.AddInt8Constant("conv.weight", {3, 3, 3, 2},
                                        std::vector<int8_t>(54, 1), {0.01f, 0.02f, 0.03f});
  const int bias = b.AddInt32Constant("conv.bias", {3}, {1, 2, 3},
                                      {0.0002f, 0.0004f, 0.0006f});
  const int conv = b.AddInt8Tensor("conv.out", {1, 4, 4, 3}, 0.05f, -128);
  const int output = b.AddFloatTensor("output", {1, 4, 4, 3});
  b.AddOp(QUANTIZE, "quant", {input}, quantized);
  b.AddConv2D("conv", quantized, weights, bias, conv, /*stride=*/1, /*pad=*/1, /*groups=*/1, RELU);
  b.AddOp(DEQUANTIZE, "dequant", {conv}, output);
  b.AddInput(input);
  b.AddOutput(output);
  return b.model();
}

TEST(ValidateModel, AcceptsTheValidModel) {
  EXPECT_TRUE(ValidateModel(ValidModel()).ok()) << ValidateModel(ValidModel());
}

struct Break {
  std::string what;
  std::function<void(Model&)> mutate;
  std::string expected;  // a substring of the error message
};

std::vector<Break> Breaks() {
  return {
      {"version", [](Model& m) { m.set_format_version(2); }, "format version 2"},
      {"no version", [](Model& m) { m.clear_format_version(); }, "format version 0"},
      {"no tensors", [](Model& m) { m.clear_tensors(); }, "no tensors"},
      {"no ops", [](Model& m) { m.clear_ops(); }, "no ops"},
      {"no inputs", [](Model& m) { m.clear_inputs(); }, "no inputs"},
      {"no outputs", [](Model& m) { m.clear_outputs(); }, "no outputs"},
      {"rank 0", [](Model& m) { m.mutable_tensors(0)->clear_shape(); }, "tensor 0 'input': rank 0"},
      {"rank 7", [](Model& m) { for (int i = 0; i < 3; ++i) m.mutable_tensors(0)->add_shape(1); },
       "rank 7"},
      {"zero dim", [](Model& m) { m.mutable_tensors(1)->set_shape(2, 0); }, "dimension 2 is 0"},
      {"negative dim", [](Model& m) { m.mutable_tensors(4)->set_shape(0, -5); }, "dimension 0 is -5"},
      {"huge", [](Model& m) { m.mutable_tensors(4)->set_shape(1, int64_t{1} << 40); },
       "tensor limit"},
      {"overflowing product",
       [](Model& m) {
         for (int d = 0; d < 4; ++d) m.mutable_tensors(5)->set_shape(d, int64_t{1} << 31);
       },
       "tensor limit"},
      {"bad type", [](Model& m) { m.mutable_tensors(4)->set_type(static_cast<ElementType>(9)); },
       "element type 9"},
      {"unspecified type", [](Model& m) { m.mutable_tensors(4)->set_type(ELEMENT_TYPE_UNSPECIFIED); },
       "element type 0"},
      {"quantized float", [](Model& m) { m.mutable_tensors(0)->mutable_quantization()->add_scale(1); },
       "FLOAT32 tensor must not be quantized"},
      {"no scale", [](Model& m) { m.mutable_tensors(1)->clear_quantization(); },
       "'quantized': INT8 tensor has no quantization scale"},
      {"zero scale", [](Model& m) { m.mutable_tensors(1)->mutable_quantization()->set_scale(0, 0); },
       "scale 0 must be finite"},
      {"nan scale",
       [](Model& m) { m.mutable_tensors(2)->mutable_quantization()->set_scale(1, NAN); },
       "quantization 1: scale nan"},
      {"inf scale",
       [](Model& m) { m.mutable_tensors(4)->mutable_quantization()->set_scale(0, INFINITY); },
       "scale inf"},
      {"zero point range",
       [](Model& m) { m.mutable_tensors(1)->mutable_quantization()->set_zero_point(0, 200); },
       "zero point 200"},
      {"bias zero point",
       [](Model& m) {
         for (int zp : {0, 0, 1}) m.mutable_tensors(3)->mutable_quantization()->add_zero_point(zp);
       },
       "'conv.bias': quantization 2: zero point 1"},
      {"zero point count",
       [](Model& m) { m.mutable_tensors(2)->mutable_quantization()->add_zero_point(0); },
       "3 scales but 1 zero points"},
      {"scale count",
       [](Model& m) { m.mutable_tensors(2)->mutable_quantization()->add_scale(0.1f); },
       "4 scales for 3 channels"},
      {"int8 without scales",
       [](Model& m) { m.mutable_tensors(2)->clear_quantization(); },
       "INT8 tensor has no quantization scale"},
      {"axis", [](Model& m) { m.mutable_tensors(2)->mutable_quantization()->set_axis(4); },
       "quantization axis 4"},
      {"short data", [](Model& m) { m.mutable_tensors(2)->mutable_data()->pop_back(); },
       "constant data is 53 bytes but the shape needs 54"},
      {"long data", [](Model& m) { m.mutable_tensors(3)->mutable_data()->append("x"); },
       "13 bytes but the shape needs 12"},
      {"input id", [](Model& m) { m.set_inputs(0, 6); }, "tensor id 6 is outside [0, 6)"},
      {"negative input id", [](Model& m) { m.set_inputs(0, -1); }, "tensor id -1"},
      {"constant input", [](Model& m) { m.set_inputs(0, 2); }, "must not be a constant"},
      {"output id", [](Model& m) { m.set_outputs(0, 99); }, "tensor id 99"},
      {"output not produced", [](Model& m) { m.set_outputs(0, 0); }, "must be produced by an op"},
      {"output twice", [](Model& m) { m.add_outputs(5); },
       "tensor 5 'output': is listed twice as a model output"},
      {"int32 output",
       [](Model& m) {
         m.mutable_tensors(5)->set_type(INT32);
         m.mutable_tensors(5)->mutable_quantization()->add_scale(0.1f);
       },
       "a model output must be FLOAT32 or INT8, not INT32"},
      {"int32 input", [](Model& m) { m.mutable_tensors(0)->set_type(INT32); },
       "a model input must be FLOAT32 or INT8, not INT32"},
      {"per-channel activation",
       [](Model& m) {
         Quantization* q = m.mutable_tensors(4)->mutable_quantization();
         q->clear_zero_point();
         for (float s : {0.05f, 0.06f}) q->add_scale(s);
         q->set_axis(3);
       },
       "'conv.out': has 3 scales; only constants may be quantized per channel"},
      {"op kind", [](Model& m) { m.mutable_ops(1)->set_kind(static_cast<OpKind>(42)); },
       "op 1 'conv' (kind 42): op kind 42"},
      {"unspecified op", [](Model& m) { m.mutable_ops(0)->set_kind(OP_KIND_UNSPECIFIED); },
       "op kind 0"},
      {"op input id", [](Model& m) { m.mutable_ops(1)->set_inputs(1, 17); }, "tensor id 17"},
      {"op output id", [](Model& m) { m.mutable_ops(2)->set_outputs(0, -3); }, "tensor id -3"},
      {"no op inputs", [](Model& m) { m.mutable_ops(2)->clear_inputs(); }, "has 0 inputs"},
      {"two op outputs", [](Model& m) { m.mutable_ops(2)->add_outputs(5); }, "and 2 outputs"},
      {"read before write", [](Model& m) { m.mutable_ops()->SwapElements(0, 1); },
       "reads tensor 1 'quantized' before any op produces it"},
      {"write twice", [](Model& m) { m.mutable_ops(2)->set_outputs(0, 4); },
       "writes tensor 4 'conv.out'"},
      {"write a constant", [](Model& m) { m.mutable_ops(0)->set_outputs(0, 3); },
       "writes tensor 3 'conv.bias'"},
      {"write the input", [](Model& m) { m.mutable_ops(2)->set_outputs(0, 0); },
       "writes tensor 0 'input'"},
      {"preprocessing channels",
       [](Model& m) {
         m.mutable_preprocessing()->set_pixel_scale(1.0f / 255);
         m.mutable_preprocessing()->add_mean(0.5f);
         m.mutable_preprocessing()->add_std(0.5f);
       },
       "1 means and 1 stds for 2 input channels"},
      {"preprocessing std",
       [](Model& m) {
         m.mutable_preprocessing()->set_pixel_scale(1.0f / 255);
         for (int c = 0; c < 2; ++c) m.mutable_preprocessing()->add_mean(0.5f);
         for (float s : {0.5f, 0.0f}) m.mutable_preprocessing()->add_std(s);
       },
       "preprocessing channel 1: mean 0.5, std 0"},
      {"preprocessing scale",
       [](Model& m) {
         for (int c = 0; c < 2; ++c) m.mutable_preprocessing()->add_mean(0.5f);
         for (int c = 0; c < 2; ++c) m.mutable_preprocessing()->add_std(0.5f);
       },
       "pixel_scale 0 must be finite"},
      {"preprocessing resize",
       [](Model& m) {
         m.mutable_preprocessing()->set_pixel_scale(1.0f / 255);
         for (int c = 0; c < 2; ++c) m.mutable_preprocessing()->add_mean(0.5f);
         for (int c = 0; c < 2; ++c) m.mutable_preprocessing()->add_std(0.5f);
         m.mutable_preprocessing()->set_resize(1);
       },
       "preprocessing resize 1 is below the input's size"},
  };
}

TEST(ValidateModel, EveryBrokenFieldGivesANamedError) {
  const std::vector<Break> breaks = Breaks();
  EXPECT_GE(breaks.size(), 30u);
  for (const Break& b : breaks) {
    Model model = ValidModel();
    b.mutate(model);
    const absl::Status status = ValidateModel(model);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << b.what << ": " << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(b.expected)) << b.what;
  }
}

// float [1,2] -> FULLY_CONNECTED (float weights [3,2], bias [3]).
Model FloatModel(float weight, float bias) {
  ModelBuilder b;
  const int input = b.AddFloatTensor("input", {1, 2});
  const int weights = b.AddFloatConstant("fc.weight", {3, 2}, {0.5f, -1, 2, 1, 0, weight});
  const int biases = b.AddFloatConstant("fc.bias", {3}, {0.1f, bias, 0.3f});
  const int output = b.AddFloatTensor("output", {1, 3});
  b.AddOp(FULLY_CONNECTED, "fc", {input, weights, biases}, output);
  b.AddInput(input);
  b.AddOutput(output);
  return b.model();
}

TEST(ValidateModel, RefusesNonFiniteFloatConstantsNamingThem) {
  EXPECT_TRUE(ValidateModel(FloatModel(1, 1)).ok());
  EXPECT_TRUE(ValidateModel(FloatModel(3e38f, -3e38f)).ok());  // finite, if unwise
  const absl::Status nan = ValidateModel(FloatModel(NAN, 1));
  EXPECT_THAT(std::string(nan.message()),
              HasSubstr("tensor 1 'fc.weight': constant value 5 is nan; float constants must be "
                        "finite"));
  const absl::Status inf = ValidateModel(FloatModel(1, -INFINITY));
  EXPECT_THAT(std::string(inf.message()), HasSubstr("tensor 2 'fc.bias': constant value 1 is -inf"));
}

TEST(ElementCount, CountsAndRejects) {
  Tensor t;
  t.set_type(FLOAT32);
  for (int64_t d : {2, 3, 4}) t.add_shape(d);
  EXPECT_EQ(*ElementCount(t), 24);
  t.set_shape(0, kMaxTensorBytes / 4 / 12 + 1);
  EXPECT_FALSE(ElementCount(t).ok());
  t.set_shape(0, kMaxTensorBytes / 4 / 12);
  EXPECT_TRUE(ElementCount(t).ok());
}

}  // namespace
}  // namespace qforge

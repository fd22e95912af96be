#include "tools/model_summary.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/model_builder.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace qforge {
namespace {

// quantize -> 3x3 conv (per-channel weights, bias, ReLU6) -> dequantize.
Model SmallModel() {
  ModelBuilder b;
  const int x = b.AddFloatTensor("input", {1, 4, 4, 2});
  const int q = b.AddInt8Tensor("quant", {1, 4, 4, 2}, 0.02f, -3);
  const int w = b.AddInt8Constant("conv.weight", {3, 3, 3, 2}, std::vector<int8_t>(54, 1),
                                  {0.01f, 0.03f, 0.02f});
  const int bias = b.AddInt32Constant("conv.bias", {3}, {1, 2, 3}, {});
  const int y = b.AddInt8Tensor("conv", {1, 4, 4, 3}, 0.05f, -128);
  const int out = b.AddFloatTensor("output", {1, 4, 4, 3});
  b.AddOp(QUANTIZE, "quant", {x}, q);
  b.AddConv2D("features.0.0", q, w, bias, y, /*stride=*/1, /*pad=*/1, /*groups=*/1, RELU6);
  b.AddOp(DEQUANTIZE, "dequant", {y}, out);
  b.AddInput(x);
  b.AddOutput(out);
  Model& m = b.model();
  m.mutable_preprocessing()->set_pixel_scale(1.0f / 255);
  m.mutable_preprocessing()->add_mean(0.5f);
  m.mutable_preprocessing()->add_std(0.25f);
  m.mutable_metadata()->add_class_names("T-shirt/\"top\"");
  m.mutable_metadata()->set_producer("test");
  m.mutable_metadata()->set_accuracy_top1(0.9f);
  m.mutable_metadata()->set_accuracy_images(100);
  return m;
}

TEST(ModelSummary, TableShowsOpsTensorsAndBytes) {
  const std::string text = SummaryText(SmallModel(), 1234);
  EXPECT_NE(text.find("3 ops, 6 tensors; 66 bytes of constants; file 1234 bytes"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("| 1 | features.0.0 | CONV2D 3x3 stride 1 pad 1 groups 1 + RELU6 |"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("conv.weight [3, 3, 3, 2] int8 per-channel axis 0: 3 scales in [0.01, 0.03]"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("quant [1, 4, 4, 2] int8 s=0.02 z=-3"), std::string::npos) << text;
  EXPECT_NE(text.find("top-1 90.00% on 100 images"), std::string::npos) << text;
  EXPECT_NE(text.find("| 66 |"), std::string::npos) << text;  // the conv's weights and bias
}

TEST(ModelSummary, TableNamesTheFirstTenClassesOnly) {
  Model m = SmallModel();
  for (int k = 1; k < 1000; ++k) m.mutable_metadata()->add_class_names(absl::StrCat("c", k));
  const std::string text = SummaryText(m, 1234);
  EXPECT_NE(text.find("1000 classes (T-shirt/\"top\", c1, c2, c3, c4, c5, c6, c7, c8, c9, ...)"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("c10"), std::string::npos);
}

// The JSON parses (protobuf's own parser, into a Struct) and carries the same
// figures, strings escaped.
TEST(ModelSummary, JsonParsesAndCarriesTheFigures) {
  const std::string json = SummaryJson(SmallModel(), 1234);
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed).ok()) << json;
  const auto& f = parsed.fields();
  EXPECT_EQ(f.at("constant_bytes").number_value(), 66);
  EXPECT_EQ(f.at("file_bytes").number_value(), 1234);
  const auto& ops = f.at("ops").list_value().values();
  ASSERT_EQ(ops.size(), 3);
  const auto& conv = ops[1].struct_value().fields();
  EXPECT_EQ(conv.at("kind").string_value(), "CONV2D");
  EXPECT_EQ(conv.at("activation").string_value(), "RELU6");
  EXPECT_EQ(conv.at("constant_bytes").number_value(), 66);
  const auto& weight = conv.at("inputs").list_value().values()[1].struct_value().fields();
  EXPECT_EQ(weight.at("quantization").struct_value().fields().at("scale").list_value().values_size(),
            3);
  EXPECT_EQ(f.at("metadata").struct_value().fields().at("class_names").list_value().values(0)
                .string_value(),
            "T-shirt/\"top\"");
}

}  // namespace
}  // namespace qforge

// The C API's contract: statuses and messages for every misuse, inputs and
// outputs converted between float and int8 as documented.
#include <string>
#include <vector>

#include "common/model_builder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/qforge.h"

namespace qforge {
namespace {

using ::testing::HasSubstr;

// int8 input [1, 1, 1, 2] (scale 0.5, zp 0) -> ADD with itself -> int8 output
// (scale 1, zp 0); preprocessing pixel / 255 * 2 with mean 0, std 1.
std::string ModelBytes(bool with_preprocessing) {
  ModelBuilder b;
  const int x = b.AddInt8Tensor("x", {1, 1, 1, 2}, 0.5f, 0);
  const int y = b.AddInt8Tensor("y", {1, 1, 1, 2}, 1.0f, 0);
  b.AddOp(ADD, "double", {x, x}, y);
  b.AddInput(x);
  b.AddOutput(y);
  if (with_preprocessing) {
    Preprocessing* p = b.model().mutable_preprocessing();
    p->set_pixel_scale(2.0f / 255);
    for (int c = 0; c < 2; ++c) p->add_mean(0.0f), p->add_std(1.0f);
  }
  b.model().mutable_metadata()->add_class_names("first");
  return b.model().SerializeAsString();
}

struct Loaded {
  qforge_model* model = nullptr;
  qforge_interpreter* it = nullptr;
  explicit Loaded(bool with_preprocessing = true,
                  qforge_backend backend = QFORGE_BACKEND_FAST) {
    const std::string bytes = ModelBytes(with_preprocessing);
    EXPECT_EQ(qforge_model_load_buffer(bytes.data(), bytes.size(), &model), QFORGE_OK);
    EXPECT_EQ(qforge_interpreter_create(model, backend, 1, &it), QFORGE_OK);
  }
  ~Loaded() {
    qforge_interpreter_destroy(it);
    qforge_model_destroy(model);
  }
};

TEST(CApi, RunsWithFloatAndPixelInputs) {
  Loaded l;
  const float x[2] = {1.0f, -2.5f};
  ASSERT_EQ(qforge_interpreter_set_input_float(l.it, 0, x, 2), QFORGE_OK);
  ASSERT_EQ(qforge_interpreter_invoke(l.it), QFORGE_OK);
  float y[2];
  ASSERT_EQ(qforge_interpreter_get_output_float(l.it, 0, y, 2), QFORGE_OK);
  EXPECT_FLOAT_EQ(y[0], 2.0f);
  EXPECT_FLOAT_EQ(y[1], -5.0f);
  int8_t q[2];
  ASSERT_EQ(qforge_interpreter_get_output_int8(l.it, 0, q, 2), QFORGE_OK);
  EXPECT_EQ(q[1], -5);
  // Pixels 255 and 51 -> 2.0 and 0.4 -> doubled -> 4 and 1 (0.8 rounds to 1).
  const uint8_t pixels[2] = {255, 51};
  ASSERT_EQ(qforge_interpreter_set_input_pixels(l.it, 0, pixels, 2), QFORGE_OK);
  ASSERT_EQ(qforge_interpreter_invoke(l.it), QFORGE_OK);
  ASSERT_EQ(qforge_interpreter_get_output_float(l.it, 0, y, 2), QFORGE_OK);
  EXPECT_FLOAT_EQ(y[0], 4.0f);
  EXPECT_FLOAT_EQ(y[1], 1.0f);
}

TEST(CApi, DescribesTensorsAndMetadata) {
  Loaded l;
  qforge_tensor_info info;
  ASSERT_EQ(qforge_interpreter_input_info(l.it, 0, &info), QFORGE_OK);
  EXPECT_STREQ(info.name, "x");
  EXPECT_EQ(info.rank, 4);
  EXPECT_EQ(info.shape[3], 2);
  EXPECT_EQ(info.type, QFORGE_INT8);
  EXPECT_FLOAT_EQ(info.scale, 0.5f);
  EXPECT_EQ(qforge_model_num_classes(l.model), 1);
  EXPECT_STREQ(qforge_model_class_name(l.model, 0), "first");
  EXPECT_EQ(qforge_model_class_name(l.model, 1), nullptr);
  float scale, mean[4], std[4];
  int channels;
  ASSERT_EQ(qforge_model_preprocessing(l.model, &scale, mean, std, 4, &channels), QFORGE_OK);
  EXPECT_EQ(channels, 2);
  EXPECT_FLOAT_EQ(std[1], 1.0f);
}

TEST(CApi, MisuseGivesStatusesAndMessages) {
  Loaded l;
  float data[3] = {0, 0, 0};
  EXPECT_EQ(qforge_interpreter_set_input_float(l.it, 0, data, 3), QFORGE_INVALID_ARGUMENT);
  EXPECT_THAT(qforge_last_error(), HasSubstr("tensor 'x' has 2 elements, not 3"));
  EXPECT_EQ(qforge_interpreter_set_input_float(l.it, 1, data, 2), QFORGE_INVALID_ARGUMENT);
  EXPECT_THAT(qforge_last_error(), HasSubstr("input index 1 is outside [0, 1)"));
  EXPECT_EQ(qforge_interpreter_get_output_float(l.it, -1, data, 2), QFORGE_INVALID_ARGUMENT);
  EXPECT_EQ(qforge_interpreter_set_input_float(l.it, 0, nullptr, 2), QFORGE_INVALID_ARGUMENT);
  EXPECT_EQ(qforge_interpreter_invoke(nullptr), QFORGE_INVALID_ARGUMENT);
  qforge_tensor_info info;
  EXPECT_EQ(qforge_interpreter_output_info(l.it, 5, &info), QFORGE_INVALID_ARGUMENT);

  qforge_model* model = nullptr;
  EXPECT_EQ(qforge_model_load_file("/nonexistent.qfm", &model), QFORGE_NOT_FOUND);
  EXPECT_THAT(qforge_last_error(), HasSubstr("/nonexistent.qfm"));
  EXPECT_EQ(qforge_model_load_buffer("junk", 4, &model), QFORGE_INVALID_ARGUMENT);
  EXPECT_THAT(qforge_last_error(), HasSubstr("not a qforge model"));
  EXPECT_EQ(model, nullptr);
  qforge_interpreter* it = nullptr;
  EXPECT_EQ(qforge_interpreter_create(l.model, static_cast<qforge_backend>(9), 1, &it),
            QFORGE_INVALID_ARGUMENT);
  EXPECT_EQ(qforge_interpreter_create(l.model, QFORGE_BACKEND_REFERENCE, 0, &it),
            QFORGE_INVALID_ARGUMENT);
}

TEST(CApi, EveryBackendComputesTheSame) {
  // QFORGE_BACKEND_XNNPACK, the fast backend's earlier name, still compiles.
  for (qforge_backend backend : {QFORGE_BACKEND_XNNPACK, QFORGE_BACKEND_REFERENCE,
                                 QFORGE_BACKEND_XNNPACK_ONLY}) {
    Loaded l(/*with_preprocessing=*/true, backend);
    const float x[2] = {1.0f, -2.5f};
    ASSERT_EQ(qforge_interpreter_set_input_float(l.it, 0, x, 2), QFORGE_OK);
    ASSERT_EQ(qforge_interpreter_invoke(l.it), QFORGE_OK);
    int8_t q[2];
    ASSERT_EQ(qforge_interpreter_get_output_int8(l.it, 0, q, 2), QFORGE_OK);
    EXPECT_EQ(q[0], 2) << "backend " << backend;
    EXPECT_EQ(q[1], -5) << "backend " << backend;
  }
}

TEST(CApi, PixelsNeedDeclaredPreprocessing) {
  Loaded l(/*with_preprocessing=*/false);
  const uint8_t pixels[2] = {1, 2};
  EXPECT_EQ(qforge_interpreter_set_input_pixels(l.it, 0, pixels, 2), QFORGE_INVALID_ARGUMENT);
  EXPECT_THAT(qforge_last_error(), HasSubstr("declares no preprocessing"));
}

TEST(CApi, LoadLimitsRefuseWithTheirOwnStatus) {
  const qforge_load_limits defaults = qforge_default_load_limits();
  EXPECT_EQ(defaults.max_arena_bytes, int64_t{1} << 30);
  EXPECT_EQ(defaults.max_constant_bytes, int64_t{1} << 30);
  EXPECT_EQ(defaults.max_multiply_adds, int64_t{100} << 30);
  const std::string bytes = ModelBytes(false);  // 2 int8 adds, a 128-byte arena
  qforge_model* model = nullptr;
  EXPECT_EQ(qforge_model_load_buffer_with_limits(bytes.data(), bytes.size(), nullptr, &model),
            QFORGE_INVALID_ARGUMENT);
  qforge_load_limits limits = defaults;
  limits.max_multiply_adds = 1;
  EXPECT_EQ(qforge_model_load_buffer_with_limits(bytes.data(), bytes.size(), &limits, &model),
            QFORGE_OVER_LIMIT);
  EXPECT_THAT(qforge_last_error(), HasSubstr("max_multiply_adds"));
  limits = defaults;
  limits.max_arena_bytes = 64;
  EXPECT_EQ(qforge_model_load_buffer_with_limits(bytes.data(), bytes.size(), &limits, &model),
            QFORGE_OVER_LIMIT);
  EXPECT_THAT(qforge_last_error(), HasSubstr("needs 128 bytes of arena"));
  limits.max_arena_bytes = 128;
  ASSERT_EQ(qforge_model_load_buffer_with_limits(bytes.data(), bytes.size(), &limits, &model),
            QFORGE_OK);
  qforge_model_destroy(model);
}

}  // namespace
}  // namespace qforge

// The flat model schema compiles, and a model survives a write and a read with
// its constant bytes and per-channel quantization intact.
#include <string>

#include "common/model.pb.h"
#include "gtest/gtest.h"

namespace qforge {
namespace {

Model TinyConvModel() {
  Model model;
  model.set_format_version(1);
  Tensor* input = model.add_tensors();
  input->set_name("input");
  for (int64_t d : {1, 4, 4, 2}) input->add_shape(d);
  input->set_type(INT8);
  input->mutable_quantization()->add_scale(0.5f);
  input->mutable_quantization()->add_zero_point(-3);

  Tensor* weights = model.add_tensors();
  weights->set_name("conv.weight");
  for (int64_t d : {2, 1, 1, 2}) weights->add_shape(d);
  weights->set_type(INT8);
  weights->mutable_quantization()->add_scale(0.01f);
  weights->mutable_quantization()->add_scale(0.02f);
  weights->mutable_quantization()->add_zero_point(0);
  weights->mutable_quantization()->add_zero_point(0);
  weights->set_data(std::string("\x7f\x81\x00\x01", 4));

  Op* conv = model.add_ops();
  conv->set_kind(CONV2D);
  conv->set_name("conv");
  conv->add_inputs(0);
  conv->add_inputs(1);
  conv->add_outputs(2);
  conv->set_activation(RELU6);
  conv->mutable_conv2d()->set_stride_h(1);
  conv->mutable_conv2d()->set_groups(1);
  model.add_inputs(0);
  model.add_outputs(2);
  model.mutable_metadata()->add_class_names("T-shirt/top");
  return model;
}

TEST(ModelProto, RoundTripsThroughBytes) {
  const Model written = TinyConvModel();
  std::string bytes;
  ASSERT_TRUE(written.SerializeToString(&bytes));
  Model read;
  ASSERT_TRUE(read.ParseFromString(bytes));
  EXPECT_EQ(read.format_version(), 1u);
  ASSERT_EQ(read.tensors_size(), 2);
  EXPECT_EQ(read.tensors(1).data(), std::string("\x7f\x81\x00\x01", 4));
  EXPECT_EQ(read.tensors(1).quantization().scale_size(), 2);
  EXPECT_EQ(read.ops(0).activation(), RELU6);
  EXPECT_EQ(read.metadata().class_names(0), "T-shirt/top");
  EXPECT_EQ(read.SerializeAsString(), bytes);
}

TEST(ModelProto, GarbageDoesNotParse) {
  Model read;
  // A length-delimited field whose length runs past the end of the buffer.
  EXPECT_FALSE(read.ParseFromString(std::string("\x12\x7f\x0a", 3)));
}

}  // namespace
}  // namespace qforge

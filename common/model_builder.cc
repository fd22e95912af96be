#include "common/model_builder.h"

#include <cstring>

namespace qforge {
namespace {

// Little-endian bytes of a vector of arithmetic values (x86 and ARM are
// little-endian; a big-endian port would swap here).
template <typename T>
std::string Bytes(const std::vector<T>& values) {
  std::string bytes(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

// Constants are symmetric: their zero points are left out (all zero).
void SetScales(Tensor& t, const std::vector<float>& scales, int axis) {
  Quantization* q = t.mutable_quantization();
  for (float s : scales) q->add_scale(s);
  q->set_axis(axis);
}

}  // namespace

ModelBuilder::ModelBuilder() { model_.set_format_version(1); }

Tensor& ModelBuilder::NewTensor(const std::string& name, const std::vector<int64_t>& shape,
                                ElementType type) {
  Tensor* t = model_.add_tensors();
  t->set_name(name);
  for (int64_t d : shape) t->add_shape(d);
  t->set_type(type);
  return *t;
}

int ModelBuilder::AddFloatTensor(const std::string& name, const std::vector<int64_t>& shape) {
  NewTensor(name, shape, FLOAT32);
  return model_.tensors_size() - 1;
}

int ModelBuilder::AddInt8Tensor(const std::string& name, const std::vector<int64_t>& shape,
                                float scale, int32_t zero_point) {
  Tensor& t = NewTensor(name, shape, INT8);
  SetScales(t, {scale}, 0);
  t.mutable_quantization()->add_zero_point(zero_point);
  return model_.tensors_size() - 1;
}

int ModelBuilder::AddFloatConstant(const std::string& name, const std::vector<int64_t>& shape,
                                   const std::vector<float>& values) {
  NewTensor(name, shape, FLOAT32).set_data(Bytes(values));
  return model_.tensors_size() - 1;
}

int ModelBuilder::AddInt8Constant(const std::string& name, const std::vector<int64_t>& shape,
                                  const std::vector<int8_t>& values,
                                  const std::vector<float>& scales, int axis) {
  Tensor& t = NewTensor(name, shape, INT8);
  t.set_data(Bytes(values));
  SetScales(t, scales, axis);
  return model_.tensors_size() - 1;
}

int ModelBuilder::AddInt32Constant(const std::string& name, const std::vector<int64_t>& shape,
                                   const std::vector<int32_t>& values,
                                   const std::vector<float>& scales, int axis) {
  Tensor& t = NewTensor(name, shape, INT32);
  t.set_data(Bytes(values));
  SetScales(t, scales, axis);
  return model_.tensors_size() - 1;
}

Op& ModelBuilder::AddOp(OpKind kind, const std::string& name, const std::vector<int>& inputs,
                        int output, Activation activation) {
  Op* op = model_.add_ops();
  op->set_kind(kind);
  op->set_name(name);
  for (int id : inputs) op->add_inputs(id);
  op->add_outputs(output);
  op->set_activation(activation);
  return *op;
}

Op& ModelBuilder::AddConv2D(const std::string& name, int input, int filter, int bias, int output,
                            int stride, int pad, int groups, Activation activation) {
  std::vector<int> inputs = {input, filter};
  if (bias >= 0) inputs.push_back(bias);
  Op& op = AddOp(CONV2D, name, inputs, output, activation);
  Conv2DAttributes* a = op.mutable_conv2d();
  a->set_stride_h(stride);
  a->set_stride_w(stride);
  a->set_dilation_h(1);
  a->set_dilation_w(1);
  a->set_pad_top(pad);
  a->set_pad_bottom(pad);
  a->set_pad_left(pad);
  a->set_pad_right(pad);
  a->set_groups(groups);
  return op;
}

}  // namespace qforge

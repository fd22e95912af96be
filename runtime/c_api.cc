// The C API (runtime/qforge.h) over CompiledModel and Interpreter. No C++
// exception or absl type crosses it: statuses become codes and a per-thread
// message.
#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/quantization.h"
#include "runtime/interpreter.h"
#include "runtime/model_validator.h"
#include "runtime/qforge.h"

struct qforge_model {
  std::shared_ptr<const qforge::CompiledModel> compiled;
};

struct qforge_interpreter {
  std::shared_ptr<const qforge::CompiledModel> compiled;
  std::unique_ptr<qforge::Interpreter> interpreter;
  std::vector<float> scratch;  // preprocessed pixels, reused across calls
};

namespace {

thread_local std::string last_error;

qforge_status Fail(qforge_status code, std::string message) {
  last_error = std::move(message);
  return code;
}

qforge_status FromStatus(const absl::Status& status) {
  if (status.ok()) return QFORGE_OK;
  qforge_status code = QFORGE_INTERNAL;
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      code = QFORGE_INVALID_ARGUMENT;
      break;
    case absl::StatusCode::kNotFound:
      code = QFORGE_NOT_FOUND;
      break;
    case absl::StatusCode::kUnimplemented:
      code = QFORGE_UNSUPPORTED;
      break;
    case absl::StatusCode::kResourceExhausted:
      code = QFORGE_OUT_OF_MEMORY;
      break;
    case absl::StatusCode::kOutOfRange:  // LoadLimits
      code = QFORGE_OVER_LIMIT;
      break;
    default:
      break;
  }
  return Fail(code, std::string(status.message()));
}

// Runs `body`, turning an allocation failure into a status: no C++ exception
// may reach the C caller.
template <typename Body>
qforge_status Guard(Body body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return Fail(QFORGE_OUT_OF_MEMORY, "out of memory");
  }
}

qforge_status Store(absl::StatusOr<std::shared_ptr<const qforge::CompiledModel>> compiled,
                    qforge_model** model) {
  if (!compiled.ok()) return FromStatus(compiled.status());
  *model = new (std::nothrow) qforge_model{*std::move(compiled)};
  return *model != nullptr ? QFORGE_OK : Fail(QFORGE_OUT_OF_MEMORY, "out of memory");
}

qforge::LoadLimits Limits(const qforge_load_limits& limits) {
  return {limits.max_arena_bytes, limits.max_constant_bytes, limits.max_multiply_adds};
}

void Describe(const qforge::Tensor& t, qforge_tensor_info* info) {
  info->name = t.name().c_str();
  info->rank = t.shape_size();
  for (int d = 0; d < t.shape_size() && d < QFORGE_MAX_RANK; ++d) info->shape[d] = t.shape(d);
  info->type = static_cast<qforge_type>(t.type());
  const bool quantized = t.quantization().scale_size() > 0;
  info->scale = quantized ? t.quantization().scale(0) : 0.0f;
  info->zero_point = quantized ? qforge::ZeroPointAt(t.quantization(), 0) : 0;
}

// Checks the interpreter and the index of input or output `index`.
qforge_status CheckIndex(const qforge_interpreter* it, bool input, int index) {
  if (it == nullptr) return Fail(QFORGE_INVALID_ARGUMENT, "interpreter is null");
  const int n = input ? it->interpreter->num_inputs() : it->interpreter->num_outputs();
  if (index < 0 || index >= n) {
    return Fail(QFORGE_INVALID_ARGUMENT,
                absl::StrCat(input ? "input" : "output", " index ", index, " is outside [0, ", n, ")"));
  }
  return QFORGE_OK;
}

// CheckIndex, and the exact element count of that input or output.
qforge_status CheckTensor(const qforge_interpreter* it, bool input, int index, size_t count) {
  if (qforge_status s = CheckIndex(it, input, index); s != QFORGE_OK) return s;
  const qforge::Tensor& t =
      input ? it->interpreter->input_tensor(index) : it->interpreter->output_tensor(index);
  if (static_cast<int64_t>(count) != qforge::NumElements(t)) {
    return Fail(QFORGE_INVALID_ARGUMENT, absl::StrCat("tensor '", t.name(), "' has ", qforge::NumElements(t),
                                                      " elements, not ", count));
  }
  return QFORGE_OK;
}

}  // namespace

extern "C" {

const char* qforge_last_error(void) { return last_error.c_str(); }

qforge_load_limits qforge_default_load_limits(void) {
  const qforge::LoadLimits limits;
  return {limits.max_arena_bytes, limits.max_constant_bytes, limits.max_multiply_adds};
}

qforge_status qforge_model_load_file(const char* path, qforge_model** model) {
  const qforge_load_limits limits = qforge_default_load_limits();
  return qforge_model_load_file_with_limits(path, &limits, model);
}

qforge_status qforge_model_load_buffer(const void* data, size_t size, qforge_model** model) {
  const qforge_load_limits limits = qforge_default_load_limits();
  return qforge_model_load_buffer_with_limits(data, size, &limits, model);
}

qforge_status qforge_model_load_file_with_limits(const char* path, const qforge_load_limits* limits,
                                                 qforge_model** model) {
  if (path == nullptr || limits == nullptr || model == nullptr) {
    return Fail(QFORGE_INVALID_ARGUMENT, "null argument");
  }
  return Guard(
      [&] { return Store(qforge::CompiledModel::FromFile(path, Limits(*limits)), model); });
}

qforge_status qforge_model_load_buffer_with_limits(const void* data, size_t size,
                                                   const qforge_load_limits* limits,
                                                   qforge_model** model) {
  if (data == nullptr || limits == nullptr || model == nullptr) {
    return Fail(QFORGE_INVALID_ARGUMENT, "null argument");
  }
  return Guard(
      [&] { return Store(qforge::CompiledModel::FromBuffer(data, size, Limits(*limits)), model); });
}

void qforge_model_destroy(qforge_model* model) { delete model; }

int qforge_model_num_classes(const qforge_model* model) {
  return model == nullptr ? 0 : model->compiled->model().metadata().class_names_size();
}

const char* qforge_model_class_name(const qforge_model* model, int index) {
  if (index < 0 || index >= qforge_model_num_classes(model)) return nullptr;
  return model->compiled->model().metadata().class_names(index).c_str();
}

qforge_status qforge_model_preprocessing(const qforge_model* model, float* pixel_scale,
                                         float* mean, float* std, int max_channels,
                                         int* channels) {
  if (model == nullptr || pixel_scale == nullptr || channels == nullptr) {
    return Fail(QFORGE_INVALID_ARGUMENT, "null argument");
  }
  const qforge::Preprocessing& p = model->compiled->model().preprocessing();
  *pixel_scale = p.pixel_scale();
  *channels = p.mean_size();
  for (int c = 0; c < p.mean_size() && c < max_channels; ++c) {
    if (mean != nullptr) mean[c] = p.mean(c);
    if (std != nullptr) std[c] = p.std(c);
  }
  return QFORGE_OK;
}

int qforge_model_eval_resize(const qforge_model* model) {
  return model == nullptr ? 0 : model->compiled->model().preprocessing().resize();
}

qforge_status qforge_interpreter_create(const qforge_model* model, qforge_backend backend,
                                        int num_threads, qforge_interpreter** interpreter) {
  if (model == nullptr || interpreter == nullptr) {
    return Fail(QFORGE_INVALID_ARGUMENT, "null argument");
  }
  qforge::Backend chosen;
  switch (backend) {
    case QFORGE_BACKEND_FAST: chosen = qforge::Backend::kFast; break;
    case QFORGE_BACKEND_REFERENCE: chosen = qforge::Backend::kReference; break;
    case QFORGE_BACKEND_XNNPACK_ONLY: chosen = qforge::Backend::kXnnpackOnly; break;
    default: return Fail(QFORGE_INVALID_ARGUMENT, absl::StrCat("unknown backend ", backend));
  }
  return Guard([&] {
    qforge::InterpreterOptions options;
    options.backend = chosen;
    options.num_threads = num_threads;
    absl::StatusOr<std::unique_ptr<qforge::Interpreter>> created =
        qforge::Interpreter::Create(model->compiled, options);
    if (!created.ok()) return FromStatus(created.status());
    *interpreter = new qforge_interpreter{model->compiled, *std::move(created), {}};
    return QFORGE_OK;
  });
}

void qforge_interpreter_destroy(qforge_interpreter* interpreter) { delete interpreter; }

int qforge_interpreter_num_inputs(const qforge_interpreter* it) {
  return it == nullptr ? 0 : it->interpreter->num_inputs();
}

int qforge_interpreter_num_outputs(const qforge_interpreter* it) {
  return it == nullptr ? 0 : it->interpreter->num_outputs();
}

qforge_status qforge_interpreter_input_info(const qforge_interpreter* it, int index,
                                            qforge_tensor_info* info) {
  if (qforge_status s = CheckIndex(it, /*input=*/true, index); s != QFORGE_OK) return s;
  if (info == nullptr) return Fail(QFORGE_INVALID_ARGUMENT, "info is null");
  Describe(it->interpreter->input_tensor(index), info);
  return QFORGE_OK;
}

qforge_status qforge_interpreter_output_info(const qforge_interpreter* it, int index,
                                             qforge_tensor_info* info) {
  if (qforge_status s = CheckIndex(it, /*input=*/false, index); s != QFORGE_OK) return s;
  if (info == nullptr) return Fail(QFORGE_INVALID_ARGUMENT, "info is null");
  Describe(it->interpreter->output_tensor(index), info);
  return QFORGE_OK;
}

qforge_status qforge_interpreter_set_input_float(qforge_interpreter* it, int index,
                                                 const float* data, size_t count) {
  if (qforge_status s = CheckTensor(it, /*input=*/true, index, count); s != QFORGE_OK) return s;
  if (data == nullptr) return Fail(QFORGE_INVALID_ARGUMENT, "data is null");
  const qforge::Tensor& t = it->interpreter->input_tensor(index);
  void* dst = it->interpreter->input_data(index);
  if (t.type() == qforge::FLOAT32) {
    std::memcpy(dst, data, count * sizeof(float));
  } else if (t.type() == qforge::INT8) {
    const qforge::QuantParams params{t.quantization().scale(0),
                                     qforge::ZeroPointAt(t.quantization(), 0)};
    int8_t* q = static_cast<int8_t*>(dst);
    for (size_t i = 0; i < count; ++i) q[i] = qforge::Quantize(data[i], params);
  } else {
    return Fail(QFORGE_INVALID_ARGUMENT, "input '" + t.name() + "' is neither float nor int8");
  }
  return QFORGE_OK;
}

qforge_status qforge_interpreter_set_input_pixels(qforge_interpreter* it, int index,
                                                  const uint8_t* pixels, size_t count) {
  if (qforge_status s = CheckTensor(it, /*input=*/true, index, count); s != QFORGE_OK) return s;
  if (pixels == nullptr) return Fail(QFORGE_INVALID_ARGUMENT, "pixels is null");
  const qforge::Preprocessing& p = it->compiled->model().preprocessing();
  const qforge::Tensor& t = it->interpreter->input_tensor(index);
  const int channels = static_cast<int>(t.shape(t.shape_size() - 1));
  if (p.pixel_scale() <= 0.0f || p.mean_size() != channels || p.std_size() != channels) {
    return Fail(QFORGE_INVALID_ARGUMENT,
                "the model declares no preprocessing for its " + std::to_string(channels) +
                    "-channel input; use qforge_interpreter_set_input_float");
  }
  return Guard([&] {
    it->scratch.resize(count);
    for (size_t i = 0; i < count; ++i) {
      const int c = static_cast<int>(i % channels);
      it->scratch[i] = (pixels[i] * p.pixel_scale() - p.mean(c)) / p.std(c);
    }
    return qforge_interpreter_set_input_float(it, index, it->scratch.data(), count);
  });
}

qforge_status qforge_interpreter_invoke(qforge_interpreter* it) {
  if (it == nullptr) return Fail(QFORGE_INVALID_ARGUMENT, "interpreter is null");
  return FromStatus(it->interpreter->Invoke());
}

qforge_status qforge_interpreter_get_output_float(const qforge_interpreter* it, int index,
                                                  float* data, size_t count) {
  if (qforge_status s = CheckTensor(it, /*input=*/false, index, count); s != QFORGE_OK) return s;
  if (data == nullptr) return Fail(QFORGE_INVALID_ARGUMENT, "data is null");
  const qforge::Tensor& t = it->interpreter->output_tensor(index);
  const void* src = it->interpreter->output_data(index);
  if (t.type() == qforge::FLOAT32) {
    std::memcpy(data, src, count * sizeof(float));
  } else if (t.type() == qforge::INT8) {
    const qforge::QuantParams params{t.quantization().scale(0),
                                     qforge::ZeroPointAt(t.quantization(), 0)};
    const int8_t* q = static_cast<const int8_t*>(src);
    for (size_t i = 0; i < count; ++i) data[i] = qforge::Dequantize(q[i], params);
  } else {
    return Fail(QFORGE_INVALID_ARGUMENT, "output '" + t.name() + "' is neither float nor int8");
  }
  return QFORGE_OK;
}

qforge_status qforge_interpreter_get_output_int8(const qforge_interpreter* it, int index,
                                                 int8_t* data, size_t count) {
  if (qforge_status s = CheckTensor(it, /*input=*/false, index, count); s != QFORGE_OK) return s;
  if (data == nullptr) return Fail(QFORGE_INVALID_ARGUMENT, "data is null");
  const qforge::Tensor& t = it->interpreter->output_tensor(index);
  if (t.type() != qforge::INT8) {
    return Fail(QFORGE_INVALID_ARGUMENT, "output '" + t.name() + "' is not int8");
  }
  std::memcpy(data, it->interpreter->output_data(index), count);
  return QFORGE_OK;
}

}  // extern "C"

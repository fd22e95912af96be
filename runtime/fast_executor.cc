// The fast executor: one step per op, created (weights packed) and set up on
// the interpreter's fixed buffers once; Run only runs them. A step is one of
// qforge's kernel ops (runtime/kernel_ops.h) where they cover the op, else one
// XNNPACK operator.
//
// XNNPACK's mapping: int8 Conv2D and FullyConnected -> qc8 convolution (FullyConnected as
// a 1x1 convolution, because XNNPACK's qs8 fully connected is per-tensor only);
// float ones -> f32 convolution / fully connected; Add -> add_nd; Mean ->
// global average pooling; Quantize / Dequantize -> convert; Reshape -> a copy.
#include <xnnpack.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/executor.h"
#include "runtime/kernel_ops.h"
#include "runtime/model_validator.h"

namespace qforge {
namespace {

// Per-tensor scale and zero point of tensor `id`.
struct Affine {
  float scale;
  int8_t zero_point;
};

// Thread-pool chunks per thread for a kernel op: a few, so a thread slowed by
// other work on the machine does not hold up the op.
constexpr int64_t kChunksPerThread = 4;

class FastExecutor : public Executor {
 public:
  FastExecutor(const CompiledModel& model, std::vector<void*> tensors)
      : model_(model), tensors_(std::move(tensors)) {}

  ~FastExecutor() override {
    for (Step& step : steps_) {
      if (step.op != nullptr) xnn_delete_operator(step.op);
    }
    if (pool_ != nullptr) pthreadpool_destroy(pool_);
  }

  absl::Status Init(int num_threads, std::optional<kernels::Isa> kernel_isa) {
    if (xnn_initialize(/*allocator=*/nullptr) != xnn_status_success) {
      return absl::InternalError("XNNPACK failed to initialize (unsupported CPU?)");
    }
    // One thread runs in the caller; more get a pool.
    if (num_threads > 1) pool_ = pthreadpool_create(num_threads);
    num_threads_ = num_threads;
    if (kernel_isa.has_value()) {
      kernel_engine_ = absl::StrCat("qforge-", kernels::IsaName(*kernel_isa));
    }
    for (const PreparedOp& op : model_.ops()) {
      steps_.emplace_back();
      if (kernel_isa.has_value()) steps_.back().kernel = MakeKernelOp(op, tensors_, *kernel_isa);
      if (steps_.back().kernel != nullptr) continue;
      if (absl::Status s = AddStep(op, steps_.back()); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status Run() override {
    for (size_t i = 0; i < steps_.size(); ++i) {
      if (absl::Status s = RunStep(i); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  std::string OpEngine(size_t i) const override {
    if (steps_[i].kernel != nullptr) return kernel_engine_;
    return steps_[i].op != nullptr ? "xnnpack" : "copy";
  }

  absl::Status RunProfiled(std::vector<double>& op_ms) override {
    op_ms.assign(steps_.size(), 0.0);
    for (size_t i = 0; i < steps_.size(); ++i) {
      const auto start = std::chrono::steady_clock::now();
      if (absl::Status s = RunStep(i); !s.ok()) return s;
      op_ms[i] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    }
    return absl::OkStatus();
  }

 private:
  struct Step {
    std::unique_ptr<KernelOp> kernel;  // set: the step runs on qforge's kernels
    xnn_operator_t op = nullptr;  // null without a kernel: a plain copy (Reshape)
    void* copy_to = nullptr;
    const void* copy_from = nullptr;
    size_t copy_bytes = 0;
  };

  // Splits a kernel op's units into contiguous chunks for the thread pool.
  struct KernelChunks {
    KernelOp* op;
    int64_t units, chunks;
  };

  static void RunKernelChunk(void* context, size_t chunk) {
    const auto* c = static_cast<const KernelChunks*>(context);
    const int64_t i = static_cast<int64_t>(chunk);
    c->op->Run(c->units * i / c->chunks, c->units * (i + 1) / c->chunks);
  }

  void RunKernel(KernelOp& op) {
    const int64_t units = op.units();
    if (pool_ == nullptr || units < 2) {
      op.Run(0, units);
      return;
    }
    KernelChunks chunks{&op, units, std::min(units, kChunksPerThread * num_threads_)};
    pthreadpool_parallelize_1d(pool_, &RunKernelChunk, &chunks,
                               static_cast<size_t>(chunks.chunks), /*flags=*/0);
  }

  absl::Status RunStep(size_t i) {
    const Step& step = steps_[i];
    if (step.kernel != nullptr) {
      RunKernel(*step.kernel);
      return absl::OkStatus();
    }
    if (step.op == nullptr) {
      std::memcpy(step.copy_to, step.copy_from, step.copy_bytes);
      return absl::OkStatus();
    }
    if (xnn_status s = xnn_run_operator(step.op, pool_); s != xnn_status_success) {
      return absl::InternalError(absl::StrCat("op ", i, " '", model_.ops()[i].name,
                                              "': XNNPACK run failed with status ", s));
    }
    return absl::OkStatus();
  }

  template <typename T>
  T* At(int id) const {
    return static_cast<T*>(tensors_[id]);
  }
  const Tensor& TensorOf(int id) const { return model_.model().tensors(id); }
  Affine AffineOf(int id) const {
    const Quantization& q = TensorOf(id).quantization();
    return {q.scale(0), static_cast<int8_t>(ZeroPointAt(q, 0))};
  }
  // One kernel scale per output channel, as qc8 convolution wants them.
  std::vector<float> KernelScales(int id, int output_channels) const {
    const Quantization& q = TensorOf(id).quantization();
    if (q.scale_size() == 1) return std::vector<float>(output_channels, q.scale(0));
    return std::vector<float>(q.scale().begin(), q.scale().end());
  }
  template <typename T>
  const T* Bias(const PreparedOp& op) const {
    return op.inputs.size() > 2 ? At<const T>(op.inputs[2]) : nullptr;
  }

  static absl::Status Check(xnn_status status, const PreparedOp& op, const char* stage) {
    if (status == xnn_status_success) return absl::OkStatus();
    const std::string what = absl::StrCat("op '", op.name, "': XNNPACK ", stage,
                                          " failed with status ", status);
    if (status == xnn_status_unsupported_parameter || status == xnn_status_unsupported_hardware) {
      return absl::UnimplementedError(what);
    }
    return absl::InternalError(what);
  }

  absl::Status AddStep(const PreparedOp& op, Step& step) {
    return std::visit([&](const auto& p) { return Create(op, p, step); }, op.params);
  }

  absl::Status Create(const PreparedOp& op, const QuantizeParams& p, Step& step) {
    const size_t n = static_cast<size_t>(p.size);
    const int8_t zp = static_cast<int8_t>(p.zero_point);
    if (op.kind == QUANTIZE) {
      if (absl::Status s = Check(xnn_create_convert_nc_f32_qs8(n, n, n, p.scale, zp, -128, 127,
                                                               0, &step.op),
                                 op, "create");
          !s.ok()) {
        return s;
      }
      return Check(xnn_setup_convert_nc_f32_qs8(step.op, 1, At<float>(op.inputs[0]),
                                                At<int8_t>(op.output), pool_),
                   op, "setup");
    }
    if (absl::Status s =
            Check(xnn_create_convert_nc_qs8_f32(n, n, n, p.scale, zp, 0, &step.op), op, "create");
        !s.ok()) {
      return s;
    }
    return Check(xnn_setup_convert_nc_qs8_f32(step.op, 1, At<int8_t>(op.inputs[0]),
                                              At<float>(op.output), pool_),
                 op, "setup");
  }

  // An int8 convolution over geometry g (also used for FullyConnected as 1x1).
  absl::Status CreateQc8Conv(const PreparedOp& op, const reference::ConvGeometry& g,
                             const reference::Int8Output& out, Step& step) {
    const Affine x = AffineOf(op.inputs[0]);
    const Affine y = AffineOf(op.output);
    const std::vector<float> kernel_scales = KernelScales(op.inputs[1], g.output_channels);
    const size_t group_in = g.input_channels / g.groups;
    const size_t group_out = g.output_channels / g.groups;
    if (absl::Status s = Check(
            xnn_create_convolution2d_nhwc_qc8(
                g.pad_top, g.pad_right, g.pad_bottom, g.pad_left, g.kernel_height, g.kernel_width,
                g.stride_h, g.stride_w, g.dilation_h, g.dilation_w, g.groups, group_in, group_out,
                g.input_channels, g.output_channels, x.zero_point, x.scale, kernel_scales.data(),
                At<const int8_t>(op.inputs[1]), Bias<int32_t>(op), y.zero_point, y.scale,
                static_cast<int8_t>(out.qmin), static_cast<int8_t>(out.qmax), 0, &step.op),
            op, "create");
        !s.ok()) {
      return s;
    }
    return Check(xnn_setup_convolution2d_nhwc_qc8(step.op, g.batch, g.input_height, g.input_width,
                                                  At<int8_t>(op.inputs[0]), At<int8_t>(op.output),
                                                  pool_),
                 op, "setup");
  }

  absl::Status Create(const PreparedOp& op, const reference::Conv2DInt8Params& p, Step& step) {
    return CreateQc8Conv(op, p.geometry, p.output, step);
  }

  absl::Status Create(const PreparedOp& op, const reference::Conv2DFloatParams& p, Step& step) {
    const reference::ConvGeometry& g = p.geometry;
    if (absl::Status s = Check(
            xnn_create_convolution2d_nhwc_f32(
                g.pad_top, g.pad_right, g.pad_bottom, g.pad_left, g.kernel_height,
                g.kernel_width, g.stride_h, g.stride_w, g.dilation_h, g.dilation_w, g.groups,
                g.input_channels / g.groups, g.output_channels / g.groups, g.input_channels,
                g.output_channels, At<const float>(op.inputs[1]), Bias<float>(op), p.output_min,
                p.output_max, 0, &step.op),
            op, "create");
        !s.ok()) {
      return s;
    }
    return Check(xnn_setup_convolution2d_nhwc_f32(step.op, g.batch, g.input_height, g.input_width,
                                                  At<float>(op.inputs[0]), At<float>(op.output),
                                                  pool_),
                 op, "setup");
  }

  absl::Status Create(const PreparedOp& op, const reference::FullyConnectedInt8Params& p,
                      Step& step) {
    reference::ConvGeometry g;
    g.batch = p.batch;
    g.input_channels = p.input_features;
    g.output_channels = p.output_features;
    return CreateQc8Conv(op, g, p.output, step);
  }

  absl::Status Create(const PreparedOp& op, const reference::FullyConnectedFloatParams& p,
                      Step& step) {
    if (absl::Status s = Check(xnn_create_fully_connected_nc_f32(
                                   p.input_features, p.output_features, p.input_features,
                                   p.output_features, At<const float>(op.inputs[1]),
                                   Bias<float>(op), p.output_min, p.output_max, 0, &step.op),
                               op, "create");
        !s.ok()) {
      return s;
    }
    return Check(xnn_setup_fully_connected_nc_f32(step.op, p.batch, At<float>(op.inputs[0]),
                                                  At<float>(op.output), pool_),
                 op, "setup");
  }

  absl::Status Create(const PreparedOp& op, const reference::AddInt8Params& p, Step& step) {
    const Affine a = AffineOf(op.inputs[0]), b = AffineOf(op.inputs[1]), y = AffineOf(op.output);
    if (absl::Status s = Check(xnn_create_add_nd_qs8(a.zero_point, a.scale, b.zero_point, b.scale,
                                                     y.zero_point, y.scale,
                                                     static_cast<int8_t>(p.output.qmin),
                                                     static_cast<int8_t>(p.output.qmax), 0,
                                                     &step.op),
                               op, "create");
        !s.ok()) {
      return s;
    }
    const size_t shape[1] = {static_cast<size_t>(p.size)};
    return Check(xnn_setup_add_nd_qs8(step.op, 1, shape, 1, shape, At<int8_t>(op.inputs[0]),
                                      At<int8_t>(op.inputs[1]), At<int8_t>(op.output), pool_),
                 op, "setup");
  }

  absl::Status Create(const PreparedOp& op, const reference::AddFloatParams& p, Step& step) {
    if (absl::Status s =
            Check(xnn_create_add_nd_f32(p.output_min, p.output_max, 0, &step.op), op, "create");
        !s.ok()) {
      return s;
    }
    const size_t shape[1] = {static_cast<size_t>(p.size)};
    return Check(xnn_setup_add_nd_f32(step.op, 1, shape, 1, shape, At<float>(op.inputs[0]),
                                      At<float>(op.inputs[1]), At<float>(op.output), pool_),
                 op, "setup");
  }

  absl::Status Create(const PreparedOp& op, const reference::MeanInt8Params& p, Step& step) {
    const Affine x = AffineOf(op.inputs[0]), y = AffineOf(op.output);
    if (absl::Status s = Check(xnn_create_global_average_pooling_nwc_qs8(
                                   p.channels, p.channels, p.channels, x.zero_point, x.scale,
                                   y.zero_point, y.scale, static_cast<int8_t>(p.output.qmin),
                                   static_cast<int8_t>(p.output.qmax), 0, &step.op),
                               op, "create");
        !s.ok()) {
      return s;
    }
    return Check(xnn_setup_global_average_pooling_nwc_qs8(
                     step.op, p.batch, static_cast<size_t>(p.height) * p.width,
                     At<int8_t>(op.inputs[0]), At<int8_t>(op.output), pool_),
                 op, "setup");
  }

  absl::Status Create(const PreparedOp& op, const reference::MeanFloatParams& p, Step& step) {
    if (absl::Status s = Check(xnn_create_global_average_pooling_nwc_f32(
                                   p.channels, p.channels, p.channels, -INFINITY, INFINITY, 0,
                                   &step.op),
                               op, "create");
        !s.ok()) {
      return s;
    }
    return Check(xnn_setup_global_average_pooling_nwc_f32(
                     step.op, p.batch, static_cast<size_t>(p.height) * p.width,
                     At<float>(op.inputs[0]), At<float>(op.output), pool_),
                 op, "setup");
  }

  absl::Status Create(const PreparedOp& op, const ReshapeParams& p, Step& step) {
    step.copy_to = tensors_[op.output];
    step.copy_from = tensors_[op.inputs[0]];
    step.copy_bytes = static_cast<size_t>(p.bytes);
    return absl::OkStatus();
  }

  const CompiledModel& model_;
  const std::vector<void*> tensors_;
  pthreadpool_t pool_ = nullptr;
  int num_threads_ = 1;
  std::string kernel_engine_;
  std::vector<Step> steps_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Executor>> MakeFastExecutor(const CompiledModel& model,
                                                           std::vector<void*> tensors,
                                                           int num_threads,
                                                           std::optional<kernels::Isa> kernel_isa) {
  auto executor = std::make_unique<FastExecutor>(model, std::move(tensors));
  if (absl::Status s = executor->Init(num_threads, kernel_isa); !s.ok()) return s;
  return std::unique_ptr<Executor>(std::move(executor));
}

}  // namespace qforge

// Reference kernels: the exact semantics of every runtime op (shared/DESIGN.md,
// "Numerics"), in portable C++ over raw pointers and plain params structs. The
// XNNPACK fast path is tested against these; they are written to be read, not
// to be fast.
//
// Dimension letters: N batch, H/W input height/width, OH/OW output height/width,
// C input channels, O output channels, KH/KW kernel height/width, K features.
// All activations are NHWC; conv filters are OHWI with I = C / groups.
//
// Int8 ops take their requantization already prepared (common/requantize.h) and
// do integer work only. The int32 accumulator sum((x - x_zero_point) * w) + bias
// cannot overflow: each product is at most 255 * 127 in magnitude, Prepare
// allows at most 66,000 products per output (66,000 * 255 * 127 < 2^31) and
// only biases that fit in the remaining headroom.
#ifndef QFORGE_RUNTIME_REFERENCE_OPS_H_
#define QFORGE_RUNTIME_REFERENCE_OPS_H_

#include <cmath>
#include <cstdint>
#include <vector>

#include "common/requantize.h"

namespace qforge::reference {

// Largest number of products one int8 output may sum without risking overflow.
inline constexpr int64_t kMaxInt8Accumulation = 66000;

struct ConvGeometry {
  int batch = 1;          // N
  int input_height = 1;   // H
  int input_width = 1;    // W
  int input_channels = 1;  // C
  int output_height = 1;   // OH
  int output_width = 1;    // OW
  int output_channels = 1;  // O
  int kernel_height = 1;   // KH
  int kernel_width = 1;    // KW
  int stride_h = 1;
  int stride_w = 1;
  int dilation_h = 1;
  int dilation_w = 1;
  int pad_top = 0;
  int pad_left = 0;
  int pad_bottom = 0;  // implied by the output size; kept for backends that take it
  int pad_right = 0;
  int groups = 1;
};

// Output extent of a convolution along one dimension; <= 0 if the kernel does
// not fit (validation rejects that).
inline int64_t ConvOutputSize(int64_t input, int64_t kernel, int64_t stride, int64_t dilation,
                              int64_t pad_before, int64_t pad_after) {
  const int64_t span = dilation * (kernel - 1) + 1;
  const int64_t padded = input + pad_before + pad_after;
  return padded < span ? 0 : (padded - span) / stride + 1;
}

// An int8 output stage: requantize, add the zero point, clamp to [qmin, qmax]
// (the fused activation, already in quantized units).
struct Int8Output {
  int32_t zero_point = 0;
  int32_t qmin = -128;
  int32_t qmax = 127;
};

struct Conv2DInt8Params {
  ConvGeometry geometry;
  int32_t input_zero_point = 0;
  std::vector<QuantizedMultiplier> multipliers;  // [O]: one per output channel
  Int8Output output;
};

// input [N, H, W, C], filter [O, KH, KW, C / groups], bias [O] or null,
// output [N, OH, OW, O]. Padding contributes real zeros.
void Conv2DInt8(const Conv2DInt8Params& params, const int8_t* input, const int8_t* filter,
                const int32_t* bias, int8_t* output);

struct Conv2DFloatParams {
  ConvGeometry geometry;
  float output_min = -INFINITY;  // fused activation clamp
  float output_max = INFINITY;
};

void Conv2DFloat(const Conv2DFloatParams& params, const float* input, const float* filter,
                 const float* bias, float* output);

// Fully connected: input [N, K], weights [O, K], bias [O] or null, output [N, O].
struct FullyConnectedInt8Params {
  int batch = 1;
  int input_features = 1;   // K
  int output_features = 1;  // O
  int32_t input_zero_point = 0;
  std::vector<QuantizedMultiplier> multipliers;  // [O]
  Int8Output output;
};

void FullyConnectedInt8(const FullyConnectedInt8Params& params, const int8_t* input,
                        const int8_t* weights, const int32_t* bias, int8_t* output);

struct FullyConnectedFloatParams {
  int batch = 1;
  int input_features = 1;
  int output_features = 1;
  float output_min = -INFINITY;
  float output_max = INFINITY;
};

void FullyConnectedFloat(const FullyConnectedFloatParams& params, const float* input,
                         const float* weights, const float* bias, float* output);

// Add, TFLite's scheme: both inputs are shifted left by kAddLeftShift bits for
// headroom, rescaled to a common scale (twice the larger input scale) with
// multipliers <= 1/2, summed, and requantized to the output.
inline constexpr int kAddLeftShift = 20;

struct AddInt8Params {
  int64_t size = 0;  // elements
  int32_t a_zero_point = 0;
  int32_t b_zero_point = 0;
  QuantizedMultiplier a_multiplier;       // a_scale / (2 * max_scale)
  QuantizedMultiplier b_multiplier;       // b_scale / (2 * max_scale)
  QuantizedMultiplier output_multiplier;  // 2 * max_scale / (2^20 * output_scale)
  Int8Output output;
};

void AddInt8(const AddInt8Params& params, const int8_t* a, const int8_t* b, int8_t* output);

struct AddFloatParams {
  int64_t size = 0;
  float output_min = -INFINITY;
  float output_max = INFINITY;
};

void AddFloat(const AddFloatParams& params, const float* a, const float* b, float* output);

// Mean over H and W: input [N, H, W, C], output [N, C].
struct MeanInt8Params {
  int batch = 1;
  int height = 1;
  int width = 1;
  int channels = 1;
  int32_t input_zero_point = 0;
  QuantizedMultiplier multiplier;  // input_scale / (output_scale * H * W)
  Int8Output output;
};

void MeanInt8(const MeanInt8Params& params, const int8_t* input, int8_t* output);

struct MeanFloatParams {
  int batch = 1;
  int height = 1;
  int width = 1;
  int channels = 1;
};

void MeanFloat(const MeanFloatParams& params, const float* input, float* output);

// Quantize float -> int8 (round half to even) and back.
void QuantizeToInt8(int64_t size, float scale, int32_t zero_point, const float* input,
                    int8_t* output);
void DequantizeInt8(int64_t size, float scale, int32_t zero_point, const int8_t* input,
                    float* output);

}  // namespace qforge::reference

#endif  // QFORGE_RUNTIME_REFERENCE_OPS_H_

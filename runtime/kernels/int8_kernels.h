// qforge's own int8 kernels: the fast path for convolutions, fully connected
// layers, adds, means and (de)quantization, bit-exact with the reference
// kernels (runtime/reference_ops.h) at every instruction-set level.
//
// Each op has a Pack function, run once when an interpreter is created (weights
// into the kernel's layout, zero-point corrections folded into the bias, the
// requantization constants in the form the SIMD epilogue loads), and a Run
// function over a range of independent work units, so callers can split the
// units across threads. Run does integer work only and never allocates.
//
// The AVX-512 VNNI kernels multiply with vpdpbusd, which takes one unsigned and
// one signed byte operand. They flip the activations (x ^ 0x80 = x + 128 as
// unsigned; the GEMM a tile's rows at a time, before it broadcasts them) and
// keep the weights signed:
//   sum_k (x + 128) * w = sum_k x * w + 128 * sum_k w,
// so with the input zero point's zx * sum_k w, (zx + 128) * sum_k w is a
// constant of each output channel, folded into the bias when packing. (The
// generic level stores w + 128 and subtracts each row's 128 * sum_k x.) The
// int32 sums may wrap on the way; the final accumulator equals the
// reference's, which Prepare keeps in range (reference::kMaxInt8Accumulation),
// because int32 addition is modular.
//
// Requantization is common/requantize.h's one rounding of the 64-bit product,
// done in 64-bit lanes, or where that is provably the same result, by one
// double-precision FMA (ExactInDouble; int8_kernels_avx512_inl.h).
#ifndef QFORGE_RUNTIME_KERNELS_INT8_KERNELS_H_
#define QFORGE_RUNTIME_KERNELS_INT8_KERNELS_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "common/requantize.h"
#include "runtime/kernels/isa.h"
#include "runtime/reference_ops.h"

namespace qforge::kernels {

// Output channels per SIMD block (one AVX-512 vector of int32); packed
// per-channel arrays are padded to a multiple of kChannelsPerVector * 4.
inline constexpr int kChannelsPerVector = 16;
inline constexpr int kChannelPadding = 64;

struct alignas(64) Bytes64 {
  uint8_t bytes[64];
};

// The requantization constants of 16 output channels, laid out for the AVX-512
// epilogue: _mm512_mul_epi32 reads the even int32 lanes, so the odd channels'
// multipliers are stored shifted down one lane; the 64-bit constants are split
// the same way (even channels, then odd channels).
struct alignas(64) RequantBlock {
  int32_t multiplier_even[16];  // channel 2j's multiplier at index 2j
  int32_t multiplier_odd[16];   // channel 2j+1's multiplier at index 2j
  int64_t rounding[2][8];       // 2^(30+s) for a right shift s >= 0
  int64_t shift[2][8];          // 31 + s
  int64_t left_shift[2][8];     // the multiplier's exponent when positive, else 0
  // kLeftShift's clamp of the accumulator to [-limit - 1, limit], channel c at
  // index c: 2^23 where the exponent is positive, else none (INT32_MAX), so a
  // channel that shifts right keeps its exact accumulator in an op where
  // another shifts left.
  int32_t acc_limit[16];
  // AVX2 has no 64-bit arithmetic shift: it shifts the non-negative value
  // plus 2^62 logically, then takes back 2^62 shifted. Both constants are
  // stored: derived in the epilogue they would cost an add and a shift per vector.
  int64_t rounding_biased[2][8];  // rounding + 2^62
  int64_t bias_shifted[2][8];     // 2^62 >> (31 + s)
  // The double-precision form (ExactInDouble), in the order vpunpck{l,h}dq
  // leave a vector's channels: [0] holds channels 4i and 4i + 1 at 2i and
  // 2i + 1, [1] channels 4i + 2 and 4i + 3. The real multiplier m =
  // multiplier * 2^(exponent - 31), and 1.5 * 2^52 * (1 - m) + the output
  // zero point (ChannelEpilogue's; 0 elsewhere); both exact.
  double scale[2][8];
  double offset[2][8];
  // The single-precision form (FloatScaleFor), channel c at index c: its
  // scale, and 1.5 * 2^23 + the output zero point.
  float float_scale[16];
  float float_offset[16];
};

// What the SIMD epilogue's requantization has to handle, cheapest last:
//   kLeftShift: some channel's multiplier is >= 1 (a positive exponent);
//   kExact: every exponent <= 0;
//   kNegativesClamp: that, and the output clamp's qmin >= the zero point (a
//     fused ReLU or ReLU6), so every negative result clamps to qmin and the
//     tie rule of negative values (away from zero) cannot show.
// The SIMD levels' convs also have kExact's double-precision form kDouble,
// cheaper still, for ops whose every channel is ExactInDouble, and the
// single-precision kFloat, cheapest, for ops whose every channel has a
// FloatScaleFor (never from ModeFor); the AVX-512 levels' adds also have
// kDoubleNegativesClamp.
enum class RequantMode {
  kLeftShift,
  kExact,
  kNegativesClamp,
  kDouble,
  kDoubleNegativesClamp,
  kFloat
};

RequantMode ModeFor(const reference::Int8Output& output, bool any_left_shift);

// Whether every accumulator in [-acc_bound, acc_bound] requantizes by `m`
// exactly in double precision, as x = acc * m, m = multiplier * 2^-T with
// T = 31 - exponent: one FMA computes (1.5 * 2^52 + acc) * m + 1.5 * 2^52 *
// (1 - m) + zero_point = x + 1.5 * 2^52 + zero_point exactly before its one
// rounding, and in [2^52, 2^53) that rounding is to the nearest integer, so
// the low 32 bits of the result are round(x) + zero_point while |x| < 2^31.
// It is common/requantize.h's rounding wherever x is not a tie (ties go to
// even). Needed: exponent <= 0
// (m < 1); T <= 51 (1.5 * 2^52 * m = 3 * multiplier * 2^(51 - T) an integer,
// so the offset is exact); and no tie: acc * multiplier = 2^(T-1) (mod 2^T)
// holds only for |acc| a multiple of 2^(T-1-v), v the multiplier's trailing
// zero bits, so acc_bound < 2^(T-1-v) rules ties out.
bool ExactInDouble(const QuantizedMultiplier& m, int64_t acc_bound);

// The single-precision form of a channel's whole output stage, where one
// exists: a float scale s such that, for every accumulator in [-acc_bound,
// acc_bound], one FMA, r = float(acc) * s + (1.5 * 2^23 + zero_point) rounded
// to nearest, holds in the low bits of r (r's bits - 0x4B400000, clamped to
// [qmin, qmax]) exactly common/requantize.h's RequantizeToInt8(acc, m, ...).
// m needs 31 bits and a float has 24, so s is searched among m's nearest few
// floats and checked, not proved: both sides are non-decreasing step functions
// of acc, equal if they are at the ends and step up at the same accumulators
// (at most qmax - qmin steps), which the check makes sure of step by step.
// A channel with a small m, whose steps lie at large accumulators, often has
// no such s (MobileNetV2's late layers). Needs acc_bound <= 2^24 (float(acc)
// exact) and |acc * s + zero point| < 2^22 (r in [2^23, 2^24), where a
// float's step is 1).
std::optional<float> FloatScaleFor(const QuantizedMultiplier& m, int64_t acc_bound,
                                   const reference::Int8Output& output);

// Whether every requantization of an add (each input's rescale, the sum's) is
// ExactInDouble for the values reference::AddInt8 can give it. An input whose
// multiplier is 1/2 exactly is rescaled by a shift and needs nothing.
bool AddExactInDouble(const reference::AddInt8Params& p);

// Bias and requantization of every output channel, in the order the kernel
// produces channels (padding channels have bias 0 and multiplier 2^30).
struct ChannelEpilogue {
  std::vector<int32_t> bias;                      // [padded channels]
  std::vector<QuantizedMultiplier> multipliers;   // [padded channels]
  std::vector<RequantBlock> requant;              // [padded channels / 16]
  RequantMode mode = RequantMode::kExact;         // kLeftShift, kExact or kNegativesClamp
  bool exact_in_double = false;  // every channel ExactInDouble for its accumulators
  bool exact_in_float = false;   // every channel has a FloatScaleFor
  reference::Int8Output output;
};

// The deepest direct GEMM of the AVX-512 VNNI level, whose rows it flips onto
// the stack a tile at a time (12 KB); a deeper 1x1 conv is gathered instead.
inline constexpr int kMaxDirectDepth = 2048;

// A groups == 1 convolution or a fully connected layer as a GEMM:
// output[M, O] = requantize(A[M, K] * W[K, O] + bias), M = N * OH * OW,
// K = KH * KW * C. A is the input itself for a 1x1 convolution with stride 1,
// no padding and K % 4 == 0 ("direct"); otherwise each row is gathered into a
// scratch buffer first (im2col; padding reads as the input zero point).
struct PackedGemmConv {
  Isa isa = Isa::kGeneric;
  reference::ConvGeometry geometry;
  int64_t rows = 0;        // M
  int depth = 0;           // K
  int depth_padded = 0;    // K rounded up to a multiple of 4 (AMX: of amx_chunk)
  int amx_chunk = 0;       // AMX: depth bytes per tile multiply (4 to 64)
  int tile_rows = 0;       // rows per tile: 6, 12 (narrow VNNI GEMMs) or 16 (AMX)
  bool direct = false;     // VNNI: also depth <= kMaxDirectDepth
  int32_t input_zero_point = 0;
  // [O / 16][depth_padded / 4][16][4] bytes of w (generic: of w + 128), 0 past K.
  std::vector<Bytes64> weights;
  ChannelEpilogue epilogue;
  int64_t scratch_bytes = 0;     // what Run needs in `scratch` (im2col rows)
  // 16-channel blocks per unit of work: all of them, or (when there are too
  // few row tiles to keep threads busy, as in a batch-1 fully connected layer)
  // 4, so threads can share a tile's columns; always all of them with strips.
  int blocks_per_unit = 0;
  int column_parts = 1;  // units per row tile
  // The VNNI and AVX2 levels' convs with a kernel, stride or padding (not
  // 1x1, 1, 0) and without dilation along W (at AVX2, with KH * strip_run +
  // 16 <= kAvx2DepthChunk; AMX hands the shallow ones to the VNNI level)
  // read their rows from "strips"
  // instead of gathering them: a unit is an output row, whose KH input rows
  // (those its taps read, padding columns filled in) are copied once into the
  // scratch (flipped at the VNNI levels), and each pixel of the row reads
  // its GEMM row in place (the AVX2 level widening it to int16): KH runs of
  // KW * C bytes at the pixel's column. Each run takes strip_run bytes of the
  // packed depth (KW * C rounded up to 4, zero weights past KW * C), so
  // depth_padded = KH * strip_run. Gathering pixel by pixel took half of
  // MobileNetV2's first conv.
  int strip_run = 0;        // 0: rows of units of tile_rows, as above
  int64_t strip_bytes = 0;  // from one strip to the next in the scratch
};

// filter [O, KH, KW, C], bias [O] or null. geometry.groups must be 1.
PackedGemmConv PackGemmConv(const reference::Conv2DInt8Params& params, const int8_t* filter,
                            const int32_t* bias, Isa isa);
PackedGemmConv PackFullyConnected(const reference::FullyConnectedInt8Params& params,
                                  const int8_t* weights, const int32_t* bias, Isa isa);

// Rows are processed in tiles; a unit is a tile's columns, or a 64-channel
// part of them (blocks_per_unit), or with strips an output row; [begin, end)
// of GemmConvUnits. The input must stay readable for 64 bytes past its end,
// as in the runtime's arena: an AMX tile load of a row's last chunk reads up
// to 63 bytes past the row (the weights there are zero).
int64_t GemmConvUnits(const PackedGemmConv& conv);
void RunGemmConv(const PackedGemmConv& conv, const int8_t* input, int8_t* output,
                 uint8_t* scratch, int64_t begin, int64_t end);

// A depthwise convolution (groups == C == O, one output channel per input
// channel), any kernel size, stride, dilation and padding.
struct PackedDepthwise {
  Isa isa = Isa::kGeneric;
  reference::ConvGeometry geometry;
  int32_t input_zero_point = 0;
  // AVX-512: per block of 64 input bytes and tap, 4 vectors; vector r holds in
  // byte r of lane j the weight for input byte 4j + r (zeros elsewhere), so
  // vpdpbusd over the input's 64 bytes accumulates byte 4j + r's products in
  // lane j of accumulator r. A block is 64 channels of one pixel, except the
  // last when C % 64 <= 32: then it holds tail_pixels (2 or 4) pixels' last
  // C % 64 channels, 64 / tail_pixels bytes each, so small channel counts
  // (MobileNetV2's first 32-channel layer) waste no lanes.
  // Generic: [taps][channels] int8.
  std::vector<Bytes64> weights;
  int tail_pixels = 1;
  ChannelEpilogue epilogue;      // AVX-512: channels in the accumulators' order
  std::vector<int8_t> padding_row;  // C + 128 bytes of the input zero point
  // AVX-512, 3x3 at stride 1 or 2 without dilation: the full 64-channel
  // blocks run column by column instead. Each input column's three rows are
  // interleaved once, to [row 0, row 1, row 2, 0] per channel, and serve every
  // output pixel whose taps read that column, three vpdpbusd for a column
  // where the layout above takes nine. Per block, kx and vector r: lane 4L + i
  // holds channel 16L + 4r + i's weights [w(0, kx), w(1, kx), w(2, kx), 0];
  // column_epilogue has the channels in that order. The AVX-VNNI level runs
  // these column layouts alone (its other convs take the AVX2 layout), each
  // 64-byte vector as two 256-bit halves.
  int column_blocks = 0;
  std::vector<Bytes64> column_weights;  // [column_blocks][3][4]
  ChannelEpilogue column_epilogue;
  // The same convs' last C % 64 channels (all of them when C < 64) run column
  // by column too, in groups of 16: one vector holds a column's 16 channels,
  // lane j channel j's [row 0, row 1, row 2, 0], so three vpdpbusd give 16
  // outputs. Per group and kx, lane j holds [w(0, kx), w(1, kx), w(2, kx), 0];
  // column_tail_epilogue has the channels in order.
  int column_tail_groups = 0;
  std::vector<Bytes64> column_tail_weights;  // [column_tail_groups][3]
  ChannelEpilogue column_tail_epilogue;
};

PackedDepthwise PackDepthwise(const reference::Conv2DInt8Params& params, const int8_t* filter,
                              const int32_t* bias, Isa isa);
// Units are output rows (N * OH). The input must stay readable for 16 bytes
// past its end: the AVX2 level loads a last group of fewer than 16 channels
// whole (its weights past the channels are zero).
int64_t DepthwiseUnits(const PackedDepthwise& conv);
void RunDepthwise(const PackedDepthwise& conv, const int8_t* input, int8_t* output,
                  int64_t begin, int64_t end);

// Element-wise ops; units are blocks of kElementsPerUnit elements.
inline constexpr int64_t kElementsPerUnit = 1024;
int64_t ElementUnits(int64_t size);
// An add with its requantization constants made once: made in every call,
// one per thread's share of the units, they cost more than a share of a small
// add itself (MobileNetV2's residual adds took longer with 2 threads than with 1).
struct PackedAdd {
  Isa isa = Isa::kGeneric;
  reference::AddInt8Params params;
  RequantBlock a, b;    // each input's multiplier in every lane
  RequantBlock output;  // the sum's; its double-precision form adds the output zero point
};

PackedAdd PackAdd(const reference::AddInt8Params& params, Isa isa);
void RunAdd(const PackedAdd& add, const int8_t* a, const int8_t* b, int8_t* output, int64_t begin,
            int64_t end);
void RunQuantize(Isa isa, int64_t size, float scale, int32_t zero_point, const float* input,
                 int8_t* output, int64_t begin, int64_t end);
void RunDequantize(Isa isa, int64_t size, float scale, int32_t zero_point, const int8_t* input,
                   float* output, int64_t begin, int64_t end);

// Mean over H and W; units are images (N).
void RunMean(Isa isa, const reference::MeanInt8Params& params, const int8_t* input,
             int8_t* output, int64_t begin, int64_t end);

}  // namespace qforge::kernels

#endif  // QFORGE_RUNTIME_KERNELS_INT8_KERNELS_H_

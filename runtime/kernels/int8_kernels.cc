// Packing (portable, run once per interpreter), the portable kernels of the
// generic level, and the dispatch to the level a packed op was made for.
#include "runtime/kernels/int8_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "runtime/kernels/int8_kernels_isa.h"

namespace qforge::kernels {
namespace {

using reference::ConvGeometry;

constexpr QuantizedMultiplier kPaddingMultiplier{1 << 30, 0};

int64_t RoundUp(int64_t value, int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

int64_t DivideRoundUp(int64_t value, int64_t divisor) { return (value + divisor - 1) / divisor; }

// zero_point goes into the double-precision form's offset (the output's, for
// a conv's epilogue); float_scales, where given, are the single-precision
// form's scales (FloatScaleFor).
RequantBlock MakeRequantBlock(const QuantizedMultiplier* m, int32_t zero_point = 0,
                              const float* float_scales = nullptr) {
  RequantBlock block{};
  for (int c = 0; c < kChannelsPerVector; ++c) {
    const int half = c % 2, j = c / 2;
    const int right_shift = std::max(-m[c].exponent, 0);
    block.multiplier_even[c] = m[c].multiplier;
    if (half == 1) block.multiplier_odd[c - 1] = m[c].multiplier;
    block.rounding[half][j] = int64_t{1} << (30 + right_shift);
    block.shift[half][j] = 31 + right_shift;
    block.left_shift[half][j] = std::max(m[c].exponent, 0);
    block.acc_limit[c] = m[c].exponent > 0 ? 1 << 23 : std::numeric_limits<int32_t>::max();
    block.rounding_biased[half][j] = block.rounding[half][j] + (int64_t{1} << 62);
    block.bias_shifted[half][j] = (int64_t{1} << 62) >> block.shift[half][j];
    // Filled for every channel; used only where ExactInDouble holds.
    const double scale = std::ldexp(m[c].multiplier, std::min(m[c].exponent, 0) - 31);
    block.scale[c % 4 / 2][c / 4 * 2 + c % 2] = scale;
    block.offset[c % 4 / 2][c / 4 * 2 + c % 2] = 0x1.8p52 - 0x1.8p52 * scale + zero_point;
    block.float_scale[c] = float_scales != nullptr ? float_scales[c] : static_cast<float>(scale);
    block.float_offset[c] = kFloatRoundingMagic + static_cast<float>(zero_point);
  }
  return block;
}

// Each channel's FloatScaleFor, if every channel has one and the level runs
// the single-precision form (every SIMD level); else none. Checking takes
// time when an interpreter is made, so it is done once per op.
std::vector<float> FloatScales(const std::vector<QuantizedMultiplier>& multipliers,
                               const std::vector<int64_t>& acc_bounds,
                               const reference::Int8Output& output, Isa isa) {
  if (isa < Isa::kAvx2) return {};
  std::vector<float> scales;
  for (size_t c = 0; c < multipliers.size(); ++c) {
    const std::optional<float> s = FloatScaleFor(multipliers[c], acc_bounds[c], output);
    if (!s.has_value()) return {};  // the op cannot use the other channels' either
    scales.push_back(*s);
  }
  return scales;
}

// `order[i]` is the channel the kernel produces at position i, or -1 for
// padding; acc_bounds[c] bounds channel c's accumulators (AccumulatorBound);
// float_scales is FloatScales'.
ChannelEpilogue MakeEpilogue(const std::vector<int>& order, const std::vector<int32_t>& bias,
                             const std::vector<QuantizedMultiplier>& multipliers,
                             const std::vector<int64_t>& acc_bounds,
                             const std::vector<float>& float_scales,
                             const reference::Int8Output& output) {
  ChannelEpilogue e;
  e.output = output;
  bool any_left_shift = false;
  e.exact_in_double = true;
  e.exact_in_float = !float_scales.empty();
  // Padding channels' accumulators are 0, which any scale maps to 0.
  std::vector<float> ordered_scales(order.size(), 0.5f);
  for (size_t i = 0; i < order.size(); ++i) {
    const int channel = order[i];
    e.bias.push_back(channel >= 0 ? bias[channel] : 0);
    e.multipliers.push_back(channel >= 0 ? multipliers[channel] : kPaddingMultiplier);
    if (channel < 0) continue;
    if (multipliers[channel].exponent > 0) any_left_shift = true;
    if (!ExactInDouble(multipliers[channel], acc_bounds[channel])) e.exact_in_double = false;
    if (e.exact_in_float) ordered_scales[i] = float_scales[channel];
  }
  e.mode = ModeFor(output, any_left_shift);
  for (size_t i = 0; i < order.size(); i += kChannelsPerVector) {
    e.requant.push_back(MakeRequantBlock(&e.multipliers[i], output.zero_point, &ordered_scales[i]));
  }
  return e;
}

// A bound on |acc| of an output whose weights are w[0..count): every
// |x - zx| is at most max(127 - zx, 128 + zx).
int64_t AccumulatorBound(const int8_t* w, int64_t count, int32_t input_zero_point,
                         const int32_t* bias) {
  int64_t sum = 0;
  for (int64_t k = 0; k < count; ++k) sum += std::abs(int32_t{w[k]});
  const int64_t input_range = std::max(127 - input_zero_point, 128 + input_zero_point);
  return sum * input_range + (bias != nullptr ? std::abs(int64_t{*bias}) : 0);
}

std::vector<int> IdentityOrder(int channels) {
  std::vector<int> order(RoundUp(channels, kChannelPadding), -1);
  for (int c = 0; c < channels; ++c) order[c] = c;
  return order;
}

// The GEMM layout of weights [O][K] (row-major, K contiguous), as w + offset.
std::vector<Bytes64> PackGemmWeights(const int8_t* weights, int outputs, int depth,
                                     int depth_padded, int offset) {
  const int depth_groups = depth_padded / 4;
  const int blocks = static_cast<int>(DivideRoundUp(outputs, kChannelsPerVector));
  std::vector<Bytes64> packed(static_cast<size_t>(blocks) * depth_groups, Bytes64{});
  for (int o = 0; o < outputs; ++o) {
    const int block = o / kChannelsPerVector, lane = o % kChannelsPerVector;
    for (int k = 0; k < depth; ++k) {
      Bytes64& group = packed[static_cast<size_t>(block) * depth_groups + k / 4];
      group.bytes[lane * 4 + k % 4] =
          static_cast<uint8_t>(weights[int64_t{o} * depth + k] + offset);
    }
  }
  return packed;
}

// Weights [O][KH][KW * C] with each kernel row's run padded with zeros to
// `run` bytes: [O][KH][run].
std::vector<int8_t> PadRuns(const int8_t* weights, const ConvGeometry& g, int run) {
  const int64_t used = int64_t{g.kernel_width} * g.input_channels;
  std::vector<int8_t> padded(int64_t{g.output_channels} * g.kernel_height * run, 0);
  for (int64_t r = 0; r < int64_t{g.output_channels} * g.kernel_height; ++r) {
    std::memcpy(&padded[r * run], weights + r * used, used);
  }
  return padded;
}

// The AVX2 GEMM layout: [O / 8][depth_padded / 2][8][2] int16.
std::vector<Bytes64> PackAvx2GemmWeights(const int8_t* weights, int outputs, int depth,
                                         int depth_padded) {
  const int pairs = depth_padded / 2;
  const int64_t blocks = DivideRoundUp(outputs, 8);
  std::vector<Bytes64> packed(DivideRoundUp(blocks * pairs * 32, 64), Bytes64{});
  auto* w = reinterpret_cast<int16_t*>(packed.data());
  for (int o = 0; o < outputs; ++o) {
    for (int k = 0; k < depth; ++k) {
      w[((o / 8) * pairs + k / 2) * 16 + (o % 8) * 2 + k % 2] = weights[int64_t{o} * depth + k];
    }
  }
  return packed;
}

PackedGemmConv PackGemm(const ConvGeometry& g, int32_t input_zero_point,
                        const std::vector<QuantizedMultiplier>& multipliers,
                        const reference::Int8Output& output, const int8_t* weights,
                        const int32_t* bias, Isa isa) {
  PackedGemmConv conv;
  conv.geometry = g;
  conv.rows = int64_t{g.batch} * g.output_height * g.output_width;
  conv.depth = g.kernel_height * g.kernel_width * g.input_channels;
  // An AMX tile of 16 rows would be mostly idle on fewer (a batch-1 classifier).
  if (isa == Isa::kAvx512Amx && conv.rows < kAmxTileRows) isa = Isa::kAvx512Vnni;
  // A gathered conv of one AMX multiply per tile (depth <= 64) spends its
  // time gathering: the VNNI level's strips do without (MobileNetV2's first
  // conv, depth 27: 135 -> 93 us on an Intel Xeon).
  const bool pointwise = g.kernel_height == 1 && g.kernel_width == 1 && g.stride_h == 1 &&
                         g.stride_w == 1 && g.pad_top == 0 && g.pad_left == 0 &&
                         g.pad_bottom == 0 && g.pad_right == 0;
  if (isa == Isa::kAvx512Amx && !pointwise && conv.depth <= 64 && g.dilation_w == 1) {
    isa = Isa::kAvx512Vnni;
  }
  conv.isa = isa;
  const bool narrow = isa == Isa::kAvx512Vnni && g.output_channels <= 2 * kChannelsPerVector &&
                      conv.depth <= kMaxNarrowDirectDepth;
  conv.tile_rows = isa == Isa::kAvx512Amx ? kAmxTileRows
                   : isa == Isa::kAvx2    ? kAvx2TileRows
                   : isa == Isa::kAvxVnni ? kAvxVnniTileRows
                   : narrow               ? kNarrowGemmTileRows
                                          : kGemmTileRows;
  conv.depth_padded = static_cast<int>(RoundUp(conv.depth, 4));
  if (isa == Isa::kAvx512Amx) {
    conv.amx_chunk = std::min(conv.depth_padded, 64);
    conv.depth_padded = static_cast<int>(RoundUp(conv.depth, conv.amx_chunk));
  }
  conv.direct = pointwise && conv.depth % 4 == 0 &&
                (isa != Isa::kAvx512Vnni || conv.depth <= kMaxDirectDepth);
  const int strip_run = static_cast<int>(RoundUp(int64_t{g.kernel_width} * g.input_channels, 4));
  // The AVX2 level widens a row's runs together, so they must fit its chunk.
  const bool strips = isa == Isa::kAvx512Vnni || isa == Isa::kAvxVnni ||
                      (isa == Isa::kAvx2 && g.kernel_height * strip_run + 16 <= kAvx2DepthChunk);
  if (strips && !pointwise && g.dilation_w == 1) {
    conv.strip_run = strip_run;
    conv.depth_padded = g.kernel_height * conv.strip_run;
    // The columns the row's taps read, and room for whole-vector writes and
    // a last run's read past them.
    const int64_t columns = int64_t{g.output_width - 1} * g.stride_w + g.kernel_width;
    conv.strip_bytes = RoundUp(columns * g.input_channels + 64, 64);
  }
  conv.input_zero_point = input_zero_point;
  // AMX multiplies signed by signed bytes, AVX2 int16 by int16; both VNNI
  // levels the activations as unsigned x + 128 by signed weights; the generic
  // level unsigned weights w + 128 by signed activations.
  if (conv.strip_run > 0) {
    const std::vector<int8_t> runs = PadRuns(weights, g, conv.strip_run);
    conv.weights = isa == Isa::kAvx2 ? PackAvx2GemmWeights(runs.data(), g.output_channels,
                                                           conv.depth_padded, conv.depth_padded)
                                     : PackGemmWeights(runs.data(), g.output_channels,
                                                       conv.depth_padded, conv.depth_padded, 0);
  } else if (isa == Isa::kAvx2) {
    conv.weights = PackAvx2GemmWeights(weights, g.output_channels, conv.depth, conv.depth_padded);
  } else {
    conv.weights = PackGemmWeights(weights, g.output_channels, conv.depth, conv.depth_padded,
                                   isa == Isa::kGeneric ? 128 : 0);
  }
  // sum_k (x - zx) * w = sum_k x * w - zx * sum_k w: the second term is
  // constant, and so is the VNNI levels' 128 * sum_k w.
  const bool flipped = isa == Isa::kAvx512Vnni || isa == Isa::kAvxVnni;
  const int32_t offset = input_zero_point + (flipped ? 128 : 0);
  std::vector<int32_t> corrected(g.output_channels);
  std::vector<int64_t> bounds(g.output_channels);
  for (int o = 0; o < g.output_channels; ++o) {
    const int8_t* w = weights + int64_t{o} * conv.depth;
    int32_t weight_sum = 0;
    for (int k = 0; k < conv.depth; ++k) weight_sum += w[k];
    corrected[o] = (bias != nullptr ? bias[o] : 0) - offset * weight_sum;
    bounds[o] =
        AccumulatorBound(w, conv.depth, input_zero_point, bias != nullptr ? bias + o : nullptr);
  }
  conv.epilogue = MakeEpilogue(IdentityOrder(g.output_channels), corrected, multipliers, bounds,
                               FloatScales(multipliers, bounds, output, isa), output);
  const int blocks = static_cast<int>(DivideRoundUp(g.output_channels, kChannelsPerVector));
  const bool few_tiles = conv.strip_run == 0 && DivideRoundUp(conv.rows, conv.tile_rows) < 8;
  conv.blocks_per_unit = few_tiles ? 4 : blocks;
  conv.column_parts = static_cast<int>(DivideRoundUp(blocks, conv.blocks_per_unit));
  if (conv.strip_run > 0) {
    conv.scratch_bytes = GemmConvUnits(conv) * g.kernel_height * conv.strip_bytes;
    return conv;
  }
  // Per column part: gathered rows, in whole tiles; with AMX and a direct
  // GEMM, only a short last tile's rows, copied. Plus the bytes an AMX tile
  // load reads past a row's depth.
  const int64_t rows = conv.direct ? (isa == Isa::kAvx512Amx ? conv.tile_rows : 0)
                                   : RoundUp(conv.rows, conv.tile_rows);
  conv.scratch_bytes = rows == 0 ? 0 : conv.column_parts * rows * conv.depth_padded + 64;
  return conv;
}

// --- generic level -----------------------------------------------------------

// The accumulators of 16 channels of one row: the packed weights' sum of
// (w + 128) * x, wrapping as the SIMD kernels do (unsigned, so without UB).
void GemmBlock(const Bytes64* weights, int depth_groups, const int8_t* a, uint32_t acc[16]) {
  for (int kk = 0; kk < depth_groups; ++kk) {
    const uint8_t* w = weights[kk].bytes;
    for (int lane = 0; lane < kChannelsPerVector; ++lane) {
      for (int i = 0; i < 4; ++i) {
        acc[lane] += uint32_t{w[lane * 4 + i]} * static_cast<uint32_t>(int32_t{a[kk * 4 + i]});
      }
    }
  }
}

void GenericGemmRow(const PackedGemmConv& conv, const int8_t* a, int first_block, int end_block,
                    int8_t* out) {
  const int depth_groups = conv.depth_padded / 4;
  int32_t row_sum = 0;
  for (int k = 0; k < conv.depth_padded; ++k) row_sum += a[k];
  const ChannelEpilogue& e = conv.epilogue;
  const int outputs = conv.geometry.output_channels;
  for (int block = first_block; block < end_block; ++block) {
    uint32_t acc[kChannelsPerVector];
    for (int lane = 0; lane < kChannelsPerVector; ++lane) {
      acc[lane] = static_cast<uint32_t>(e.bias[block * kChannelsPerVector + lane]) -
                  128u * static_cast<uint32_t>(row_sum);
    }
    GemmBlock(&conv.weights[static_cast<size_t>(block) * depth_groups], depth_groups, a, acc);
    for (int lane = 0; lane < kChannelsPerVector; ++lane) {
      const int o = block * kChannelsPerVector + lane;
      if (o >= outputs) break;
      out[o] = RequantizeToInt8(static_cast<int32_t>(acc[lane]), e.multipliers[o],
                                e.output.zero_point, e.output.qmin, e.output.qmax);
    }
  }
}

void GenericGemmConv(const PackedGemmConv& conv, const int8_t* input, int8_t* output,
                     uint8_t* scratch, int64_t begin, int64_t end) {
  for (int64_t unit = begin; unit < end; ++unit) {
    const GemmUnit part(conv, unit);
    const int8_t* rows[kGemmTileRows];
    FindUnitRows(conv, input, scratch, part, rows);
    for (int r = 0; r < part.rows; ++r) {
      GenericGemmRow(conv, rows[r], part.first_block, part.end_block,
                     output + (part.first_row + r) * conv.geometry.output_channels);
    }
  }
}

// Tap t's input pixel for output (n, oy, ox), or null where it is padding.
const int8_t* TapPixel(const ConvGeometry& g, const int8_t* input, int n, int oy, int ox, int ky,
                       int kx) {
  const int64_t iy = int64_t{oy} * g.stride_h - g.pad_top + int64_t{ky} * g.dilation_h;
  const int64_t ix = int64_t{ox} * g.stride_w - g.pad_left + int64_t{kx} * g.dilation_w;
  if (iy < 0 || iy >= g.input_height || ix < 0 || ix >= g.input_width) return nullptr;
  return input + ((int64_t{n} * g.input_height + iy) * g.input_width + ix) * g.input_channels;
}

void GenericDepthwise(const PackedDepthwise& conv, const int8_t* input, int8_t* output,
                      int64_t begin, int64_t end) {
  const ConvGeometry& g = conv.geometry;
  const int channels = g.input_channels, taps = g.kernel_height * g.kernel_width;
  const int8_t* weights = reinterpret_cast<const int8_t*>(conv.weights.data());  // [taps][C]
  const ChannelEpilogue& e = conv.epilogue;
  for (int64_t unit = begin; unit < end; ++unit) {
    const int n = static_cast<int>(unit / g.output_height);
    const int oy = static_cast<int>(unit % g.output_height);
    for (int ox = 0; ox < g.output_width; ++ox) {
      int8_t* out = output + ((int64_t{n} * g.output_height + oy) * g.output_width + ox) * channels;
      for (int c0 = 0; c0 < channels; c0 += kChannelPadding) {
        const int width = std::min(kChannelPadding, channels - c0);
        int32_t acc[kChannelPadding];
        std::memcpy(acc, &e.bias[c0], sizeof(acc));
        for (int t = 0; t < taps; ++t) {
          const int8_t* x = TapPixel(g, input, n, oy, ox, t / g.kernel_width, t % g.kernel_width);
          if (x == nullptr) continue;  // zero padding: a real 0 adds nothing
          const int8_t* w = weights + int64_t{t} * channels + c0;
          for (int c = 0; c < width; ++c) {
            acc[c] += (int32_t{x[c0 + c]} - conv.input_zero_point) * int32_t{w[c]};
          }
        }
        for (int c = 0; c < width; ++c) {
          out[c0 + c] = RequantizeToInt8(acc[c], e.multipliers[c0 + c], e.output.zero_point,
                                         e.output.qmin, e.output.qmax);
        }
      }
    }
  }
}

int Blocks(const PackedGemmConv& conv) {
  return static_cast<int>(DivideRoundUp(conv.geometry.output_channels, kChannelsPerVector));
}

// Channel c of a 16-channel block as the AVX2 depthwise kernel's
// vpunpck{l,h}wd leave it: positions 0-7 hold channels 0-3 and 8-11, positions
// 8-15 hold channels 4-7 and 12-15.
int Avx2Position(int c) { return (c % 8) / 4 * 8 + c / 8 * 4 + c % 4; }

std::vector<int> Avx2DepthwiseOrder(int channels) {
  std::vector<int> order(RoundUp(channels, kChannelPadding), -1);
  for (int c = 0; c < channels; ++c) order[c / 16 * 16 + Avx2Position(c % 16)] = c;
  return order;
}

// [C / 16][taps / 2][lo, hi][16 x 2] int16: for each pair of taps (an odd
// count's last one paired with zeros), tap t and t + 1 of one channel side by
// side, in the order of Avx2Position.
void PackAvx2Depthwise(const int8_t* filter, int channels, int taps, PackedDepthwise& conv) {
  const int pairs = (taps + 1) / 2;
  // A last group of fewer than 16 channels has zero weights past them.
  conv.weights.assign(DivideRoundUp(int64_t{channels}, 16) * pairs, Bytes64{});
  auto* w = reinterpret_cast<int16_t*>(conv.weights.data());
  for (int c = 0; c < channels; ++c) {
    for (int t = 0; t < taps; ++t) {
      w[((c / 16) * pairs + t / 2) * 32 + Avx2Position(c % 16) * 2 + t % 2] =
          filter[int64_t{c} * taps + t];
    }
  }
}

// PackedDepthwise's column layout of a 3x3 filter [C][3][3], for its first
// `blocks` 64-channel blocks.
void PackColumns(const int8_t* filter, const std::vector<int32_t>& bias,
                 const std::vector<int64_t>& bounds, const std::vector<float>& float_scales,
                 const reference::Conv2DInt8Params& params, int blocks, PackedDepthwise& conv) {
  conv.column_blocks = blocks;
  conv.column_weights.assign(static_cast<size_t>(blocks) * 12, Bytes64{});
  std::vector<int> order(static_cast<size_t>(blocks) * 64);
  for (int block = 0; block < blocks; ++block) {
    for (int r = 0; r < 4; ++r) {
      for (int lane = 0; lane < 16; ++lane) {
        const int c = block * 64 + lane / 4 * 16 + r * 4 + lane % 4;
        order[block * 64 + r * 16 + lane] = c;
        for (int kx = 0; kx < 3; ++kx) {
          Bytes64& v = conv.column_weights[(static_cast<size_t>(block) * 3 + kx) * 4 + r];
          for (int ky = 0; ky < 3; ++ky) {
            v.bytes[lane * 4 + ky] = static_cast<uint8_t>(filter[int64_t{c} * 9 + ky * 3 + kx]);
          }
        }
      }
    }
  }
  conv.column_epilogue =
      MakeEpilogue(order, bias, params.multipliers, bounds, float_scales, params.output);
}

// PackedDepthwise's column layout of a 3x3 filter [C][3][3] for the channels
// after its column blocks.
void PackColumnTail(const int8_t* filter, const std::vector<int32_t>& bias,
                    const std::vector<int64_t>& bounds, const std::vector<float>& float_scales,
                    const reference::Conv2DInt8Params& params, PackedDepthwise& conv) {
  const int c0 = conv.column_blocks * 64, tail = params.geometry.input_channels - c0;
  conv.column_tail_groups = (tail + 15) / 16;
  conv.column_tail_weights.assign(static_cast<size_t>(conv.column_tail_groups) * 3, Bytes64{});
  std::vector<int> order(static_cast<size_t>(conv.column_tail_groups) * 16, -1);
  for (int i = 0; i < tail; ++i) {
    const int c = c0 + i;
    order[i] = c;
    for (int kx = 0; kx < 3; ++kx) {
      Bytes64& v = conv.column_tail_weights[static_cast<size_t>(i / 16) * 3 + kx];
      for (int ky = 0; ky < 3; ++ky) {
        v.bytes[(i % 16) * 4 + ky] = static_cast<uint8_t>(filter[int64_t{c} * 9 + ky * 3 + kx]);
      }
    }
  }
  conv.column_tail_epilogue =
      MakeEpilogue(order, bias, params.multipliers, bounds, float_scales, params.output);
}

int64_t ElementEnd(int64_t size, int64_t end) { return std::min(size, end * kElementsPerUnit); }

}  // namespace

RequantMode ModeFor(const reference::Int8Output& output, bool any_left_shift) {
  if (any_left_shift) return RequantMode::kLeftShift;
  return output.qmin >= output.zero_point ? RequantMode::kNegativesClamp : RequantMode::kExact;
}

bool ExactInDouble(const QuantizedMultiplier& m, int64_t acc_bound) {
  const int t = 31 - m.exponent;
  if (m.exponent > 0 || t > 51) return false;
  const int v = __builtin_ctz(static_cast<uint32_t>(m.multiplier));
  // An int32 accumulator's magnitude is at most 2^31 whatever the bound.
  return std::min<int64_t>(acc_bound, int64_t{1} << 31) < (int64_t{1} << (t - 1 - v));
}

namespace {

// floor(x) for |x| < 2^62, without a call to libm's floor (the portable
// build has no rounding instruction): FloatScaleFor takes it at every step of
// every channel when an interpreter is made.
int64_t Floor(double x) {
  const int64_t truncated = static_cast<int64_t>(x);
  return static_cast<double>(truncated) > x ? truncated - 1 : truncated;
}

// The single-precision output stage of FloatScaleFor, as the kernels compute
// it, without a float FMA (a software one is slow, and follows the caller's
// rounding mode): the FMA's exact result 1.5 * 2^23 + zero point + acc * scale
// lies where a float's step is 1, so it rounds to the nearest integer, a tie
// to the even one. acc * scale is exact in double precision (24 + 24 bits).
int32_t FloatOutput(int64_t acc, float scale, const reference::Int8Output& output) {
  const double product = static_cast<double>(acc) * static_cast<double>(scale);
  int64_t rounded = Floor(product);
  const double fraction = product - static_cast<double>(rounded);  // exact
  // 1.5 * 2^23 is even: a tie goes where rounded + zero point is even.
  if (fraction > 0.5 || (fraction == 0.5 && (rounded + output.zero_point) % 2 != 0)) ++rounded;
  return static_cast<int32_t>(
      std::clamp<int64_t>(rounded + output.zero_point, output.qmin, output.qmax));
}

// Whether `scale` gives RequantizeToInt8's outputs for every accumulator in
// [-bound, bound]. Both are non-decreasing in acc, so they are equal if they
// are at the ends and every level between steps up at the same acc on both
// sides. Where that acc is far enough from the level's rounding boundary that
// scale's difference from m cannot move it (almost every level), double
// precision shows it; elsewhere both sides are evaluated there.
bool FloatScaleHolds(const QuantizedMultiplier& m, int64_t bound, float scale,
                     const reference::Int8Output& output) {
  auto reference = [&](int64_t acc) {
    return int32_t{RequantizeToInt8(static_cast<int32_t>(acc), m, output.zero_point, output.qmin,
                                    output.qmax)};
  };
  const int32_t bottom = reference(-bound), top = reference(bound);
  if (FloatOutput(-bound, scale, output) != bottom || FloatOutput(bound, scale, output) != top) {
    return false;
  }
  const double real = RealMultiplier(m), inverse = 1.0 / real;
  const double difference = std::abs(static_cast<double>(scale) - real);
  // Covers the rounding of acc * real in double precision (|acc * real| < 2^22).
  constexpr double kSlack = 1e-6;
  for (int32_t level = bottom + 1; level <= top; ++level) {
    // The first acc whose output reaches `level` (> -bound, as level > bottom)
    // is near (level - zp - 1/2) / m.
    const double boundary = level - output.zero_point - 0.5;
    int64_t first = std::clamp<int64_t>(Floor(boundary * inverse) + 1, -bound + 1, bound);
    const double margin = static_cast<double>(std::abs(first) + 1) * difference + kSlack;
    if (first * real - boundary > margin && boundary - (first - 1) * real > margin) continue;
    int32_t below = reference(first - 1), at = reference(first);
    while (below >= level) at = below, below = reference(--first - 1);
    while (at < level) below = at, at = reference(++first);
    if (FloatOutput(first, scale, output) != at || FloatOutput(first - 1, scale, output) != below) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::optional<float> FloatScaleFor(const QuantizedMultiplier& m, int64_t acc_bound,
                                   const reference::Int8Output& output) {
  constexpr int64_t kMaxExactAcc = int64_t{1} << 24;
  const double real = RealMultiplier(m);
  if (acc_bound > kMaxExactAcc || acc_bound * real + std::abs(output.zero_point) + 2 >= 0x1p22) {
    return std::nullopt;
  }
  // m's nearest float first, then its neighbours, nearest first.
  const float nearest = static_cast<float>(real);
  float up = nearest, down = nearest;
  if (FloatScaleHolds(m, acc_bound, nearest, output)) return nearest;
  for (int step = 1; step <= 2; ++step) {
    up = std::nextafter(up, INFINITY);
    down = std::nextafter(down, 0.0f);
    if (FloatScaleHolds(m, acc_bound, up, output)) return up;
    if (FloatScaleHolds(m, acc_bound, down, output)) return down;
  }
  return std::nullopt;
}

RequantBlock UniformRequantBlock(const QuantizedMultiplier& m, int32_t zero_point) {
  QuantizedMultiplier same[kChannelsPerVector];
  std::fill(same, same + kChannelsPerVector, m);
  return MakeRequantBlock(same, zero_point);
}

bool AddExactInDouble(const reference::AddInt8Params& p) {
  // An input minus its zero point is within +-255, shifted left by
  // kAddLeftShift; each rescaled input is at most half that, so their sum too.
  const int64_t shifted_bound = int64_t{255} << reference::kAddLeftShift;
  auto input_ok = [&](const QuantizedMultiplier& m) {
    return IsHalf(m) || ExactInDouble(m, shifted_bound);
  };
  return input_ok(p.a_multiplier) && input_ok(p.b_multiplier) &&
         ExactInDouble(p.output_multiplier, shifted_bound);
}

void GatherConvRow(const PackedGemmConv& conv, const int8_t* input, const OutputPixel& pixel,
                   uint8_t* out) {
  const ConvGeometry& g = conv.geometry;
  const int n = pixel.n, oy = pixel.oy, ox = pixel.ox;
  const size_t c = static_cast<size_t>(g.input_channels);
  // Where the kernel's columns all lie inside the image (and are adjacent), a
  // kernel row is one run of KW * C input bytes.
  const int64_t ix0 = int64_t{ox} * g.stride_w - g.pad_left;
  const bool columns_inside = g.dilation_w == 1 && ix0 >= 0 && ix0 + g.kernel_width <= g.input_width;
  for (int ky = 0; ky < g.kernel_height; ++ky) {
    const int64_t iy = int64_t{oy} * g.stride_h - g.pad_top + int64_t{ky} * g.dilation_h;
    if (columns_inside && iy >= 0 && iy < g.input_height) {
      const size_t run = c * g.kernel_width;
      std::memcpy(out, input + ((int64_t{n} * g.input_height + iy) * g.input_width + ix0) * c, run);
      out += run;
      continue;
    }
    for (int kx = 0; kx < g.kernel_width; ++kx, out += c) {
      const int8_t* x = TapPixel(g, input, n, oy, ox, ky, kx);
      if (x != nullptr) {
        std::memcpy(out, x, c);
      } else {
        std::memset(out, static_cast<uint8_t>(conv.input_zero_point), c);
      }
    }
  }
  std::memset(out, 0, static_cast<size_t>(conv.depth_padded - conv.depth));
}

void FindUnitRows(const PackedGemmConv& conv, const int8_t* input, uint8_t* scratch,
                  const GemmUnit& unit, const int8_t** rows) {
  OutputPixel pixel(conv.geometry, unit.first_row);
  for (int m = 0; m < unit.rows; ++m, pixel.Next(conv.geometry)) {
    if (conv.direct) {
      rows[m] = input + (unit.first_row + m) * conv.depth;
    } else {
      uint8_t* gathered = unit.ScratchRows(conv, scratch) + int64_t{m} * conv.depth_padded;
      GatherConvRow(conv, input, pixel, gathered);
      rows[m] = reinterpret_cast<const int8_t*>(gathered);
    }
  }
}

PackedGemmConv PackGemmConv(const reference::Conv2DInt8Params& params, const int8_t* filter,
                            const int32_t* bias, Isa isa) {
  return PackGemm(params.geometry, params.input_zero_point, params.multipliers, params.output,
                  filter, bias, isa);
}

PackedGemmConv PackFullyConnected(const reference::FullyConnectedInt8Params& params,
                                  const int8_t* weights, const int32_t* bias, Isa isa) {
  ConvGeometry g;
  g.batch = params.batch;
  g.input_channels = params.input_features;
  g.output_channels = params.output_features;
  return PackGemm(g, params.input_zero_point, params.multipliers, params.output, weights, bias,
                  isa);
}

int64_t GemmConvUnits(const PackedGemmConv& conv) {
  if (conv.strip_run > 0) return int64_t{conv.geometry.batch} * conv.geometry.output_height;
  return DivideRoundUp(conv.rows, conv.tile_rows) * conv.column_parts;
}

GemmUnit::GemmUnit(const PackedGemmConv& conv, int64_t unit) {
  const int parts = conv.column_parts;
  const int64_t tile = parts == 1 ? unit : unit / parts;  // no division on the common path
  first_row = tile * conv.tile_rows;
  rows = static_cast<int>(std::min<int64_t>(conv.tile_rows, conv.rows - first_row));
  part = static_cast<int>(unit - tile * parts);
  first_block = part * conv.blocks_per_unit;
  end_block = std::min(first_block + conv.blocks_per_unit, Blocks(conv));
}

uint8_t* GemmUnit::ScratchRows(const PackedGemmConv& conv, uint8_t* scratch) const {
  const int64_t rows_per_part =
      conv.direct ? conv.tile_rows : RoundUp(conv.rows, conv.tile_rows);
  const int64_t first = part * rows_per_part + (conv.direct ? 0 : first_row);
  return scratch + first * conv.depth_padded;
}

void RunGemmConv(const PackedGemmConv& conv, const int8_t* input, int8_t* output,
                 uint8_t* scratch, int64_t begin, int64_t end) {
  if (conv.isa == Isa::kAvx512Amx) {
    amx::GemmConv(conv, input, output, scratch, begin, end);
  } else if (conv.isa == Isa::kAvx2) {
    avx2::GemmConv(conv, input, output, scratch, begin, end);
  } else if (conv.isa == Isa::kAvxVnni) {
    avxvnni::GemmConv(conv, input, output, scratch, begin, end);
  } else if (conv.isa == Isa::kAvx512Vnni) {
    avx512vnni::GemmConv(conv, input, output, scratch, begin, end);
  } else {
    GenericGemmConv(conv, input, output, scratch, begin, end);
  }
}

PackedDepthwise PackDepthwise(const reference::Conv2DInt8Params& params, const int8_t* filter,
                              const int32_t* bias, Isa isa) {
  const ConvGeometry& g = params.geometry;
  const int channels = g.input_channels, taps = g.kernel_height * g.kernel_width;
  const bool columns = g.kernel_height == 3 && g.kernel_width == 3 && g.dilation_h == 1 &&
                       g.dilation_w == 1 && (g.stride_w == 1 || g.stride_w == 2);
  // The AVX-VNNI level runs 3x3 convs column by column, the rest on AVX2's kernel.
  if (isa == Isa::kAvxVnni && !columns) isa = Isa::kAvx2;
  if (taps > kMaxDepthwiseTaps) isa = Isa::kGeneric;
  if (isa == Isa::kAvx512Amx) isa = Isa::kAvx512Vnni;  // no AMX depthwise kernel
  PackedDepthwise conv;
  conv.isa = isa;
  conv.geometry = g;
  conv.input_zero_point = params.input_zero_point;
  conv.padding_row.assign(channels + 128, static_cast<int8_t>(params.input_zero_point));
  std::vector<int32_t> corrected(channels);
  std::vector<int64_t> bounds(channels);
  for (int c = 0; c < channels; ++c) {
    int32_t weight_sum = 0;
    for (int t = 0; t < taps; ++t) weight_sum += filter[int64_t{c} * taps + t];
    bounds[c] = AccumulatorBound(filter + int64_t{c} * taps, taps, params.input_zero_point,
                                 bias != nullptr ? bias + c : nullptr);
    // The VNNI kernels sum (x + 128) * w, the AVX2 one x * w, the generic
    // one (x - zx) * w.
    const bool flipped = isa == Isa::kAvx512Vnni || isa == Isa::kAvxVnni;
    const int32_t offset = flipped             ? params.input_zero_point + 128
                           : isa == Isa::kAvx2 ? params.input_zero_point
                                               : 0;
    corrected[c] = (bias != nullptr ? bias[c] : 0) - offset * weight_sum;
  }
  if (isa == Isa::kAvx2) {
    PackAvx2Depthwise(filter, channels, taps, conv);
    conv.epilogue =
        MakeEpilogue(Avx2DepthwiseOrder(channels), corrected, params.multipliers, bounds,
                     FloatScales(params.multipliers, bounds, params.output, isa), params.output);
    return conv;
  }
  if (isa == Isa::kAvxVnni) {  // the column layouts only
    const std::vector<float> float_scales =
        FloatScales(params.multipliers, bounds, params.output, isa);
    conv.epilogue = MakeEpilogue(IdentityOrder(channels), corrected, params.multipliers, bounds,
                                 float_scales, params.output);
    PackColumns(filter, corrected, bounds, float_scales, params, channels / 64, conv);
    if (channels % 64 > 0) PackColumnTail(filter, corrected, bounds, float_scales, params, conv);
    return conv;
  }
  if (isa != Isa::kAvx512Vnni) {
    conv.weights.assign(DivideRoundUp(int64_t{taps} * channels, 64), Bytes64{});
    auto* w = reinterpret_cast<int8_t*>(conv.weights.data());
    for (int c = 0; c < channels; ++c) {
      for (int t = 0; t < taps; ++t) w[int64_t{t} * channels + c] = filter[int64_t{c} * taps + t];
    }
    conv.epilogue = MakeEpilogue(IdentityOrder(channels), corrected, params.multipliers, bounds, {},
                                 params.output);
    return conv;
  }
  const int full_blocks = channels / 64, tail = channels % 64;
  conv.tail_pixels = tail == 0 || tail > 32 ? 1 : tail > 16 ? 2 : 4;
  const int blocks = full_blocks + (tail > 0 ? 1 : 0);
  conv.weights.assign(static_cast<size_t>(blocks) * taps * 4, Bytes64{});
  std::vector<int> order(static_cast<size_t>(blocks) * 64, -1);
  for (int block = 0; block < blocks; ++block) {
    // Each of the block's pixel slots holds `width` bytes, `used` of them channels.
    const int width = block < full_blocks ? 64 : 64 / conv.tail_pixels;
    const int used = block < full_blocks ? 64 : tail;
    for (int r = 0; r < 4; ++r) {
      for (int j = 0; j < 16; ++j) {
        const int byte = 4 * j + r;
        if (byte % width >= used) continue;
        const int c = block * 64 + byte % width;
        order[block * 64 + r * 16 + j] = c;
        for (int t = 0; t < taps; ++t) {
          Bytes64& v = conv.weights[(static_cast<size_t>(block) * taps + t) * 4 + r];
          v.bytes[4 * j + r] = static_cast<uint8_t>(filter[int64_t{c} * taps + t]);
        }
      }
    }
  }
  const std::vector<float> float_scales =
      FloatScales(params.multipliers, bounds, params.output, isa);
  conv.epilogue =
      MakeEpilogue(order, corrected, params.multipliers, bounds, float_scales, params.output);
  if (columns) {
    PackColumns(filter, corrected, bounds, float_scales, params, full_blocks, conv);
    if (tail > 0) PackColumnTail(filter, corrected, bounds, float_scales, params, conv);
  }
  return conv;
}

int64_t DepthwiseUnits(const PackedDepthwise& conv) {
  return int64_t{conv.geometry.batch} * conv.geometry.output_height;
}

void RunDepthwise(const PackedDepthwise& conv, const int8_t* input, int8_t* output,
                  int64_t begin, int64_t end) {
  if (conv.isa == Isa::kAvx512Vnni) {
    avx512vnni::Depthwise(conv, input, output, begin, end);
  } else if (conv.isa == Isa::kAvxVnni) {
    avxvnni::Depthwise(conv, input, output, begin, end);
  } else if (conv.isa == Isa::kAvx2) {
    avx2::Depthwise(conv, input, output, begin, end);
  } else {
    GenericDepthwise(conv, input, output, begin, end);
  }
}

int64_t ElementUnits(int64_t size) { return DivideRoundUp(size, kElementsPerUnit); }

namespace {
// The AVX-VNNI level has GEMMs and 3x3 depthwise convs of its own and runs the
// other ops on AVX2's kernels.
bool OnAvx2Kernels(Isa isa) { return isa == Isa::kAvx2 || isa == Isa::kAvxVnni; }
}  // namespace

PackedAdd PackAdd(const reference::AddInt8Params& params, Isa isa) {
  PackedAdd add;
  add.isa = isa;
  add.params = params;
  add.a = UniformRequantBlock(params.a_multiplier);
  add.b = UniformRequantBlock(params.b_multiplier);
  add.output = UniformRequantBlock(params.output_multiplier, params.output.zero_point);
  return add;
}

void RunAdd(const PackedAdd& add, const int8_t* a, const int8_t* b, int8_t* output, int64_t begin,
            int64_t end) {
  const reference::AddInt8Params& params = add.params;
  const int64_t first = begin * kElementsPerUnit, last = ElementEnd(params.size, end);
  if (add.isa >= Isa::kAvx512Vnni) {
    avx512vnni::Add(add, a, b, output, first, last);
    return;
  }
  if (OnAvx2Kernels(add.isa)) {
    avx2::Add(add, a, b, output, first, last);
    return;
  }
  reference::AddInt8Params part = params;
  part.size = last - first;
  reference::AddInt8(part, a + first, b + first, output + first);
}

void RunQuantize(Isa isa, int64_t size, float scale, int32_t zero_point, const float* input,
                 int8_t* output, int64_t begin, int64_t end) {
  const int64_t first = begin * kElementsPerUnit, last = ElementEnd(size, end);
  if (isa >= Isa::kAvx512Vnni) {
    avx512vnni::Quantize(scale, zero_point, input, output, first, last);
  } else if (OnAvx2Kernels(isa)) {
    avx2::Quantize(scale, zero_point, input, output, first, last);
  } else {
    reference::QuantizeToInt8(last - first, scale, zero_point, input + first, output + first);
  }
}

void RunDequantize(Isa isa, int64_t size, float scale, int32_t zero_point, const int8_t* input,
                   float* output, int64_t begin, int64_t end) {
  const int64_t first = begin * kElementsPerUnit, last = ElementEnd(size, end);
  if (isa >= Isa::kAvx512Vnni) {
    avx512vnni::Dequantize(scale, zero_point, input, output, first, last);
  } else if (OnAvx2Kernels(isa)) {
    avx2::Dequantize(scale, zero_point, input, output, first, last);
  } else {
    reference::DequantizeInt8(last - first, scale, zero_point, input + first, output + first);
  }
}

void RunMean(Isa isa, const reference::MeanInt8Params& params, const int8_t* input,
             int8_t* output, int64_t begin, int64_t end) {
  if (isa >= Isa::kAvx512Vnni) {
    avx512vnni::Mean(params, input, output, begin, end);
    return;
  }
  if (OnAvx2Kernels(isa)) {
    avx2::Mean(params, input, output, begin, end);
    return;
  }
  const int64_t image = int64_t{params.height} * params.width * params.channels;
  reference::MeanInt8Params part = params;
  part.batch = static_cast<int>(end - begin);
  reference::MeanInt8(part, input + begin * image, output + begin * params.channels);
}

}  // namespace qforge::kernels

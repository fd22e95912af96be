// What the levels behind int8_kernels.h share, for the kernel files only: the
// portable helpers every level uses (tiling of GEMM work, depthwise tap
// addresses, im2col rows, the requantization mode dispatch) and the per-level
// entry points. Each level's file is compiled with that level's instructions
// enabled; its functions must run only when ResolveIsa allows the level.
#ifndef QFORGE_RUNTIME_KERNELS_INT8_KERNELS_ISA_H_
#define QFORGE_RUNTIME_KERNELS_INT8_KERNELS_ISA_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "runtime/kernels/int8_kernels.h"

namespace qforge::kernels {

// The most taps (KH * KW) the SIMD depthwise kernels take; larger kernels run
// on the generic level.
inline constexpr int kMaxDepthwiseTaps = 64;

// 1.5 * 2^23: float(acc) * s + this, rounded to nearest, holds round(acc * s)
// in its low bits (the single-precision requantization, FloatScaleFor).
inline constexpr float kFloatRoundingMagic = 0x1.8p23f;
// The high half of the double 1.5 * 2^52, the double-precision form's
// counterpart (ExactInDouble).
inline constexpr int32_t kHighHalfOf1p5x2p52 = 0x43380000;

// The SIMD levels' epilogue helpers are used by many template instances; GCC
// would otherwise call some of them, passing the accumulators through memory.
#define QFORGE_INLINE inline __attribute__((always_inline))

// Calls f(std::integral_constant<RequantMode, mode>()), so a kernel can be
// instantiated for the mode it runs in; the double-precision modes run in
// their integer forms, exact for any accumulator.
template <typename F>
void WithMode(RequantMode mode, const F& f) {
  switch (mode) {
    case RequantMode::kLeftShift:
      f(std::integral_constant<RequantMode, RequantMode::kLeftShift>());
      break;
    case RequantMode::kFloat:  // not from ModeFor; exact whatever the channels
      f(std::integral_constant<RequantMode, RequantMode::kLeftShift>());
      break;
    case RequantMode::kExact:
    case RequantMode::kDouble:
      f(std::integral_constant<RequantMode, RequantMode::kExact>());
      break;
    case RequantMode::kNegativesClamp:
    case RequantMode::kDoubleNegativesClamp:
      f(std::integral_constant<RequantMode, RequantMode::kNegativesClamp>());
      break;
  }
}

// WithMode for a conv's epilogue on the SIMD levels: kFloat where every
// channel allows it (the early, wide layers of MobileNetV2, where the output
// stage costs most), else kDouble where every channel is ExactInDouble (real
// layers' are), else kLeftShift, whose 64-bit form is exact for every
// channel, shifting left or not. kDoubleNegativesClamp and the other 64-bit
// modes would save an instruction or two a vector on the ops left, not worth
// more copies of every kernel (without kDoubleNegativesClamp the 224x224
// MobileNetV2 ran as fast, and the example application is 90 KB smaller).
template <typename F>
void WithEpilogueMode(const ChannelEpilogue& e, const F& f) {
  if (e.exact_in_float) {
    f(std::integral_constant<RequantMode, RequantMode::kFloat>());
  } else if (e.mode == RequantMode::kLeftShift || !e.exact_in_double) {
    f(std::integral_constant<RequantMode, RequantMode::kLeftShift>());
  } else {
    f(std::integral_constant<RequantMode, RequantMode::kDouble>());
  }
}

// Rows per GEMM tile (PackedGemmConv::tile_rows): the AVX-512 VNNI register
// tile's, which the generic level follows too, an AMX tile's, AVX2's or
// AVX-VNNI's (6 rows x 2 vectors of 8 channels: 12 of their 16 registers;
// at AVX2 6 rows ran MobileNetV2 in 0.91x the time of 4 on a Zen 5).
inline constexpr int kGemmTileRows = 6;
// The AVX-512 VNNI level's tiles of a GEMM of at most 2 blocks (32 channels),
// 12 x 1 or 12 x 2 vectors: with 6 rows a tile's own instructions outside the
// vpdpbusd (setting up its rows, its calls) took about a third of MobileNetV2's
// 16- and 24-channel 1x1 convs. Only up to half kMaxDirectDepth, the stack
// buffers' size.
inline constexpr int kNarrowGemmTileRows = 12;
inline constexpr int kMaxNarrowDirectDepth = kMaxDirectDepth / 2;
inline constexpr int kAmxTileRows = 16;
inline constexpr int kAvx2TileRows = 6;
inline constexpr int kAvxVnniTileRows = 6;
// The AVX2 level's widening buffer, in values a row; a strip row (KH *
// strip_run) must leave 16 of them free.
inline constexpr int kAvx2DepthChunk = 1024;

// The rows and 16-channel blocks of GEMM unit `unit`.
struct GemmUnit {
  int64_t first_row = 0;
  int rows = 0;  // at most conv.tile_rows
  int part = 0;  // which of the tile's column parts
  int first_block = 0, end_block = 0;

  GemmUnit(const PackedGemmConv& conv, int64_t unit);

  // Where the unit keeps its gathered (or copied) activation rows in the
  // scratch: each column part has its own copy, so units that share rows
  // never write the same bytes at once. Row r of the unit is at
  // ScratchRows(...) + r * conv.depth_padded.
  uint8_t* ScratchRows(const PackedGemmConv& conv, uint8_t* scratch) const;
};

// The output pixel (n, oy, ox) of a GEMM row, stepped row by row without the
// divisions that finding it from scratch takes.
struct OutputPixel {
  int n = 0, oy = 0, ox = 0;

  OutputPixel(const reference::ConvGeometry& g, int64_t row)
      : n(static_cast<int>(row / (int64_t{g.output_height} * g.output_width))),
        oy(static_cast<int>(row / g.output_width % g.output_height)),
        ox(static_cast<int>(row % g.output_width)) {}
  void Next(const reference::ConvGeometry& g) {
    if (++ox < g.output_width) return;
    ox = 0;
    if (++oy < g.output_height) return;
    oy = 0;
    ++n;
  }
};

// The im2col row of output pixel `pixel` for a non-direct GEMM conv:
// depth_padded bytes, with the input zero point at padding positions and 0
// past depth.
void GatherConvRow(const PackedGemmConv& conv, const int8_t* input, const OutputPixel& pixel,
                   uint8_t* out);

// The strips of output row (n, oy) (PackedGemmConv::strip_run): for each ky,
// the input columns its taps read, ix = -pad_left on, copied by
// copy(src, bytes, dst) (the VNNI levels' flips them to x + 128), with the
// input zero point as copy leaves it in padding, and the bytes a last run
// reads past them. `copy` is a lambda, so each level's kernel file has its own
// instantiation, built for its instructions (with a plain function's type,
// the files would share one, and the linker could keep the AVX-512 file's).
template <typename Copy>
void FillStrips(const PackedGemmConv& conv, const int8_t* input, int n, int oy, uint8_t* strips,
                const Copy& copy) {
  const reference::ConvGeometry& g = conv.geometry;
  const int64_t c = g.input_channels;
  const int64_t columns = int64_t{g.output_width - 1} * g.stride_w + g.kernel_width;
  const int64_t bytes = columns * c + (conv.strip_run - int64_t{g.kernel_width} * c);
  const auto zero_point = static_cast<int8_t>(conv.input_zero_point);
  uint8_t padding;
  copy(&zero_point, 1, &padding);
  // Columns [first, end) of the strip are inside the image.
  const int64_t first = std::min<int64_t>(g.pad_left, columns);
  const int64_t end = std::max(first, std::min<int64_t>(g.pad_left + g.input_width, columns));
  for (int ky = 0; ky < g.kernel_height; ++ky, strips += conv.strip_bytes) {
    const int64_t iy = int64_t{oy} * g.stride_h - g.pad_top + int64_t{ky} * g.dilation_h;
    if (iy < 0 || iy >= g.input_height || first == end) {
      std::memset(strips, padding, bytes);
      continue;
    }
    const int8_t* row = input + (int64_t{n} * g.input_height + iy) * g.input_width * c;
    std::memset(strips, padding, first * c);
    copy(row + (first - g.pad_left) * c, (end - first) * c, strips + first * c);
    std::memset(strips + end * c, padding, bytes - end * c);
  }
}

// rows[m] for m < unit.rows: row m of the unit's A, the input's own row for a
// direct GEMM, else gathered into the unit's scratch rows (GatherConvRow).
void FindUnitRows(const PackedGemmConv& conv, const int8_t* input, uint8_t* scratch,
                  const GemmUnit& unit, const int8_t** rows);

// The constants of 16 channels that all share one multiplier; zero_point goes
// into the double-precision form's offset.
RequantBlock UniformRequantBlock(const QuantizedMultiplier& m, int32_t zero_point = 0);

// Whether m is 1/2 exactly, as an add's multiplier for the input with the
// larger scale is: that input's rescale is a shift.
inline bool IsHalf(const QuantizedMultiplier& m) {
  return m.multiplier == (1 << 30) && m.exponent == 0;
}

// Where each tap of an output row reads: the input pixel of output column ox,
// or the padding row. Columns [first_inside, last_inside] have every tap's
// column inside the image, so only the rows can fall outside there.
class RowTaps {
 public:
  RowTaps(const PackedDepthwise& conv, const int8_t* input, int n, int oy)
      : conv_(conv), g_(conv.geometry), input_(input) {
    const int64_t reach = int64_t{g_.kernel_width - 1} * g_.dilation_w;
    first_inside_ = (g_.pad_left + g_.stride_w - 1) / g_.stride_w;
    // Floor division: a kernel wider than the image has no such column.
    const int64_t last_start = g_.input_width - 1 - reach + g_.pad_left;
    last_inside_ = last_start < 0 ? -1 : last_start / g_.stride_w;
    for (int ky = 0, t = 0; ky < g_.kernel_height; ++ky) {
      const int64_t iy = int64_t{oy} * g_.stride_h - g_.pad_top + int64_t{ky} * g_.dilation_h;
      for (int kx = 0; kx < g_.kernel_width; ++kx, ++t) {
        row_inside_[t] = iy >= 0 && iy < g_.input_height;
        // Input element offset of tap t for output column 0, as if inside.
        offset_[t] = ((int64_t{n} * g_.input_height + iy) * g_.input_width - g_.pad_left +
                      int64_t{kx} * g_.dilation_w) * g_.input_channels;
      }
    }
  }

  // Whether every tap of output column ox is in a column of the image.
  bool Inside(int ox) const { return ox >= first_inside_ && ox <= last_inside_; }

  void Find(int ox, const int8_t** taps) const {
    const int tap_count = g_.kernel_height * g_.kernel_width;
    const int8_t* padding = conv_.padding_row.data();
    if (ox >= first_inside_ && ox <= last_inside_) {
      const int64_t column = int64_t{ox} * g_.stride_w * g_.input_channels;
      for (int t = 0; t < tap_count; ++t) {
        taps[t] = row_inside_[t] ? input_ + offset_[t] + column : padding;
      }
      return;
    }
    for (int t = 0; t < tap_count; ++t) {
      const int64_t ix = int64_t{ox} * g_.stride_w - g_.pad_left +
                         int64_t{t % g_.kernel_width} * g_.dilation_w;
      const bool inside = row_inside_[t] && ix >= 0 && ix < g_.input_width;
      taps[t] = inside ? input_ + offset_[t] + int64_t{ox} * g_.stride_w * g_.input_channels
                       : padding;
    }
  }

 private:
  const PackedDepthwise& conv_;
  const reference::ConvGeometry& g_;
  const int8_t* input_;
  int64_t first_inside_, last_inside_;
  bool row_inside_[kMaxDepthwiseTaps];
  int64_t offset_[kMaxDepthwiseTaps];
};

// The three input columns that output column ox of a 3x3 depthwise conv
// reads, each as N vectors: cols[kx] holds input column ox * stride -
// pad_left + kx, loaded by load(ix, cols[kx]). Swept along an output row, each
// column is loaded once and kept for the next output (stride 1) or the one
// after (stride 2). (Deduced, not named as a template argument, the vector
// type keeps its attributes.) Each level keeps its own `load` and the lookup
// of a column's rows: shared too, they moved GCC's register allocation in
// these loops and made some depthwise ops up to 1.3x slower (2026-12-03).
template <typename V, int N, typename Load>
QFORGE_INLINE void StartColumns(V (&cols)[3][N], int pad_left, const Load& load) {
  load(-pad_left, cols[0]);
  load(1 - pad_left, cols[1]);
  load(2 - pad_left, cols[2]);
}
// Moves the columns from output column ox - 1 to ox, 0 < ox; stride is 1 or 2.
template <typename V, int N, typename Load>
QFORGE_INLINE void AdvanceColumns(V (&cols)[3][N], int ox, int stride, int pad_left,
                                  const Load& load) {
  const int64_t ix = int64_t{ox} * stride - pad_left;
  if (stride == 1) {
    for (int i = 0; i < N; ++i) cols[0][i] = cols[1][i], cols[1][i] = cols[2][i];
  } else {
    for (int i = 0; i < N; ++i) cols[0][i] = cols[2][i];
    load(ix + 1, cols[1]);
  }
  load(ix + 2, cols[2]);
}

namespace avx512vnni {
void GemmConv(const PackedGemmConv& conv, const int8_t* input, int8_t* output, uint8_t* scratch,
              int64_t begin, int64_t end);
void Depthwise(const PackedDepthwise& conv, const int8_t* input, int8_t* output, int64_t begin,
               int64_t end);
void Add(const PackedAdd& add, const int8_t* a, const int8_t* b, int8_t* output, int64_t begin,
         int64_t end);
void Mean(const reference::MeanInt8Params& params, const int8_t* input, int8_t* output,
          int64_t begin, int64_t end);
void Quantize(float scale, int32_t zero_point, const float* input, int8_t* output, int64_t begin,
              int64_t end);
void Dequantize(float scale, int32_t zero_point, const int8_t* input, float* output,
                int64_t begin, int64_t end);
}  // namespace avx512vnni

namespace avx2 {
void GemmConv(const PackedGemmConv& conv, const int8_t* input, int8_t* output, uint8_t* scratch,
              int64_t begin, int64_t end);
void Depthwise(const PackedDepthwise& conv, const int8_t* input, int8_t* output, int64_t begin,
               int64_t end);
void Add(const PackedAdd& add, const int8_t* a, const int8_t* b, int8_t* output, int64_t begin,
         int64_t end);
void Mean(const reference::MeanInt8Params& params, const int8_t* input, int8_t* output,
          int64_t begin, int64_t end);
void Quantize(float scale, int32_t zero_point, const float* input, int8_t* output, int64_t begin,
              int64_t end);
void Dequantize(float scale, int32_t zero_point, const int8_t* input, float* output,
                int64_t begin, int64_t end);
}  // namespace avx2

namespace avxvnni {
void GemmConv(const PackedGemmConv& conv, const int8_t* input, int8_t* output, uint8_t* scratch,
              int64_t begin, int64_t end);
// 3x3 depthwise convs at stride 1 or 2 without dilation (the column layouts).
void Depthwise(const PackedDepthwise& conv, const int8_t* input, int8_t* output, int64_t begin,
               int64_t end);
}  // namespace avxvnni

namespace amx {
void GemmConv(const PackedGemmConv& conv, const int8_t* input, int8_t* output, uint8_t* scratch,
              int64_t begin, int64_t end);
}  // namespace amx

}  // namespace qforge::kernels

#endif  // QFORGE_RUNTIME_KERNELS_INT8_KERNELS_ISA_H_

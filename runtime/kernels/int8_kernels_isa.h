// The per-level implementations behind int8_kernels.h, for its dispatch only.
// Each level's file is compiled with that level's instructions enabled; its
// functions must run only when ResolveIsa allows the level.
#ifndef QFORGE_RUNTIME_KERNELS_INT8_KERNELS_ISA_H_
#define QFORGE_RUNTIME_KERNELS_INT8_KERNELS_ISA_H_

#include <cstdint>

#include "runtime/kernels/int8_kernels.h"

namespace qforge::kernels {

// The most taps (KH * KW) the SIMD depthwise kernels take; larger kernels run
// on the generic level.
inline constexpr int kMaxDepthwiseTaps = 64;

// Rows per GEMM tile (PackedGemmConv::tile_rows): the AVX-512 VNNI register
// tile's, which the generic level follows too, or an AMX tile's.
inline constexpr int kGemmTileRows = 6;
inline constexpr int kAmxTileRows = 16;

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

// The constants of 16 channels that all share one multiplier.
RequantBlock UniformRequantBlock(const QuantizedMultiplier& m);

namespace avx512vnni {
void GemmConv(const PackedGemmConv& conv, const int8_t* input, int8_t* output, uint8_t* scratch,
              int64_t begin, int64_t end);
void Depthwise(const PackedDepthwise& conv, const int8_t* input, int8_t* output, int64_t begin,
               int64_t end);
void Add(const reference::AddInt8Params& params, const int8_t* a, const int8_t* b, int8_t* output,
         int64_t begin, int64_t end);
void Mean(const reference::MeanInt8Params& params, const int8_t* input, int8_t* output,
          int64_t begin, int64_t end);
void Quantize(float scale, int32_t zero_point, const float* input, int8_t* output, int64_t begin,
              int64_t end);
void Dequantize(float scale, int32_t zero_point, const int8_t* input, float* output,
                int64_t begin, int64_t end);
}  // namespace avx512vnni

namespace amx {
void GemmConv(const PackedGemmConv& conv, const int8_t* input, int8_t* output, uint8_t* scratch,
              int64_t begin, int64_t end);
}  // namespace amx

}  // namespace qforge::kernels

#endif  // QFORGE_RUNTIME_KERNELS_INT8_KERNELS_ISA_H_

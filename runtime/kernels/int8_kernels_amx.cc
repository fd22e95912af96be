// The AVX-512 AMX level of int8_kernels.h: GEMMs on AMX-INT8 tiles, everything
// else as the AVX-512 VNNI level. Compiled with -mamx-tile -mamx-int8 and the
// AVX-512 flags (see BUILD); runs only where ResolveIsa allows it, which
// includes Linux's permission to use the tiles (isa.cc).
//
// A tile multiply (tdpbssd) takes 16 rows of activations, up to 64 signed
// bytes each, and the weights in the same [K / 4][16][4] layout the VNNI GEMM
// packs, as signed bytes: no unsigned-operand correction is needed, only the
// input zero point's, folded into the bias when packing. Each 16-row tile of
// the output is computed for up to 64 channels in four accumulator tiles,
// stored, and requantized by the AVX-512 epilogue.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "runtime/kernels/int8_kernels_avx512_inl.h"
#include "runtime/kernels/int8_kernels_isa.h"

namespace qforge::kernels::amx {
namespace {

using avx512::ByteMask;
using avx512::GatherRow;
using avx512::LacksZeroPoint;
using avx512::LoadRequants;
using avx512::OutputStage;
using avx512::PackToInt8InOrder;
using avx512::StoreNarrowRows;

// LDTILECFG's 64-byte operand (palette 1).
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

// Tiles 0-3: accumulators, 16 rows x 16 int32 (one 16-channel block each).
// Tile 4: activations, 16 rows x `chunk` bytes. Tiles 5 and 6: weights,
// chunk / 4 rows x 64 bytes, used in turn so a load can overlap a multiply.
void Configure(int chunk) {
  TileConfig config;
  for (int t = 0; t < 4; ++t) {
    config.rows[t] = kAmxTileRows;
    config.bytes_per_row[t] = 64;
  }
  config.rows[4] = kAmxTileRows;
  config.bytes_per_row[4] = static_cast<uint16_t>(chunk);
  for (int t = 5; t < 7; ++t) {
    config.rows[t] = static_cast<uint8_t>(chunk / 4);
    config.bytes_per_row[t] = 64;
  }
  _tile_loadconfig(&config);
}

// Accumulates NB blocks from `first_block` over the whole depth into tiles
// 0..NB-1 and stores them to acc[b] (16 rows of 16 int32).
template <int NB>
void Multiply(const PackedGemmConv& conv, const int8_t* a, int64_t a_stride, int first_block,
              int32_t (*acc)[kAmxTileRows][16]) {
  const int chunk = conv.amx_chunk, groups = conv.depth_padded / 4;
  const Bytes64* w = conv.weights.data() + static_cast<size_t>(first_block) * groups;
  // Tile numbers are immediates, hence the unrolled blocks.
  _tile_zero(0);
  if constexpr (NB > 1) _tile_zero(1);
  if constexpr (NB > 2) _tile_zero(2);
  if constexpr (NB > 3) _tile_zero(3);
  for (int k = 0; k < conv.depth_padded; k += chunk) {
    const Bytes64* wk = w + k / 4;
    _tile_loadd(4, a + k, a_stride);
    _tile_loadd(5, wk, 64);
    _tile_dpbssd(0, 4, 5);
    if constexpr (NB > 1) {
      _tile_loadd(6, wk + groups, 64);
      _tile_dpbssd(1, 4, 6);
    }
    if constexpr (NB > 2) {
      _tile_loadd(5, wk + 2 * groups, 64);
      _tile_dpbssd(2, 4, 5);
    }
    if constexpr (NB > 3) {
      _tile_loadd(6, wk + 3 * groups, 64);
      _tile_dpbssd(3, 4, 6);
    }
  }
  _tile_stored(0, acc[0], 64);
  if constexpr (NB > 1) _tile_stored(1, acc[1], 64);
  if constexpr (NB > 2) _tile_stored(2, acc[2], 64);
  if constexpr (NB > 3) _tile_stored(3, acc[3], 64);
}

// Bias, requantization and int8 stores for `rows` rows of NB blocks.
template <int NB, RequantMode kMode>
void Finish(const PackedGemmConv& conv, const int32_t (*acc)[kAmxTileRows][16], int rows,
            int first_block, int8_t* out, const OutputStage& stage) {
  const ChannelEpilogue& e = conv.epilogue;
  const int outputs = conv.geometry.output_channels;
  const __mmask64 mask = ByteMask(outputs - first_block * kChannelsPerVector);
  __m512i bias[NB];
  for (int b = 0; b < NB; ++b) {
    bias[b] = _mm512_loadu_si512(&e.bias[(first_block + b) * kChannelsPerVector]);
  }
  out += first_block * kChannelsPerVector;
  if constexpr (NB <= 2) {
    StoreNarrowRows<NB, kMode>(
        LoadRequants<NB, kMode>(e, first_block), outputs - first_block * kChannelsPerVector, rows,
        stage,
        [&](int r, int b) { return _mm512_add_epi32(_mm512_load_si512(acc[b][r]), bias[b]); },
        [&](int r) { return out + int64_t{r} * outputs; });
    return;
  }
  const auto requant = LoadRequants<NB, kMode>(e, first_block);
  for (int r = 0; r < rows; ++r, out += outputs) {
    __m512i q[4] = {};
    for (int b = 0; b < NB; ++b) {
      q[b] = requant[b](_mm512_add_epi32(_mm512_load_si512(acc[b][r]), bias[b]));
    }
    _mm512_mask_storeu_epi8(out, mask, PackToInt8InOrder<LacksZeroPoint(kMode)>(q, stage));
  }
}

template <int NB, RequantMode kMode>
void Blocks(const PackedGemmConv& conv, const int8_t* a, int64_t a_stride, int rows,
            int first_block, int8_t* out, const OutputStage& stage) {
  alignas(64) int32_t acc[4][kAmxTileRows][16];
  Multiply<NB>(conv, a, a_stride, first_block, acc);
  Finish<NB, kMode>(conv, acc, rows, first_block, out, stage);
}

// The activations of a unit's rows: the input itself for a direct GEMM with a
// full tile; otherwise rows gathered (or, for a short tile, copied) into the
// unit's scratch rows; rows past a short tile hold whatever they held (they
// only make output rows that are never stored).
const int8_t* Activations(const PackedGemmConv& conv, const int8_t* input, uint8_t* scratch,
                          const GemmUnit& unit, int64_t* stride) {
  if (conv.direct && unit.rows == kAmxTileRows) {
    *stride = conv.depth;
    return input + unit.first_row * conv.depth;
  }
  *stride = conv.depth_padded;
  uint8_t* rows = unit.ScratchRows(conv, scratch);
  if (conv.direct) {
    for (int r = 0; r < unit.rows; ++r) {
      std::memcpy(rows + int64_t{r} * conv.depth_padded,
                  input + (unit.first_row + r) * conv.depth, conv.depth);
    }
    return reinterpret_cast<const int8_t*>(rows);
  }
  OutputPixel pixel(conv.geometry, unit.first_row);
  for (int r = 0; r < unit.rows; ++r, pixel.Next(conv.geometry)) {
    GatherRow<false>(conv, input, pixel, rows + int64_t{r} * conv.depth_padded);
  }
  return reinterpret_cast<const int8_t*>(rows);
}

template <RequantMode kMode>
void GemmConvRange(const PackedGemmConv& conv, const int8_t* input, int8_t* output,
                   uint8_t* scratch, int64_t begin, int64_t end) {
  const OutputStage stage(conv.epilogue.output);
  Configure(conv.amx_chunk);
  for (int64_t index = begin; index < end; ++index) {
    const GemmUnit unit(conv, index);
    int64_t stride = 0;
    const int8_t* a = Activations(conv, input, scratch, unit, &stride);
    int8_t* out = output + unit.first_row * conv.geometry.output_channels;
    int block = unit.first_block;
    for (; block + 4 <= unit.end_block; block += 4) {
      Blocks<4, kMode>(conv, a, stride, unit.rows, block, out, stage);
    }
    switch (unit.end_block - block) {
      case 3: Blocks<3, kMode>(conv, a, stride, unit.rows, block, out, stage); break;
      case 2: Blocks<2, kMode>(conv, a, stride, unit.rows, block, out, stage); break;
      case 1: Blocks<1, kMode>(conv, a, stride, unit.rows, block, out, stage); break;
      default: break;
    }
  }
  _tile_release();
}

}  // namespace

void GemmConv(const PackedGemmConv& conv, const int8_t* input, int8_t* output, uint8_t* scratch,
              int64_t begin, int64_t end) {
  WithEpilogueMode(conv.epilogue, [&](auto mode) {
    GemmConvRange<decltype(mode)::value>(conv, input, output, scratch, begin, end);
  });
}

}  // namespace qforge::kernels::amx

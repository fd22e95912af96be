// The AVX-512 VNNI level of int8_kernels.h. Compiled with -mavx512f/bw/dq/vl and
// -mavx512vnni (see BUILD); runs only where ResolveIsa allows it. The
// requantization it shares with the AMX level is in int8_kernels_avx512_inl.h.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "runtime/kernels/int8_kernels_avx512_inl.h"
#include "common/quantization.h"
#include "runtime/kernels/int8_kernels_isa.h"

namespace qforge::kernels::avx512vnni {
namespace {

using avx512::BlockRequant;
using avx512::ByteMask;
using avx512::GatherRow;
using avx512::LacksZeroPoint;
using avx512::LaneMask;
using avx512::Load;
using avx512::LoadRequants;
using avx512::MultiplyByQuantizedMultiplier;
using avx512::OutputStage;
using avx512::PackToInt8;
using avx512::PackToInt8InOrder;
using avx512::RequantizeToInt8;
using avx512::StoreNarrowRows;

// acc + vpdpbusd(x, w), accumulated in place. GCC 12's intrinsic copies the
// accumulator to a new register (and back) around each vpdpbusd of a loop
// whose register tile is not full, and spills the tiles of 3 blocks.
QFORGE_INLINE __m512i Dpbusd(__m512i acc, __m512i x, __m512i w) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(x), "vm"(w));
  return acc;
}

// --- GEMM ---------------------------------------------------------------------

// Rows of one tile: MR input rows as unsigned x + 128 (repeated when the tile
// is short), and where their outputs go.
template <int MR>
struct TileRows {
  const uint8_t* a[MR];
  int8_t* c[MR];
};

// Output channels [16 * first_block, 16 * (first_block + NB)) of MR rows: the
// register tile is MR x NB vectors of 16 int32 accumulators. A row is read as
// one run of depth_padded bytes, or with kStrips as KH runs of strip_run
// bytes, strip_bytes apart. (One loop for both, the runs' loop around the
// other, made the direct GEMMs of depth 16 and 24 a third slower.)
template <int MR, int NB, RequantMode kMode, bool kStrips>
void GemmTile(const PackedGemmConv& conv, const TileRows<MR>& rows, int first_block,
              const OutputStage& out) {
  const int groups = conv.depth_padded / 4;
  const int runs = kStrips ? conv.geometry.kernel_height : 1;
  const int run_groups = kStrips ? conv.strip_run / 4 : groups;
  const ChannelEpilogue& e = conv.epilogue;
  const Bytes64* w[NB];
  __m512i acc[MR][NB];
  for (int b = 0; b < NB; ++b) {
    w[b] = conv.weights.data() + static_cast<size_t>(first_block + b) * groups;
    const __m512i bias = _mm512_loadu_si512(&e.bias[(first_block + b) * kChannelsPerVector]);
    for (int m = 0; m < MR; ++m) acc[m][b] = bias;
  }
  for (int run = 0, kk = 0; run < runs; ++run) {
    const int64_t run_start = kStrips ? run * conv.strip_bytes : 0;
    for (int j = 0; j < run_groups; ++j, ++kk) {
      __m512i wv[NB];
      for (int b = 0; b < NB; ++b) wv[b] = Load(w[b][kk].bytes);
      for (int m = 0; m < MR; ++m) {
        int32_t a4;
        std::memcpy(&a4, rows.a[m] + run_start + 4 * j, 4);
        const __m512i av = _mm512_set1_epi32(a4);
        for (int b = 0; b < NB; ++b) acc[m][b] = Dpbusd(acc[m][b], av, wv[b]);
      }
    }
  }
  // The epilogue's loop is too long for GCC to unroll; reading a copy keeps
  // the accumulators above in registers.
  __m512i result[MR][NB];
  for (int m = 0; m < MR; ++m) {
    for (int b = 0; b < NB; ++b) result[m][b] = acc[m][b];
  }
  const int channels = conv.geometry.output_channels - first_block * kChannelsPerVector;
  if constexpr (NB <= 2 && MR % (4 / NB) == 0) {
    StoreNarrowRows<NB, kMode>(
        LoadRequants<NB, kMode>(e, first_block), channels, MR, out,
        [&](int m, int b) { return result[m][b]; },
        [&](int m) { return rows.c[m] + first_block * kChannelsPerVector; });
  } else {
    const __mmask64 mask = ByteMask(channels);
    // Block by block, each block's constants loaded once for the MR rows.
    const auto requant = LoadRequants<NB, kMode>(e, first_block);
    for (int b = 0; b < NB; ++b) {
      for (int m = 0; m < MR; ++m) result[m][b] = requant[b](result[m][b]);
    }
    for (int m = 0; m < MR; ++m) {
      __m512i q[4] = {};
      for (int b = 0; b < NB; ++b) q[b] = result[m][b];
      _mm512_mask_storeu_epi8(rows.c[m] + first_block * kChannelsPerVector, mask,
                              PackToInt8InOrder<LacksZeroPoint(kMode)>(q, out));
    }
  }
}

template <int MR, RequantMode kMode, bool kStrips = false>
void GemmTileRow(const PackedGemmConv& conv, const TileRows<MR>& rows, int first_block,
                 int end_block, const OutputStage& out) {
  int block = first_block;
  if constexpr (MR == kNarrowGemmTileRows) {  // at most 2 blocks
    if (end_block - block == 2) {
      GemmTile<MR, 2, kMode, kStrips>(conv, rows, block, out);
    } else {
      GemmTile<MR, 1, kMode, kStrips>(conv, rows, block, out);
    }
    return;
  }
  for (; block + 4 <= end_block; block += 4) {
    GemmTile<MR, 4, kMode, kStrips>(conv, rows, block, out);
  }
  switch (end_block - block) {
    case 3:
      GemmTile<MR, 3, kMode, kStrips>(conv, rows, block, out);
      break;
    case 2:
      GemmTile<MR, 2, kMode, kStrips>(conv, rows, block, out);
      break;
    case 1:
      GemmTile<MR, 1, kMode, kStrips>(conv, rows, block, out);
      break;
    default: break;
  }
}

// dst[i] = src[i] ^ 0x80 for `bytes` bytes.
void FlipBytes(const int8_t* src, int64_t bytes, uint8_t* dst) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  int64_t i = 0;
  for (; i + 64 <= bytes; i += 64) {
    _mm512_storeu_si512(dst + i, _mm512_xor_si512(_mm512_loadu_si512(src + i), flip));
  }
  if (i < bytes) {
    const __mmask64 mask = ByteMask(static_cast<int>(bytes - i));
    _mm512_mask_storeu_epi8(dst + i, mask,
                            _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, src + i), flip));
  }
}

// A tile's activation rows as unsigned x + 128: a direct GEMM's rows are
// contiguous and flipped into `buffer`, others gathered, flipped, into the
// scratch. Returns where they are, depth_padded bytes apart.
const uint8_t* PrepareRows(const PackedGemmConv& conv, const int8_t* input, uint8_t* scratch,
                           const GemmUnit& unit, uint8_t* buffer) {
  if (conv.direct) {
    FlipBytes(input + unit.first_row * conv.depth, int64_t{unit.rows} * conv.depth, buffer);
    return buffer;
  }
  uint8_t* rows = unit.ScratchRows(conv, scratch);
  OutputPixel pixel(conv.geometry, unit.first_row);
  for (int m = 0; m < unit.rows; ++m, pixel.Next(conv.geometry)) {
    GatherRow<true>(conv, input, pixel, rows + int64_t{m} * conv.depth_padded);
  }
  return rows;
}

// The unit's outputs from its prepared rows; a short tile (unit.rows <= MR)
// repeats its last row (recomputing and rewriting the same values) so the
// kernel has no row tail.
template <int MR, RequantMode kMode>
void GemmRows(const PackedGemmConv& conv, const uint8_t* prepared, int8_t* output,
              const GemmUnit& unit, const OutputStage& out) {
  TileRows<MR> rows;
  for (int m = 0; m < MR; ++m) {
    const int r = std::min(m, unit.rows - 1);
    rows.a[m] = prepared + int64_t{r} * conv.depth_padded;
    rows.c[m] = output + (unit.first_row + r) * conv.geometry.output_channels;
  }
  GemmTileRow<MR, kMode>(conv, rows, unit.first_block, unit.end_block, out);
}

// Each tile's rows are prepared while the tile before it runs: a tile is
// hundreds of instructions, too many for the CPU to reach the next tile's
// loads and stores early by itself, so otherwise every tile would begin by
// waiting for its input (from L2) and for the stores of its flipped rows.
template <RequantMode kMode>
void GemmConvRange(const PackedGemmConv& conv, const int8_t* input, int8_t* output,
                   uint8_t* scratch, int64_t begin, int64_t end) {
  if (begin >= end) return;
  const OutputStage out(conv.epilogue.output);
  alignas(64) uint8_t buffers[2][kGemmTileRows * kMaxDirectDepth];
  int buffer = 0;
  GemmUnit unit(conv, begin);
  const uint8_t* prepared = PrepareRows(conv, input, scratch, unit, buffers[buffer]);
  for (int64_t index = begin; index < end; ++index) {
    const GemmUnit next(conv, std::min(index + 1, end - 1));
    // Units of one tile's column parts share its rows.
    const bool new_tile = index + 1 < end && next.first_row != unit.first_row;
    const uint8_t* next_prepared =
        new_tile ? PrepareRows(conv, input, scratch, next, buffers[buffer ^ 1]) : prepared;
    if (unit.rows > kGemmTileRows) {
      GemmRows<kNarrowGemmTileRows, kMode>(conv, prepared, output, unit, out);
    } else if (unit.rows == 1) {
      GemmRows<1, kMode>(conv, prepared, output, unit, out);
    } else {
      GemmRows<kGemmTileRows, kMode>(conv, prepared, output, unit, out);
    }
    if (new_tile) buffer ^= 1;
    prepared = next_prepared;
    unit = next;
  }
}

// --- GEMM from strips (PackedGemmConv::strip_run) ---

// Pixels [ox, ox + count) of an output row whose strips are filled, count <= MR
// (a short tile repeats its last pixel, as GemmRows does).
template <int MR, RequantMode kMode>
void StripTile(const PackedGemmConv& conv, const uint8_t* strips, int8_t* row_out, int ox,
               int count, const OutputStage& out) {
  const reference::ConvGeometry& g = conv.geometry;
  TileRows<MR> rows;
  for (int m = 0; m < MR; ++m) {
    const int64_t x = ox + std::min(m, count - 1);
    rows.a[m] = strips + x * g.stride_w * g.input_channels;
    rows.c[m] = row_out + x * g.output_channels;
  }
  // A strip unit's blocks_per_unit is all of the conv's blocks.
  GemmTileRow<MR, kMode, true>(conv, rows, 0, conv.blocks_per_unit, out);
}

// Units are output rows (n, oy); each fills its own strips in the scratch.
template <RequantMode kMode>
void StripRange(const PackedGemmConv& conv, const int8_t* input, int8_t* output, uint8_t* scratch,
                int64_t begin, int64_t end) {
  const reference::ConvGeometry& g = conv.geometry;
  const OutputStage out(conv.epilogue.output);
  for (int64_t unit = begin; unit < end; ++unit) {
    uint8_t* strips = scratch + unit * g.kernel_height * conv.strip_bytes;
    FillStrips(conv, input, static_cast<int>(unit / g.output_height),
               static_cast<int>(unit % g.output_height), strips,
               [](const int8_t* src, int64_t bytes, uint8_t* dst) { FlipBytes(src, bytes, dst); });
    int8_t* row_out = output + unit * g.output_width * g.output_channels;
    for (int ox = 0; ox < g.output_width; ox += conv.tile_rows) {
      const int count = std::min(conv.tile_rows, g.output_width - ox);
      if (count > kGemmTileRows) {
        StripTile<kNarrowGemmTileRows, kMode>(conv, strips, row_out, ox, count, out);
      } else if (count > 1) {
        StripTile<kGemmTileRows, kMode>(conv, strips, row_out, ox, count, out);
      } else {
        StripTile<1, kMode>(conv, strips, row_out, ox, count, out);
      }
    }
  }
}

// --- depthwise ----------------------------------------------------------------

// Accumulates one block of P output pixels over the taps: load(p, t) gives
// pixel p's tap t, 64 input bytes, flipped here to x + 128 as unsigned bytes
// (masked-off bytes meet zero weights). Each tap's four weight vectors are
// loaded once for the P pixels: with one pixel they were four of every five
// loads, and a CPU that loads one 64-byte vector a cycle (Zen 4) waited on them.
template <int kTaps, int P, typename LoadTap>
QFORGE_INLINE void AccumulateTaps(const Bytes64* w, int tap_count, const LoadTap& load,
                                  __m512i (&acc)[P][4]) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const int count = kTaps > 0 ? kTaps : tap_count;
  for (int t = 0; t < count; ++t, w += 4) {
    __m512i weights[4];
    for (int r = 0; r < 4; ++r) weights[r] = Load(w[r].bytes);
    for (int p = 0; p < P; ++p) {
      const __m512i x = _mm512_xor_si512(load(p, t), flip);
      for (int r = 0; r < 4; ++r) acc[p][r] = Dpbusd(acc[p][r], x, weights[r]);
    }
  }
}

// A block's accumulators, requantized to 64 int8 in input byte order.
template <RequantMode kMode>
QFORGE_INLINE __m512i FinishBlock(const ChannelEpilogue& e, int block, const __m512i acc[4],
                    const OutputStage& stage) {
  __m512i q[4];
  for (int r = 0; r < 4; ++r) {
    q[r] = MultiplyByQuantizedMultiplier<kMode>(acc[r], e.requant[block * 4 + r]);
  }
  // Lane L now holds input bytes 16L + 4i + r at byte 4r + i: put them in order.
  const __m512i order = _mm512_broadcast_i32x4(
      _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
  return _mm512_shuffle_epi8(PackToInt8<LacksZeroPoint(kMode)>(q, stage), order);
}

// Block `block` of P output pixels, requantized into q[p] (see AccumulateTaps).
template <int kTaps, int P, RequantMode kMode, typename LoadTap>
QFORGE_INLINE void DepthwiseBlocks(const PackedDepthwise& conv, int block, int tap_count,
                                   const OutputStage& stage, const LoadTap& load, __m512i (&q)[P]) {
  const ChannelEpilogue& e = conv.epilogue;
  __m512i acc[P][4];
  for (int r = 0; r < 4; ++r) {
    const __m512i bias = _mm512_loadu_si512(&e.bias[block * 64 + r * 16]);
    for (int p = 0; p < P; ++p) acc[p][r] = bias;
  }
  AccumulateTaps<kTaps, P>(conv.weights.data() + static_cast<size_t>(block) * tap_count * 4,
                           tap_count, load, acc);
  for (int p = 0; p < P; ++p) q[p] = FinishBlock<kMode>(e, block, acc[p], stage);
}

// One pixel's block: load(t) gives tap t's 64 input bytes.
template <int kTaps, RequantMode kMode, typename LoadTap>
__m512i DepthwiseBlock(const PackedDepthwise& conv, int block, int tap_count,
                       const OutputStage& stage, const LoadTap& load) {
  __m512i q[1];
  DepthwiseBlocks<kTaps, 1, kMode>(
      conv, block, tap_count, stage, [&](int, int t) { return load(t); }, q);
  return q[0];
}

// The blocks of 64 channels of P output pixels; taps[p] are pixel p's taps.
template <int kTaps, int P, RequantMode kMode>
void FullBlocks(const PackedDepthwise& conv, const int8_t* const (*taps)[kMaxDepthwiseTaps],
                int tap_count, int8_t* const* outs, const OutputStage& stage) {
  const int blocks = conv.geometry.input_channels / 64;
  for (int block = conv.column_blocks; block < blocks; ++block) {
    __m512i q[P];
    DepthwiseBlocks<kTaps, P, kMode>(
        conv, block, tap_count, stage,
        [&](int p, int t) { return _mm512_loadu_si512(taps[p][t] + block * 64); }, q);
    for (int p = 0; p < P; ++p) _mm512_storeu_si512(outs[p] + block * 64, q[p]);
  }
}

// The last C % 64 channels of up to tail_pixels output pixels, side by side in
// one block; taps[p] of a missing pixel p >= pixels points at padding.
template <int kTaps, RequantMode kMode>
void TailBlock(const PackedDepthwise& conv, const int8_t* const (*taps)[kMaxDepthwiseTaps],
               int tap_count, int pixels, int8_t* const* outs, const OutputStage& stage) {
  const int block = conv.geometry.input_channels / 64, c0 = block * 64;
  const int used = conv.geometry.input_channels - c0;
  if (conv.tail_pixels == 1) {
    const __mmask64 mask = ByteMask(used);
    const __m512i q = DepthwiseBlock<kTaps, kMode>(
        conv, block, tap_count, stage,
        [&](int t) { return _mm512_maskz_loadu_epi8(mask, taps[0][t] + c0); });
    _mm512_mask_storeu_epi8(outs[0] + c0, mask, q);
  } else if (conv.tail_pixels == 2) {
    const __mmask32 mask = static_cast<__mmask32>(ByteMask(used));
    const __m512i q = DepthwiseBlock<kTaps, kMode>(
        conv, block, tap_count, stage, [&](int t) {
          const __m256i a = _mm256_maskz_loadu_epi8(mask, taps[0][t] + c0);
          const __m256i b = _mm256_maskz_loadu_epi8(mask, taps[1][t] + c0);
          return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
        });
    _mm256_mask_storeu_epi8(outs[0] + c0, mask, _mm512_castsi512_si256(q));
    if (pixels > 1) _mm256_mask_storeu_epi8(outs[1] + c0, mask, _mm512_extracti64x4_epi64(q, 1));
  } else {
    const __mmask16 mask = static_cast<__mmask16>(ByteMask(used));
    const __m512i q = DepthwiseBlock<kTaps, kMode>(
        conv, block, tap_count, stage, [&](int t) {
          __m512i x = _mm512_castsi128_si512(_mm_maskz_loadu_epi8(mask, taps[0][t] + c0));
          x = _mm512_inserti32x4(x, _mm_maskz_loadu_epi8(mask, taps[1][t] + c0), 1);
          x = _mm512_inserti32x4(x, _mm_maskz_loadu_epi8(mask, taps[2][t] + c0), 2);
          return _mm512_inserti32x4(x, _mm_maskz_loadu_epi8(mask, taps[3][t] + c0), 3);
        });
    _mm_mask_storeu_epi8(outs[0] + c0, mask, _mm512_castsi512_si128(q));
    if (pixels > 1) _mm_mask_storeu_epi8(outs[1] + c0, mask, _mm512_extracti32x4_epi32(q, 1));
    if (pixels > 2) _mm_mask_storeu_epi8(outs[2] + c0, mask, _mm512_extracti32x4_epi32(q, 2));
    if (pixels > 3) _mm_mask_storeu_epi8(outs[3] + c0, mask, _mm512_extracti32x4_epi32(q, 3));
  }
}

// --- depthwise, column by column (PackedDepthwise::column_blocks) ---

// One input column's three rows of a 64-channel block, flipped to x + 128 and
// interleaved: v[r] lane 4L + i = channel 16L + 4r + i's [row 0, row 1, row 2,
// 0], as vpunpck{l,h}bw and then vpunpck{l,h}wd leave them.
QFORGE_INLINE void InterleaveColumn(const int8_t* const src[3], __m512i (&v)[4]) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i r0 = _mm512_xor_si512(_mm512_loadu_si512(src[0]), flip);
  const __m512i r1 = _mm512_xor_si512(_mm512_loadu_si512(src[1]), flip);
  const __m512i r2 = _mm512_xor_si512(_mm512_loadu_si512(src[2]), flip);
  const __m512i zero = _mm512_setzero_si512();
  const __m512i lo01 = _mm512_unpacklo_epi8(r0, r1), hi01 = _mm512_unpackhi_epi8(r0, r1);
  const __m512i lo2 = _mm512_unpacklo_epi8(r2, zero), hi2 = _mm512_unpackhi_epi8(r2, zero);
  v[0] = _mm512_unpacklo_epi16(lo01, lo2);
  v[1] = _mm512_unpackhi_epi16(lo01, lo2);
  v[2] = _mm512_unpacklo_epi16(hi01, hi2);
  v[3] = _mm512_unpackhi_epi16(hi01, hi2);
}

// The full blocks of output row (n, oy), each swept along the row: output
// column ox reads input columns ox * kStride - pad_left + kx, so each column
// is interleaved once and kept for the next kStride == 1 ? 2 : 1 outputs.
// PackToInt8 leaves this layout's channels in order.
// rows[ky] is input row ky's first pixel, or null for padding.
template <int kStride, RequantMode kMode>
void ColumnRow(const PackedDepthwise& conv, const int8_t* const rows[3], int8_t* row_out,
               const OutputStage& stage) {
  const reference::ConvGeometry& g = conv.geometry;
  const int channels = g.input_channels;
  const ChannelEpilogue& e = conv.column_epilogue;
  for (int block = 0; block < conv.column_blocks; ++block) {
    const int c0 = block * 64;
    const Bytes64* w = conv.column_weights.data() + static_cast<size_t>(block) * 12;
    auto column = [&](int64_t ix, __m512i(&v)[4]) {
      const int8_t* src[3];
      for (int ky = 0; ky < 3; ++ky) {
        const bool inside = rows[ky] != nullptr && ix >= 0 && ix < g.input_width;
        src[ky] = (inside ? rows[ky] + ix * channels : conv.padding_row.data()) + c0;
      }
      InterleaveColumn(src, v);
    };
    __m512i cols[3][4];
    StartColumns(cols, g.pad_left, column);
    for (int ox = 0; ox < g.output_width; ++ox) {
      if (ox > 0) AdvanceColumns(cols, ox, kStride, g.pad_left, column);
      __m512i q[4];
      for (int r = 0; r < 4; ++r) {
        __m512i acc = _mm512_loadu_si512(&e.bias[c0 + r * 16]);
        for (int kx = 0; kx < 3; ++kx) {
          acc = Dpbusd(acc, cols[kx][r], Load(w[kx * 4 + r].bytes));
        }
        q[r] = MultiplyByQuantizedMultiplier<kMode>(acc, e.requant[block * 4 + r]);
      }
      _mm512_storeu_si512(row_out + int64_t{ox} * channels + c0,
                          PackToInt8<LacksZeroPoint(kMode)>(q, stage));
    }
  }
}

// For vpshufb on a row's 16 bytes in every 128-bit lane: kSpread[ky] takes
// lane L's channels 4L..4L+3 to byte ky of its dwords, zeros elsewhere.
struct SpreadTable {
  alignas(64) uint8_t bytes[3][64];
};
constexpr SpreadTable MakeSpread() {
  SpreadTable t{};
  for (int ky = 0; ky < 3; ++ky) {
    for (int b = 0; b < 64; ++b) {
      t.bytes[ky][b] = b % 4 == ky ? static_cast<uint8_t>(b / 4) : 0x80;
    }
  }
  return t;
}
inline constexpr SpreadTable kSpread = MakeSpread();

// 16 channels of one input column's three rows (src[ky] + offset), flipped to
// x + 128: lane j = channel j's [row 0, row 1, row 2, 0x80] (the fourth byte
// meets a zero weight). `mask` picks the channels that exist.
QFORGE_INLINE __m512i InterleaveSixteen(const int8_t* const src[3], int offset, __mmask16 mask) {
  __m512i spread[3];
  for (int ky = 0; ky < 3; ++ky) {
    // A full group's load folds into the broadcast (a load, no shuffle).
    const __m128i row = mask == 0xFFFF
                            ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(src[ky] + offset))
                            : _mm_maskz_loadu_epi8(mask, src[ky] + offset);
    spread[ky] = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(row), Load(kSpread.bytes[ky]));
  }
  const __m512i rows = _mm512_ternarylogic_epi32(spread[0], spread[1], spread[2], 0xFE);  // or
  return _mm512_xor_si512(rows, _mm512_set1_epi8(static_cast<char>(0x80)));
}

// The last C % 64 channels of output row `rows` (see ColumnRow) in G groups of
// 16 (PackedDepthwise::column_tail_groups), swept along the row as ColumnRow
// does. With G <= 2, 4 / G pixels' vectors are packed to int8 together. The
// stride is read at run time: as a template parameter it doubled this code
// (40 KB of the example application) for no speed.
template <int G, RequantMode kMode>
void ColumnTail(const PackedDepthwise& conv, const int8_t* const rows[3], int8_t* row_out,
                const OutputStage& stage) {
  const reference::ConvGeometry& g = conv.geometry;
  const int channels = g.input_channels, c0 = conv.column_blocks * 64, tail = channels - c0;
  const __mmask16 last_mask = static_cast<__mmask16>(ByteMask(tail - 16 * (G - 1)));
  const ChannelEpilogue& e = conv.column_tail_epilogue;
  const Bytes64* w = conv.column_tail_weights.data();
  auto column = [&](int64_t ix, __m512i(&v)[G]) __attribute__((always_inline)) {
    const int8_t* src[3];
    for (int ky = 0; ky < 3; ++ky) {
      const bool inside = rows[ky] != nullptr && ix >= 0 && ix < g.input_width;
      src[ky] = (inside ? rows[ky] + ix * channels : conv.padding_row.data()) + c0;
    }
    for (int i = 0; i < G; ++i) {
      v[i] = InterleaveSixteen(src, 16 * i, i + 1 < G ? __mmask16{0xFFFF} : last_mask);
    }
  };
  __m512i cols[3][G];
  StartColumns(cols, g.pad_left, column);
  constexpr int P = G <= 2 ? 4 / G : 1;
  for (int ox = 0; ox < g.output_width; ox += P) {
    const int count = std::min(P, g.output_width - ox);
    __m512i acc[P][G];
#pragma GCC unroll 4
    for (int m = 0; m < P; ++m) {
      if (m == count) break;
      if (ox + m > 0) AdvanceColumns(cols, ox + m, g.stride_w, g.pad_left, column);
      for (int i = 0; i < G; ++i) {
        acc[m][i] = _mm512_loadu_si512(&e.bias[i * 16]);
        for (int kx = 0; kx < 3; ++kx) {
          acc[m][i] = Dpbusd(acc[m][i], cols[kx][i], Load(w[i * 3 + kx].bytes));
        }
      }
    }
    auto out = [&](int m) { return row_out + int64_t{ox + m} * channels + c0; };
    if constexpr (G <= 2) {
      StoreNarrowRows<G, kMode>(
          LoadRequants<G, kMode>(e, 0), tail, count, stage, [&](int m, int i) { return acc[m][i]; },
          out);
    } else {
      __m512i q[4];
      for (int i = 0; i < 4; ++i) {
        q[i] = MultiplyByQuantizedMultiplier<kMode>(acc[0][std::min(i, G - 1)],
                                                    e.requant[std::min(i, G - 1)]);
      }
      _mm512_mask_storeu_epi8(out(0), ByteMask(tail),
                              PackToInt8InOrder<LacksZeroPoint(kMode)>(q, stage));
    }
  }
}

// Output row (n, oy) of a conv with column blocks or a column tail.
template <int kStride, RequantMode kMode>
void ColumnRows(const PackedDepthwise& conv, const int8_t* input, int n, int oy, int8_t* row_out,
                const OutputStage& stage) {
  const reference::ConvGeometry& g = conv.geometry;
  const int8_t* rows[3];
  for (int ky = 0; ky < 3; ++ky) {
    const int64_t iy = int64_t{oy} * g.stride_h - g.pad_top + ky;
    const bool inside = iy >= 0 && iy < g.input_height;
    rows[ky] = inside
                   ? input + (int64_t{n} * g.input_height + iy) * g.input_width * g.input_channels
                   : nullptr;
  }
  ColumnRow<kStride, kMode>(conv, rows, row_out, stage);
  switch (conv.column_tail_groups) {
    case 1:
      ColumnTail<1, kMode>(conv, rows, row_out, stage);
      break;
    case 2:
      ColumnTail<2, kMode>(conv, rows, row_out, stage);
      break;
    case 3:
      ColumnTail<3, kMode>(conv, rows, row_out, stage);
      break;
    case 4:
      ColumnTail<4, kMode>(conv, rows, row_out, stage);
      break;
    default:
      break;
  }
}

// Output pixels whose blocks run together: four share each load of the weights.
constexpr int kDepthwiseGroup = 4;

// The blocks of a group of up to kDepthwiseGroup output pixels: the full
// blocks four, two or one pixels at a time, then the tail blocks, each of
// tail_pixels pixels (missing ones read padding).
template <int kTaps, RequantMode kMode>
void DepthwiseGroup(const PackedDepthwise& conv, const int8_t* (*taps)[kMaxDepthwiseTaps],
                    int tap_count, int pixels, int8_t* const* outs, const OutputStage& stage) {
  int p = 0;
  for (; p + 4 <= pixels; p += 4) {
    FullBlocks<kTaps, 4, kMode>(conv, taps + p, tap_count, outs + p, stage);
  }
  for (; p + 2 <= pixels; p += 2) {
    FullBlocks<kTaps, 2, kMode>(conv, taps + p, tap_count, outs + p, stage);
  }
  if (p < pixels) FullBlocks<kTaps, 1, kMode>(conv, taps + p, tap_count, outs + p, stage);
  if (conv.geometry.input_channels % 64 == 0) return;
  for (p = 0; p < pixels; p += conv.tail_pixels) {
    const int count = std::min(conv.tail_pixels, pixels - p);
    for (int i = count; i < conv.tail_pixels; ++i) {
      std::fill(taps[p + i], taps[p + i] + tap_count, conv.padding_row.data());
    }
    TailBlock<kTaps, kMode>(conv, taps + p, tap_count, count, outs + p, stage);
  }
}

template <int kTaps, RequantMode kMode>
void DepthwiseRows(const PackedDepthwise& conv, const int8_t* input, int8_t* output,
                   int64_t begin, int64_t end) {
  const reference::ConvGeometry& g = conv.geometry;
  const int tap_count = g.kernel_height * g.kernel_width;
  // C of 16 or 32 at stride 1: a 64-byte block is block_pixels whole
  // neighbouring pixels, and the fast path below takes two such blocks.
  const int block_pixels = conv.tail_pixels;
  const bool adjacent = g.input_channels * block_pixels == 64 && g.stride_w == 1;
  const OutputStage stage(conv.epilogue.output);
  const int8_t* taps[kDepthwiseGroup][kMaxDepthwiseTaps];
  int8_t* outs[kDepthwiseGroup];
  for (int64_t unit = begin; unit < end; ++unit) {
    const int n = static_cast<int>(unit / g.output_height);
    const int oy = static_cast<int>(unit % g.output_height);
    int8_t* row_out = output + unit * g.output_width * g.input_channels;
    if constexpr (kTaps == 9) {
      if (conv.column_blocks > 0 || conv.column_tail_groups > 0) {
        if (g.stride_w == 1) {
          ColumnRows<1, kMode>(conv, input, n, oy, row_out, stage);
        } else {
          ColumnRows<2, kMode>(conv, input, n, oy, row_out, stage);
        }
        continue;
      }
    }
    const RowTaps row_taps(conv, input, n, oy);
    int group = 0;  // pixels waiting for their group
    for (int ox = 0; ox < g.output_width; ++ox) {
      if (adjacent && group == 0 && ox + 2 * block_pixels <= g.output_width &&
          row_taps.Inside(ox) && row_taps.Inside(ox + 2 * block_pixels - 1)) {
        // The blocks' pixels are neighbours, and so are their taps' input
        // pixels (a padding row repeats the zero point): one load a tap and
        // block, two blocks on one load of the weights.
        row_taps.Find(ox, taps[0]);
        __m512i q[2];
        DepthwiseBlocks<kTaps, 2, kMode>(
            conv, 0, tap_count, stage,
            [&](int p, int t) { return _mm512_loadu_si512(taps[0][t] + p * 64); }, q);
        _mm512_storeu_si512(row_out + int64_t{ox} * g.input_channels, q[0]);
        _mm512_storeu_si512(row_out + int64_t{ox} * g.input_channels + 64, q[1]);
        ox += 2 * block_pixels - 1;
        continue;
      }
      row_taps.Find(ox, taps[group]);
      outs[group] = row_out + int64_t{ox} * g.input_channels;
      ++group;
      if (group < kDepthwiseGroup && ox + 1 < g.output_width) continue;
      DepthwiseGroup<kTaps, kMode>(conv, taps, tap_count, group, outs, stage);
      group = 0;
    }
  }
}

template <RequantMode kMode>
void DepthwiseRange(const PackedDepthwise& conv, const int8_t* input, int8_t* output,
                    int64_t begin, int64_t end) {
  // 3x3, the common case, with its tap loop unrolled.
  if (conv.geometry.kernel_height * conv.geometry.kernel_width == 9) {
    DepthwiseRows<9, kMode>(conv, input, output, begin, end);
  } else {
    DepthwiseRows<0, kMode>(conv, input, output, begin, end);
  }
}

// --- element-wise -------------------------------------------------------------

// One input of an add rescaled as reference::AddInt8 does: shifted left for
// headroom, then multiplied (by at most 1/2, so never a left shift), in
// double precision where AddExactInDouble allows. The input with the larger
// scale has the multiplier 1/2 exactly, which halves the shifted (even) value
// exactly, so it is a shift by one less.
template <bool kInDouble>
class AddInput {
 public:
  // `block` holds m in every lane.
  AddInput(const QuantizedMultiplier& m, const RequantBlock& block, int32_t zero_point)
      : half_(IsHalf(m)), requant_(block), zero_point_(_mm512_set1_epi32(zero_point)) {}

  QFORGE_INLINE __m512i Rescale(__m128i x) const {
    const __m512i centered = _mm512_sub_epi32(_mm512_cvtepi8_epi32(x), zero_point_);
    if (half_) return _mm512_slli_epi32(centered, reference::kAddLeftShift - 1);
    return requant_(_mm512_slli_epi32(centered, reference::kAddLeftShift));
  }

 private:
  bool half_;
  BlockRequant<kInDouble ? RequantMode::kDouble : RequantMode::kExact> requant_;
  __m512i zero_point_;
};

// kMode is the sum's requantization; in the double-precision modes the
// inputs' rescales are in double precision too (AddExactInDouble).
template <RequantMode kMode>
void AddRange(const PackedAdd& add, const int8_t* a, const int8_t* b, int8_t* output, int64_t first,
              int64_t last) {
  constexpr bool kInDouble = !LacksZeroPoint(kMode);
  const reference::AddInt8Params& p = add.params;
  const AddInput<kInDouble> in_a(p.a_multiplier, add.a, p.a_zero_point),
      in_b(p.b_multiplier, add.b, p.b_zero_point);
  const RequantBlock& qo = add.output;
  const OutputStage stage(p.output);
  auto sum = [&](int64_t i, __mmask16 mask) {
    return _mm512_add_epi32(in_a.Rescale(_mm_maskz_loadu_epi8(mask, a + i)),
                            in_b.Rescale(_mm_maskz_loadu_epi8(mask, b + i)));
  };
  int64_t i = first;
  for (; i + 64 <= last; i += 64) {
    __m512i q[4];
    for (int j = 0; j < 4; ++j) {
      q[j] = MultiplyByQuantizedMultiplier<kMode>(sum(i + 16 * j, 0xFFFF), qo);
    }
    _mm512_storeu_si512(output + i, PackToInt8InOrder<LacksZeroPoint(kMode)>(q, stage));
  }
  for (; i < last; i += 16) {
    const __mmask16 mask = LaneMask(static_cast<int>(last - i));
    _mm_mask_storeu_epi8(output + i, mask, RequantizeToInt8<kMode>(sum(i, mask), qo, stage));
  }
}

template <RequantMode kMode>
void MeanRange(const reference::MeanInt8Params& p, const int8_t* input, int8_t* output,
               int64_t begin, int64_t end) {
  const RequantBlock q = UniformRequantBlock(p.multiplier);
  const OutputStage stage(p.output);
  const int64_t pixels = int64_t{p.height} * p.width;
  // sum (x - zp) = sum x - pixels * zp; |sum| stays far inside int32 (Prepare).
  const __m512i offset = _mm512_set1_epi32(static_cast<int32_t>(-pixels * p.input_zero_point));
  for (int64_t n = begin; n < end; ++n) {
    const int8_t* image = input + n * pixels * p.channels;
    for (int c = 0; c < p.channels; c += 16) {
      const __mmask16 mask = LaneMask(p.channels - c);
      __m512i sum = offset;
      for (int64_t i = 0; i < pixels; ++i) {
        const __m128i x = _mm_maskz_loadu_epi8(mask, image + i * p.channels + c);
        sum = _mm512_add_epi32(sum, _mm512_cvtepi8_epi32(x));
      }
      _mm_mask_storeu_epi8(output + n * p.channels + c, mask,
                           RequantizeToInt8<kMode>(sum, q, stage));
    }
  }
}

}  // namespace

void GemmConv(const PackedGemmConv& conv, const int8_t* input, int8_t* output, uint8_t* scratch,
              int64_t begin, int64_t end) {
  WithEpilogueMode(conv.epilogue, [&](auto mode) {
    if (conv.strip_run > 0) {
      StripRange<decltype(mode)::value>(conv, input, output, scratch, begin, end);
    } else {
      GemmConvRange<decltype(mode)::value>(conv, input, output, scratch, begin, end);
    }
  });
}

void Depthwise(const PackedDepthwise& conv, const int8_t* input, int8_t* output, int64_t begin,
               int64_t end) {
  WithEpilogueMode(conv.epilogue, [&](auto mode) {
    DepthwiseRange<decltype(mode)::value>(conv, input, output, begin, end);
  });
}

void Add(const PackedAdd& add, const int8_t* a, const int8_t* b, int8_t* output, int64_t begin,
         int64_t end) {
  const reference::AddInt8Params& params = add.params;
  const RequantMode mode = ModeFor(params.output, params.output_multiplier.exponent > 0);
  if (mode == RequantMode::kExact && AddExactInDouble(params)) {
    AddRange<RequantMode::kDouble>(add, a, b, output, begin, end);
  } else if (mode == RequantMode::kNegativesClamp && AddExactInDouble(params)) {
    AddRange<RequantMode::kDoubleNegativesClamp>(add, a, b, output, begin, end);
  } else {
    WithMode(mode, [&](auto m) { AddRange<decltype(m)::value>(add, a, b, output, begin, end); });
  }
}

void Mean(const reference::MeanInt8Params& params, const int8_t* input, int8_t* output,
          int64_t begin, int64_t end) {
  WithMode(ModeFor(params.output, params.multiplier.exponent > 0), [&](auto mode) {
    MeanRange<decltype(mode)::value>(params, input, output, begin, end);
  });
}

// As common/quantization.h: RoundToGrid (x times the float reciprocal of the
// scale, rounded half to even, plus the zero point), clamped; NaN becomes the
// zero point. x / scale is clamped to +-2^16 before it is rounded and the zero
// point added after, in integers: the same result, since the clamp's ends are
// integers far outside int8, and the conversion to int32 stays exact.
QFORGE_INLINE __m512i RoundedQuotients(__m512 x, __m512 inverse_scale) {
  const __m512 limit = _mm512_set1_ps(65536.0f);
  const __m512 v = _mm512_maskz_mul_ps(_mm512_cmp_ps_mask(x, x, _CMP_ORD_Q), x, inverse_scale);
  return _mm512_cvt_roundps_epi32(_mm512_min_ps(_mm512_max_ps(v, -limit), limit),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

void Quantize(float scale, int32_t zero_point, const float* input, int8_t* output, int64_t begin,
              int64_t end) {
  const __m512 inverse_scale = _mm512_set1_ps(InverseScale(scale));
  const OutputStage out(reference::Int8Output{zero_point, kActivationQMin, kActivationQMax});
  int64_t i = begin;
  for (; i + 64 <= end; i += 64) {
    const __m512i v[4] = {RoundedQuotients(_mm512_loadu_ps(input + i), inverse_scale),
                          RoundedQuotients(_mm512_loadu_ps(input + i + 16), inverse_scale),
                          RoundedQuotients(_mm512_loadu_ps(input + i + 32), inverse_scale),
                          RoundedQuotients(_mm512_loadu_ps(input + i + 48), inverse_scale)};
    _mm512_storeu_si512(output + i, PackToInt8InOrder(v, out));
  }
  for (; i < end; i += 16) {
    const __mmask16 mask = LaneMask(static_cast<int>(end - i));
    const __m512i q = RoundedQuotients(_mm512_maskz_loadu_ps(mask, input + i), inverse_scale);
    const __m512i clamped = _mm512_min_epi32(_mm512_max_epi32(q, out.min), out.max);
    _mm_mask_storeu_epi8(output + i, mask, _mm512_cvtepi32_epi8(_mm512_add_epi32(clamped, out.zero_point)));
  }
}

void Dequantize(float scale, int32_t zero_point, const int8_t* input, float* output,
                int64_t begin, int64_t end) {
  const __m512 s = _mm512_set1_ps(scale);
  const __m512i zp = _mm512_set1_epi32(zero_point);
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 mask = LaneMask(static_cast<int>(end - i));
    const __m512i q = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, input + i));
    _mm512_mask_storeu_ps(output + i, mask,
                          _mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_sub_epi32(q, zp))));
  }
}

}  // namespace qforge::kernels::avx512vnni

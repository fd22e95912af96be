// The AVX2 level of int8_kernels.h, for x86-64 CPUs without VNNI
// (Haswell to Skylake clients, Zen 1 to 3), and the AVX-VNNI level's GEMMs and
// 3x3 depthwise convs (Alder Lake and later clients, their E-core parts), which
// uses the rest of this level. Compiled with -mavx2 -mfma (see BUILD), the AVX-VNNI functions
// with that target added; each runs only where ResolveIsa allows its level.
//
// Without VNNI, products are int16 pairs summed into int32 by vpmaddwd:
// signed activations and weights widened to int16, so neither needs a
// correction beyond the input zero point's, folded into the bias. The GEMM
// packs weights as [O / 8][K / 2][8][2] int16; the depthwise kernel pairs taps,
// [C / 16][taps / 2][2][16 x 2] int16 in the order vpunpck{l,h}wd leaves the
// channels in; the last group of a count not a multiple of 16 has zero weights
// past it and stores only its channels. Convs requantize in the AVX-512
// levels' single- or double-precision form where it holds (WithEpilogueMode),
// with the rounding mode set to nearest for the call; else, as adds and means
// do, in their 64-bit form (int8_kernels_avx512_inl.h) on 8 lanes, with a
// logical shift of the value plus 2^62 for the missing 64-bit arithmetic shift.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "common/quantization.h"
#include "runtime/kernels/int8_kernels_isa.h"

namespace qforge::kernels::avx2 {
namespace {

__m256i Load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Zero point and clamp, in the widths the packing steps need them.
struct OutputStage {
  __m256i zero_point16;
  __m128i qmin8, qmax8;

  explicit OutputStage(const reference::Int8Output& o)
      : zero_point16(_mm256_set1_epi16(static_cast<int16_t>(o.zero_point))),
        qmin8(_mm_set1_epi8(static_cast<char>(o.qmin))),
        qmax8(_mm_set1_epi8(static_cast<char>(o.qmax))) {}
};

// MultiplyByQuantizedMultiplier of 8 lanes, channels 8h..8h+7 of `q`, in the
// modes of int8_kernels_avx512_inl.h.
template <RequantMode kMode>
QFORGE_INLINE __m256i MultiplyByQuantizedMultiplier(__m256i acc, const RequantBlock& q, int h) {
  constexpr bool kLeftShift = kMode == RequantMode::kLeftShift;
  const int j = 4 * h;  // index of the 64-bit constants
  if constexpr (kLeftShift) {
    const __m256i limit = Load(&q.acc_limit[8 * h]);  // and ~limit = -limit - 1 below
    acc = _mm256_min_epi32(_mm256_max_epi32(acc, _mm256_xor_si256(limit, _mm256_set1_epi32(-1))),
                           limit);
  }
  __m256i p[2] = {_mm256_mul_epi32(acc, Load(&q.multiplier_even[8 * h])),
                  _mm256_mul_epi32(_mm256_srli_epi64(acc, 32), Load(&q.multiplier_odd[8 * h]))};
  for (int half = 0; half < 2; ++half) {
    if constexpr (kLeftShift) p[half] = _mm256_sllv_epi64(p[half], Load(&q.left_shift[half][j]));
    __m256i t = _mm256_add_epi64(p[half], Load(&q.rounding_biased[half][j]));
    if constexpr (kMode != RequantMode::kNegativesClamp) {
      // All ones (-1) in the lanes where p < 0: ties away from zero.
      t = _mm256_add_epi64(t, _mm256_cmpgt_epi64(_mm256_setzero_si256(), p[half]));
    }
    // t >= 0 here as an unsigned number below 2^64 (|p| < 2^62), so the
    // logical shift is the floor.
    t = _mm256_srlv_epi64(t, Load(&q.shift[half][j]));
    p[half] = _mm256_sub_epi64(t, Load(&q.bias_shifted[half][j]));
  }
  return _mm256_blend_epi32(p[0], _mm256_slli_epi64(p[1], 32), 0xAA);
}

// 16 int16 (values 0..7 in the low lane, 8..15 in the high one) to 16 int8 in
// that order, with the zero point (unless they hold it already) and clamp;
// saturating on the way is exact as in PackToInt8 of the AVX-512 levels.
template <bool kAddZeroPoint = true>
QFORGE_INLINE __m128i Int16ToInt8(__m256i v, const OutputStage& out) {
  if constexpr (kAddZeroPoint) v = _mm256_adds_epi16(v, out.zero_point16);
  const __m256i b = _mm256_permute4x64_epi64(_mm256_packs_epi16(v, v), _MM_SHUFFLE(3, 1, 2, 0));
  return _mm_min_epi8(_mm_max_epi8(_mm256_castsi256_si128(b), out.qmin8), out.qmax8);
}

// Two vectors of 8 requantized int32 (values 0..7, then 8..15) to 16 int8.
template <bool kAddZeroPoint = true>
QFORGE_INLINE __m128i PackToInt8(__m256i v0, __m256i v1, const OutputStage& out) {
  const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(v0, v1), _MM_SHUFFLE(3, 1, 2, 0));
  return Int16ToInt8<kAddZeroPoint>(w, out);
}

void StoreBytes(int8_t* out, __m128i v, int bytes) {
  if (bytes >= 16) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), v);
    return;
  }
  alignas(16) int8_t temp[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(temp), v);
  std::memcpy(out, temp, bytes);
}

// Sets round-to-nearest, every exception masked, for the FMAs of the
// floating-point forms, and gives the caller its own mode back.
class NearestRounding {
 public:
  NearestRounding() : saved_(_mm_getcsr()) { _mm_setcsr(0x1F80); }
  ~NearestRounding() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
};

// Whether kMode requantizes in floating point; its results then hold the
// output zero point already.
template <RequantMode kMode>
inline constexpr bool kInFloatingPoint =
    kMode == RequantMode::kFloat || kMode == RequantMode::kDouble;

// What a kernel in kMode holds for its call: NearestRounding where it
// requantizes in floating point, nothing where in integers.
struct CallersRounding {};
template <RequantMode kMode>
using RoundingFor = std::conditional_t<kInFloatingPoint<kMode>, NearestRounding, CallersRounding>;

// Channels 8h..8h+7 of `q` requantized in the form of kMode; the
// floating-point forms' results hold the output zero point already.
template <RequantMode kMode>
QFORGE_INLINE __m256i Requantize(__m256i acc, const RequantBlock& q, int h) {
  if constexpr (kMode == RequantMode::kFloat) {
    const __m256 r = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_load_ps(&q.float_scale[8 * h]),
                                     _mm256_load_ps(&q.float_offset[8 * h]));
    return _mm256_sub_epi32(_mm256_castps_si256(r),
                            _mm256_castps_si256(_mm256_set1_ps(kFloatRoundingMagic)));
  } else if constexpr (kMode == RequantMode::kDouble) {
    // As the AVX-512 levels' RoundedProductsInDouble: in each 128-bit lane,
    // channels 0, 1 of four from the low unpack and 2, 3 from the high one,
    // where RequantBlock keeps their constants.
    const __m256i high =
        _mm256_add_epi32(_mm256_set1_epi32(kHighHalfOf1p5x2p52), _mm256_srai_epi32(acc, 31));
    const __m256d lo = _mm256_castsi256_pd(_mm256_unpacklo_epi32(acc, high));
    const __m256d hi = _mm256_castsi256_pd(_mm256_unpackhi_epi32(acc, high));
    const __m256d rlo = _mm256_fmadd_pd(lo, _mm256_load_pd(&q.scale[0][4 * h]),
                                        _mm256_load_pd(&q.offset[0][4 * h]));
    const __m256d rhi = _mm256_fmadd_pd(hi, _mm256_load_pd(&q.scale[1][4 * h]),
                                        _mm256_load_pd(&q.offset[1][4 * h]));
    return _mm256_castps_si256(
        _mm256_shuffle_ps(_mm256_castpd_ps(rlo), _mm256_castpd_ps(rhi), _MM_SHUFFLE(2, 0, 2, 0)));
  } else {
    return MultiplyByQuantizedMultiplier<kMode>(acc, q, h);
  }
}

// --- GEMM ---------------------------------------------------------------------

// f(std::integral_constant<int, rows>()) for a GEMM unit of 1 to 6 rows, so
// a tile can be instantiated for its row count.
template <typename F>
void WithRowCount(int rows, const F& f) {
  static_assert(kAvx2TileRows == 6 && kAvxVnniTileRows == 6);
  switch (rows) {
    case 6:
      return f(std::integral_constant<int, 6>());
    case 5:
      return f(std::integral_constant<int, 5>());
    case 4:
      return f(std::integral_constant<int, 4>());
    case 3:
      return f(std::integral_constant<int, 3>());
    case 2:
      return f(std::integral_constant<int, 2>());
    default:
      return f(std::integral_constant<int, 1>());
  }
}

// Depth values widened to int16 per pass, for the rows of a tile (12 KB on
// the stack): MobileNetV2's depths, up to 960 and the classifier's 1280 in
// two, are widened once for all of a tile's channels.
constexpr int kDepthChunk = kAvx2DepthChunk;

// `length` values from src, widened to int16 at dst.
QFORGE_INLINE void WidenRun(const int8_t* src, int length, int16_t* dst) {
  int k = 0;
  for (; k + 16 <= length; k += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + k));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + k), _mm256_cvtepi8_epi16(x));
  }
  for (; k < length; ++k) dst[k] = src[k];
}

// length values of each row from k0 on, widened to int16, and a 0 after an
// odd length (the last pair's partner).
template <int kRows>
QFORGE_INLINE void Widen(const int8_t* const* rows, int k0, int length,
                         int16_t (*a16)[kDepthChunk]) {
  for (int m = 0; m < kRows; ++m) {
    WidenRun(rows[m] + k0, length, a16[m]);
    if (length % 2 != 0) a16[m][length] = 0;
  }
}

// 16 output channels (two 8-channel blocks from `block8`, the second maybe
// past the end) of the tile's rows over one depth chunk: acc[m][b] += the
// chunk's pairs (a16 rows of int16) times the packed weights.
template <int NB, int kRows>
QFORGE_INLINE void MultiplyChunk(const int16_t* weights, int pairs_total, int block8,
                                 int first_pair, int pairs, const int16_t (*a16)[kDepthChunk],
                                 __m256i (*acc)[2]) {
  const int16_t* w[NB];
  for (int b = 0; b < NB; ++b) {
    w[b] = weights + (static_cast<int64_t>(block8 + b) * pairs_total + first_pair) * 16;
  }
  for (int k2 = 0; k2 < pairs; ++k2) {
    __m256i wv[NB];
    for (int b = 0; b < NB; ++b) wv[b] = Load(w[b] + k2 * 16);
    for (int m = 0; m < kRows; ++m) {
      int32_t pair;
      std::memcpy(&pair, &a16[m][2 * k2], 4);
      const __m256i av = _mm256_set1_epi32(pair);
      for (int b = 0; b < NB; ++b) {
        acc[m][b] = _mm256_add_epi32(acc[m][b], _mm256_madd_epi16(av, wv[b]));
      }
    }
  }
}

// Output rows [first_row, first_row + kRows), channels of blocks [first_block,
// end_block) 16 at a time, over `depth` values a row: widen(k0, length, a16)
// widens the rows' values [k0, k0 + length). Rows that fit one chunk are
// widened once for all blocks, deeper ones a chunk at a time per block.
template <int kRows, RequantMode kMode, typename WidenChunk>
void Tile(const PackedGemmConv& conv, int depth, const WidenChunk& widen, int64_t first_row,
          int first_block, int end_block, int8_t* output) {
  const OutputStage stage(conv.epilogue.output);
  const ChannelEpilogue& e = conv.epilogue;
  const int outputs = conv.geometry.output_channels;
  const int pairs_total = conv.depth_padded / 2;
  const auto* weights = reinterpret_cast<const int16_t*>(conv.weights.data());
  alignas(32) int16_t a16[kRows][kDepthChunk];
  const bool whole = depth <= kDepthChunk;
  if (whole) widen(0, depth, a16);
  constexpr bool kAddZeroPoint = !kInFloatingPoint<kMode>;
  for (int c0 = first_block * 16; c0 < std::min(end_block * 16, outputs); c0 += 16) {
    __m256i acc[kRows][2];
    for (int m = 0; m < kRows; ++m) {
      acc[m][0] = Load(&e.bias[c0]);
      acc[m][1] = Load(&e.bias[c0 + 8]);
    }
    for (int k0 = 0; k0 < depth; k0 += kDepthChunk) {
      const int length = std::min(kDepthChunk, depth - k0);
      if (!whole) widen(k0, length, a16);
      const int pairs = (length + 1) / 2;
      if (outputs - c0 > 8) {
        MultiplyChunk<2, kRows>(weights, pairs_total, c0 / 8, k0 / 2, pairs, a16, acc);
      } else {
        MultiplyChunk<1, kRows>(weights, pairs_total, c0 / 8, k0 / 2, pairs, a16, acc);
      }
    }
    const RequantBlock& q = e.requant[c0 / 16];
    for (int m = 0; m < kRows; ++m) {
      const __m256i v0 = Requantize<kMode>(acc[m][0], q, 0);
      const __m256i v1 = Requantize<kMode>(acc[m][1], q, 1);
      StoreBytes(output + (first_row + m) * outputs + c0, PackToInt8<kAddZeroPoint>(v0, v1, stage),
                 outputs - c0);
    }
  }
}

// A GEMM unit's tile of kRows rows.
template <int kRows, RequantMode kMode>
void UnitTile(const PackedGemmConv& conv, const int8_t* const* rows, const GemmUnit& unit,
              int8_t* output) {
  auto widen = [&](int k0, int length, int16_t(*a16)[kDepthChunk]) {
    Widen<kRows>(rows, k0, length, a16);
  };
  Tile<kRows, kMode>(conv, conv.depth, widen, unit.first_row, unit.first_block, unit.end_block,
                     output);
}

// Pixels [ox, ox + kRows) of output row `unit` (n, oy), whose strips are
// filled: pixel m's row is KH runs of strip_run values, one in each strip.
template <int kRows, RequantMode kMode>
void StripTile(const PackedGemmConv& conv, const int8_t* strips, int64_t unit, int ox,
               int8_t* output) {
  const reference::ConvGeometry& g = conv.geometry;
  // One pass: PackGemmConv takes strips only where KH * strip_run + 16 fits.
  auto widen = [&](int, int, int16_t(*a16)[kDepthChunk]) {
    for (int m = 0; m < kRows; ++m) {
      const int8_t* pixel = strips + int64_t{ox + m} * g.stride_w * g.input_channels;
      // 16 values at a time, past the run: the strip has the bytes to read
      // (strip_bytes), the row the room to write, and each run overwrites
      // what the one before it wrote past its end.
      for (int ky = 0; ky < g.kernel_height; ++ky) {
        for (int k = 0; k < conv.strip_run; k += 16) {
          const __m128i x =
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(pixel + ky * conv.strip_bytes + k));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(a16[m] + ky * conv.strip_run + k),
                              _mm256_cvtepi8_epi16(x));
        }
      }
    }
  };
  // A strip unit's blocks_per_unit is all of the conv's blocks.
  Tile<kRows, kMode>(conv, conv.depth_padded, widen, unit * g.output_width + ox, 0,
                     conv.blocks_per_unit, output);
}

// Units are output rows (n, oy); each fills its own strips in the scratch,
// the input's bytes as they are.
template <RequantMode kMode>
void StripRange(const PackedGemmConv& conv, const int8_t* input, int8_t* output, uint8_t* scratch,
                int64_t begin, int64_t end) {
  const reference::ConvGeometry& g = conv.geometry;
  [[maybe_unused]] const RoundingFor<kMode> rounding;
  auto copy = [](const int8_t* src, int64_t bytes, uint8_t* dst) { std::memcpy(dst, src, bytes); };
  for (int64_t unit = begin; unit < end; ++unit) {
    uint8_t* strips = scratch + unit * g.kernel_height * conv.strip_bytes;
    FillStrips(conv, input, static_cast<int>(unit / g.output_height),
               static_cast<int>(unit % g.output_height), strips, copy);
    const auto* row_strips = reinterpret_cast<const int8_t*>(strips);
    int ox = 0;
    for (; ox + kAvx2TileRows <= g.output_width; ox += kAvx2TileRows) {
      StripTile<kAvx2TileRows, kMode>(conv, row_strips, unit, ox, output);
    }
    for (; ox < g.output_width; ++ox) StripTile<1, kMode>(conv, row_strips, unit, ox, output);
  }
}

template <RequantMode kMode>
void GemmConvRange(const PackedGemmConv& conv, const int8_t* input, int8_t* output,
                   uint8_t* scratch, int64_t begin, int64_t end) {
  [[maybe_unused]] const RoundingFor<kMode> rounding;
  for (int64_t index = begin; index < end; ++index) {
    const GemmUnit unit(conv, index);
    const int8_t* rows[kAvx2TileRows];
    FindUnitRows(conv, input, scratch, unit, rows);
    WithRowCount(unit.rows, [&](auto count) {
      UnitTile<decltype(count)::value, kMode>(conv, rows, unit, output);
    });
  }
}

// --- depthwise ----------------------------------------------------------------

template <RequantMode kMode>
void DepthwiseRange(const PackedDepthwise& conv, const int8_t* input, int8_t* output,
                    int64_t begin, int64_t end) {
  const reference::ConvGeometry& g = conv.geometry;
  const int channels = g.input_channels;
  const int tap_count = g.kernel_height * g.kernel_width, pairs = (tap_count + 1) / 2;
  const ChannelEpilogue& e = conv.epilogue;
  const OutputStage stage(e.output);
  const auto* weights = reinterpret_cast<const int16_t*>(conv.weights.data());
  const int8_t* taps[kMaxDepthwiseTaps + 1];
  constexpr bool kAddZeroPoint = !kInFloatingPoint<kMode>;
  [[maybe_unused]] const RoundingFor<kMode> rounding;
  for (int64_t unit = begin; unit < end; ++unit) {
    const int n = static_cast<int>(unit / g.output_height);
    const int oy = static_cast<int>(unit % g.output_height);
    const RowTaps row_taps(conv, input, n, oy);
    int8_t* out = output + unit * g.output_width * channels;
    for (int ox = 0; ox < g.output_width; ++ox, out += channels) {
      row_taps.Find(ox, taps);
      taps[tap_count] = conv.padding_row.data();  // an odd count's partner (zero weights)
      for (int c0 = 0; c0 < channels; c0 += 16) {
        // lo: channels 0-3 and 8-11 of the block; hi: 4-7 and 12-15.
        __m256i lo = Load(&e.bias[c0]), hi = Load(&e.bias[c0 + 8]);
        const int16_t* w = weights + static_cast<int64_t>(c0 / 16) * pairs * 32;
        for (int p = 0; p < pairs; ++p, w += 32) {
          const __m256i x0 = _mm256_cvtepi8_epi16(
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(taps[2 * p] + c0)));
          const __m256i x1 = _mm256_cvtepi8_epi16(
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(taps[2 * p + 1] + c0)));
          lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(x0, x1), Load(w)));
          hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(x0, x1), Load(w + 16)));
        }
        const RequantBlock& q = e.requant[c0 / 16];
        // Packing lo with hi puts the channels back in order.
        const __m256i packed =
            _mm256_packs_epi32(Requantize<kMode>(lo, q, 0), Requantize<kMode>(hi, q, 1));
        StoreBytes(out + c0, Int16ToInt8<kAddZeroPoint>(packed, stage), channels - c0);
      }
    }
  }
}

// --- element-wise -------------------------------------------------------------

__m256i LoadInt8x8(const int8_t* p) {
  return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// As avx512vnni's AddInput: the input with multiplier 1/2 is a shift.
class AddInput {
 public:
  // `block` holds m in every lane.
  AddInput(const QuantizedMultiplier& m, const RequantBlock& block, int32_t zero_point)
      : half_(IsHalf(m)), requant_(block), zero_point_(_mm256_set1_epi32(zero_point)) {}

  QFORGE_INLINE __m256i Rescale(const int8_t* x) const {
    const __m256i centered = _mm256_sub_epi32(LoadInt8x8(x), zero_point_);
    if (half_) return _mm256_slli_epi32(centered, reference::kAddLeftShift - 1);
    return MultiplyByQuantizedMultiplier<RequantMode::kExact>(
        _mm256_slli_epi32(centered, reference::kAddLeftShift), requant_, 0);
  }

 private:
  bool half_;
  const RequantBlock& requant_;
  __m256i zero_point_;
};

template <RequantMode kMode>
int64_t AddRange(const PackedAdd& add, const int8_t* a, const int8_t* b, int8_t* output,
                 int64_t first, int64_t last) {
  const reference::AddInt8Params& p = add.params;
  const AddInput in_a(p.a_multiplier, add.a, p.a_zero_point),
      in_b(p.b_multiplier, add.b, p.b_zero_point);
  const RequantBlock& qo = add.output;
  const OutputStage stage(p.output);
  int64_t i = first;
  for (; i + 16 <= last; i += 16) {
    __m256i v[2];
    for (int h = 0; h < 2; ++h) {
      const int64_t at = i + 8 * h;
      v[h] = MultiplyByQuantizedMultiplier<kMode>(
          _mm256_add_epi32(in_a.Rescale(a + at), in_b.Rescale(b + at)), qo, 0);
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(output + i), PackToInt8(v[0], v[1], stage));
  }
  return i;
}

template <RequantMode kMode>
void MeanImage(const reference::MeanInt8Params& p, const RequantBlock& q, const int8_t* image,
               int8_t* out) {
  const OutputStage stage(p.output);
  const int64_t pixels = int64_t{p.height} * p.width;
  const __m256i offset = _mm256_set1_epi32(static_cast<int32_t>(-pixels * p.input_zero_point));
  int c = 0;
  for (; c + 16 <= p.channels; c += 16) {
    __m256i sum[2] = {offset, offset};
    for (int64_t i = 0; i < pixels; ++i) {
      for (int h = 0; h < 2; ++h) {
        sum[h] = _mm256_add_epi32(sum[h], LoadInt8x8(image + i * p.channels + c + 8 * h));
      }
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + c),
                     PackToInt8(MultiplyByQuantizedMultiplier<kMode>(sum[0], q, 0),
                                MultiplyByQuantizedMultiplier<kMode>(sum[1], q, 0), stage));
  }
  for (; c < p.channels; ++c) {  // the last channels, as the reference
    int32_t sum = 0;
    for (int64_t i = 0; i < pixels; ++i) sum += image[i * p.channels + c] - p.input_zero_point;
    out[c] = RequantizeToInt8(sum, p.multiplier, p.output.zero_point, p.output.qmin,
                              p.output.qmax);
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
  int64_t done = begin;
  WithMode(ModeFor(params.output, params.output_multiplier.exponent > 0), [&](auto mode) {
    done = AddRange<decltype(mode)::value>(add, a, b, output, begin, end);
  });
  reference::AddInt8Params rest = params;  // the last few elements, as the reference
  rest.size = end - done;
  reference::AddInt8(rest, a + done, b + done, output + done);
}

void Mean(const reference::MeanInt8Params& params, const int8_t* input, int8_t* output,
          int64_t begin, int64_t end) {
  const RequantBlock q = UniformRequantBlock(params.multiplier);
  const int64_t image = int64_t{params.height} * params.width * params.channels;
  WithMode(ModeFor(params.output, params.multiplier.exponent > 0), [&](auto mode) {
    for (int64_t n = begin; n < end; ++n) {
      MeanImage<decltype(mode)::value>(params, q, input + n * image, output + n * params.channels);
    }
  });
}

void Quantize(float scale, int32_t zero_point, const float* input, int8_t* output, int64_t begin,
              int64_t end) {
  const __m256 inverse_scale = _mm256_set1_ps(InverseScale(scale));
  const __m256 zp = _mm256_set1_ps(static_cast<float>(zero_point));
  const __m256 lo = _mm256_set1_ps(-128.0f), hi = _mm256_set1_ps(127.0f);
  const __m256 nan_value = _mm256_set1_ps(static_cast<float>(std::clamp(zero_point, -128, 127)));
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256 x = _mm256_loadu_ps(input + i);
    // As common/quantization.h: RoundToGrid (x times the float reciprocal of
    // the scale, rounded half to even, plus the zero point), clamped; NaN
    // becomes the zero point.
    __m256 q = _mm256_round_ps(_mm256_mul_ps(x, inverse_scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(q, zp), lo), hi);
    q = _mm256_blendv_ps(q, nan_value, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    const __m256i q32 = _mm256_cvtps_epi32(q);
    const __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q32), _mm256_extracti128_si256(q32, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(output + i), _mm_packs_epi16(q16, q16));
  }
  reference::QuantizeToInt8(end - i, scale, zero_point, input + i, output + i);
}

void Dequantize(float scale, int32_t zero_point, const int8_t* input, float* output,
                int64_t begin, int64_t end) {
  const __m256 s = _mm256_set1_ps(scale);
  const __m256i zp = _mm256_set1_epi32(zero_point);
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    const __m256i q = _mm256_sub_epi32(LoadInt8x8(input + i), zp);
    _mm256_storeu_ps(output + i, _mm256_mul_ps(s, _mm256_cvtepi32_ps(q)));
  }
  reference::DequantizeInt8(end - i, scale, zero_point, input + i, output + i);
}

}  // namespace qforge::kernels::avx2

// --- the AVX-VNNI level's GEMM --------------------------------------------------
//
// The AVX-512 VNNI level's packing and arithmetic on 256-bit vectors: weights
// [O / 16][K / 4][16][4] signed bytes (channels 0-7 of a block in one vector,
// 8-15 in the next), the activations flipped to unsigned x + 128 (the bias
// takes the 128 * sum of weights this adds), and one vpdpbusd sums four
// products into each of 8 channels. A tile is 6 rows x 16 channels in 12
// accumulators. Requantization is the AVX2 level's.
namespace qforge::kernels::avxvnni {
namespace {

#define QFORGE_AVXVNNI __attribute__((target("avx2,fma,avxvnni")))

using avx2::kInFloatingPoint;
using avx2::Load;
using avx2::Requantize;
using avx2::RoundingFor;
using avx2::WithRowCount;

// acc + vpdpbusd(x, w), accumulated in place. Through the intrinsic, GCC 12
// copies the 6x16 tile's sums between registers and to the stack at every
// step of the loop (as at the AVX-512 VNNI level), which halved the speed.
QFORGE_INLINE __m256i Dpbusd(__m256i acc, __m256i x, __m256i w) {
  asm("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(x), "xm"(w));
  return acc;
}

// Activation bytes flipped per pass, for each row of a tile.
constexpr int kFlipChunk = 1024;

// x + 128 of `length` (a multiple of 4) bytes, as unsigned bytes.
QFORGE_INLINE void Flip(const int8_t* x, int length, uint8_t* out) {
  const __m256i bit = _mm256_set1_epi8(static_cast<char>(0x80));
  int k = 0;
  for (; k + 32 <= length; k += 32) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + k), _mm256_xor_si256(Load(x + k), bit));
  }
  if (k + 16 <= length) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + k));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + k),
                     _mm_xor_si128(v, _mm256_castsi256_si128(bit)));
    k += 16;
  }
  for (; k < length; k += 4) {
    uint32_t quad;
    std::memcpy(&quad, x + k, 4);
    quad ^= 0x80808080u;
    std::memcpy(out + k, &quad, 4);
  }
}

// acc[m][h] += the flipped rows' `quads` groups of 4 bytes, from a[m] + offset
// on, times the block's weights, channels 8h..8h+7.
template <int kRows>
QFORGE_AVXVNNI QFORGE_INLINE void MultiplyFlipped(const Bytes64* w, const uint8_t* const* a,
                                                  int64_t offset, int quads, __m256i (*acc)[2]) {
  for (int kk = 0; kk < quads; ++kk) {
    const __m256i w0 = Load(w[kk].bytes), w1 = Load(w[kk].bytes + 32);
    for (int m = 0; m < kRows; ++m) {
      int32_t quad;
      std::memcpy(&quad, a[m] + offset + 4 * kk, 4);
      const __m256i x = _mm256_set1_epi32(quad);
      acc[m][0] = Dpbusd(acc[m][0], x, w0);
      acc[m][1] = Dpbusd(acc[m][1], x, w1);
    }
  }
}

template <int kRows>
QFORGE_AVXVNNI QFORGE_INLINE void StartBlock(const ChannelEpilogue& e, int block,
                                             __m256i (*acc)[2]) {
  for (int m = 0; m < kRows; ++m) {
    acc[m][0] = Load(&e.bias[block * kChannelsPerVector]);
    acc[m][1] = Load(&e.bias[block * kChannelsPerVector + 8]);
  }
}

// Requantizes a block's sums and stores row m's 16 channels at out[m] + the
// block's first channel.
template <int kRows, RequantMode kMode>
QFORGE_AVXVNNI QFORGE_INLINE void StoreBlock(const PackedGemmConv& conv, int block,
                                             const avx2::OutputStage& stage, __m256i (*acc)[2],
                                             int8_t* const* out) {
  const RequantBlock& q = conv.epilogue.requant[block];
  const int c0 = block * kChannelsPerVector;
  constexpr bool kAddZeroPoint = !kInFloatingPoint<kMode>;
  for (int m = 0; m < kRows; ++m) {
    const __m256i v0 = Requantize<kMode>(acc[m][0], q, 0);
    const __m256i v1 = Requantize<kMode>(acc[m][1], q, 1);
    avx2::StoreBytes(out[m] + c0, avx2::PackToInt8<kAddZeroPoint>(v0, v1, stage),
                     conv.geometry.output_channels - c0);
  }
}

template <int kRows, RequantMode kMode>
QFORGE_AVXVNNI void Tile(const PackedGemmConv& conv, const int8_t* const* rows,
                         const GemmUnit& unit, int8_t* output) {
  const avx2::OutputStage stage(conv.epilogue.output);
  const int64_t quads_total = conv.depth_padded / 4;
  alignas(32) uint8_t flipped[kRows][kFlipChunk];
  const uint8_t* a[kRows];
  int8_t* out[kRows];
  for (int m = 0; m < kRows; ++m) {
    a[m] = flipped[m];
    out[m] = output + (unit.first_row + m) * conv.geometry.output_channels;
  }
  // Rows that fit are flipped once for all blocks (MobileNetV2's 1x1 convs
  // have depths of 16 to 960), deeper ones a chunk at a time for each block.
  const bool whole = conv.depth_padded <= kFlipChunk;
  if (whole) {
    for (int m = 0; m < kRows; ++m) Flip(rows[m], conv.depth_padded, flipped[m]);
  }
  for (int block = unit.first_block; block < unit.end_block; ++block) {
    __m256i acc[kRows][2];
    StartBlock<kRows>(conv.epilogue, block, acc);
    for (int k0 = 0; k0 < conv.depth_padded; k0 += kFlipChunk) {
      const int length = std::min(kFlipChunk, conv.depth_padded - k0);
      if (!whole) {
        for (int m = 0; m < kRows; ++m) Flip(rows[m] + k0, length, flipped[m]);
      }
      MultiplyFlipped<kRows>(&conv.weights[block * quads_total + k0 / 4], a, 0, length / 4, acc);
    }
    StoreBlock<kRows, kMode>(conv, block, stage, acc, out);
  }
}

template <RequantMode kMode>
QFORGE_AVXVNNI void GemmConvRange(const PackedGemmConv& conv, const int8_t* input, int8_t* output,
                                  uint8_t* scratch, int64_t begin, int64_t end) {
  [[maybe_unused]] const RoundingFor<kMode> rounding;
  for (int64_t index = begin; index < end; ++index) {
    const GemmUnit unit(conv, index);
    const int8_t* rows[kAvxVnniTileRows];
    FindUnitRows(conv, input, scratch, unit, rows);
    WithRowCount(unit.rows, [&](auto count) {
      Tile<decltype(count)::value, kMode>(conv, rows, unit, output);
    });
  }
}

// --- GEMM from strips (PackedGemmConv::strip_run), as at AVX-512 ---

// x + 128 of any number of bytes.
void FlipBytes(const int8_t* src, int64_t bytes, uint8_t* dst) {
  const int64_t quads = bytes / 4 * 4;
  Flip(src, static_cast<int>(quads), dst);
  for (int64_t i = quads; i < bytes; ++i) dst[i] = static_cast<uint8_t>(src[i]) ^ 0x80;
}

// Pixels [ox, ox + kRows) of an output row whose strips are filled: pixel m's
// GEMM row is KH runs of strip_run bytes, one in each strip.
template <int kRows, RequantMode kMode>
QFORGE_AVXVNNI void StripTile(const PackedGemmConv& conv, const uint8_t* strips, int8_t* row_out,
                              int ox) {
  const reference::ConvGeometry& g = conv.geometry;
  const avx2::OutputStage stage(conv.epilogue.output);
  const int64_t quads_total = conv.depth_padded / 4;
  const int run_quads = conv.strip_run / 4;
  const uint8_t* a[kRows];
  int8_t* out[kRows];
  for (int m = 0; m < kRows; ++m) {
    a[m] = strips + int64_t{ox + m} * g.stride_w * g.input_channels;
    out[m] = row_out + int64_t{ox + m} * g.output_channels;
  }
  for (int block = 0; block < conv.blocks_per_unit; ++block) {
    __m256i acc[kRows][2];
    StartBlock<kRows>(conv.epilogue, block, acc);
    for (int ky = 0; ky < g.kernel_height; ++ky) {
      MultiplyFlipped<kRows>(&conv.weights[block * quads_total + ky * run_quads], a,
                             ky * conv.strip_bytes, run_quads, acc);
    }
    StoreBlock<kRows, kMode>(conv, block, stage, acc, out);
  }
}

// Units are output rows (n, oy); each fills its own strips in the scratch.
template <RequantMode kMode>
QFORGE_AVXVNNI void StripRange(const PackedGemmConv& conv, const int8_t* input, int8_t* output,
                               uint8_t* scratch, int64_t begin, int64_t end) {
  const reference::ConvGeometry& g = conv.geometry;
  [[maybe_unused]] const RoundingFor<kMode> rounding;
  for (int64_t unit = begin; unit < end; ++unit) {
    uint8_t* strips = scratch + unit * g.kernel_height * conv.strip_bytes;
    FillStrips(conv, input, static_cast<int>(unit / g.output_height),
               static_cast<int>(unit % g.output_height), strips,
               [](const int8_t* src, int64_t bytes, uint8_t* dst) { FlipBytes(src, bytes, dst); });
    int8_t* row_out = output + unit * g.output_width * g.output_channels;
    int ox = 0;
    for (; ox + kAvxVnniTileRows <= g.output_width; ox += kAvxVnniTileRows) {
      StripTile<kAvxVnniTileRows, kMode>(conv, strips, row_out, ox);
    }
    for (; ox < g.output_width; ++ox) StripTile<1, kMode>(conv, strips, row_out, ox);
  }
}

// --- depthwise, column by column ---
//
// The AVX-512 VNNI level's column layouts (PackedDepthwise::column_blocks and
// column_tail_groups) in 256-bit halves: a 64-channel block as two slices of
// 32 channels, each weight vector's half the slice's; a tail group of 16 as
// two of 8.

// One input column's three rows of a 32-channel slice, flipped to x + 128 and
// interleaved: v[r] lane 4L + i = channel 16L + 4r + i's [row 0, row 1, row 2,
// 0], as the AVX-512 level's InterleaveColumn on half its width.
QFORGE_INLINE void InterleaveColumn(const int8_t* const src[3], __m256i (&v)[4]) {
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  const __m256i r0 = _mm256_xor_si256(Load(src[0]), flip);
  const __m256i r1 = _mm256_xor_si256(Load(src[1]), flip);
  const __m256i r2 = _mm256_xor_si256(Load(src[2]), flip);
  const __m256i zero = _mm256_setzero_si256();
  const __m256i lo01 = _mm256_unpacklo_epi8(r0, r1), hi01 = _mm256_unpackhi_epi8(r0, r1);
  const __m256i lo2 = _mm256_unpacklo_epi8(r2, zero), hi2 = _mm256_unpackhi_epi8(r2, zero);
  v[0] = _mm256_unpacklo_epi16(lo01, lo2);
  v[1] = _mm256_unpackhi_epi16(lo01, lo2);
  v[2] = _mm256_unpacklo_epi16(hi01, hi2);
  v[3] = _mm256_unpackhi_epi16(hi01, hi2);
}

// The int8 stage on 32 bytes at once.
struct WideClamp {
  explicit WideClamp(const reference::Int8Output& o)
      : zero_point16(_mm256_set1_epi16(static_cast<int16_t>(o.zero_point))),
        qmin8(_mm256_set1_epi8(static_cast<char>(o.qmin))),
        qmax8(_mm256_set1_epi8(static_cast<char>(o.qmax))) {}
  __m256i zero_point16, qmin8, qmax8;
};

// Where a 3x3 conv's taps read input column ix of row ky: the rows of
// output row (n, oy), or the padding row outside the image.
class ColumnSource {
 public:
  ColumnSource(const PackedDepthwise& conv, const int8_t* input, int n, int oy)
      : g_(conv.geometry), padding_(conv.padding_row.data()) {
    for (int ky = 0; ky < 3; ++ky) {
      const int64_t iy = int64_t{oy} * g_.stride_h - g_.pad_top + ky;
      rows_[ky] = iy >= 0 && iy < g_.input_height ? input + (int64_t{n} * g_.input_height + iy) *
                                                                g_.input_width * g_.input_channels
                                                  : nullptr;
    }
  }
  // src[ky] = channel c0 of column ix in row ky.
  void Find(int64_t ix, int c0, const int8_t* src[3]) const {
    for (int ky = 0; ky < 3; ++ky) {
      const bool inside = rows_[ky] != nullptr && ix >= 0 && ix < g_.input_width;
      src[ky] = (inside ? rows_[ky] + ix * g_.input_channels : padding_) + c0;
    }
  }

 private:
  const reference::ConvGeometry& g_;
  const int8_t* padding_;
  const int8_t* rows_[3];
};

// Output row `row_out` of one 32-channel slice (half h of column block
// `block`), swept along the row: each input column is interleaved once and
// kept for the next output (stride 1), or the one after (stride 2).
template <int kStride, RequantMode kMode>
QFORGE_AVXVNNI void ColumnSlice(const PackedDepthwise& conv, const ColumnSource& source, int block,
                                int h, int8_t* row_out) {
  const reference::ConvGeometry& g = conv.geometry;
  const ChannelEpilogue& e = conv.column_epilogue;
  const WideClamp clamp(e.output);
  const int c0 = block * 64 + 32 * h;
  const Bytes64* w = conv.column_weights.data() + static_cast<size_t>(block) * 12;
  auto column = [&](int64_t ix, __m256i(&v)[4]) __attribute__((always_inline)) {
    const int8_t* src[3];
    source.Find(ix, c0, src);
    InterleaveColumn(src, v);
  };
  __m256i cols[3][4];
  StartColumns(cols, g.pad_left, column);
  for (int ox = 0; ox < g.output_width; ++ox) {
    if (ox > 0) AdvanceColumns(cols, ox, kStride, g.pad_left, column);
    __m256i q[4];
    for (int r = 0; r < 4; ++r) {
      __m256i acc = Load(&e.bias[block * 64 + r * 16 + 8 * h]);
      for (int kx = 0; kx < 3; ++kx) {
        acc = Dpbusd(acc, cols[kx][r], Load(w[kx * 4 + r].bytes + 32 * h));
      }
      q[r] = Requantize<kMode>(acc, e.requant[block * 4 + r], h);
    }
    // Per 128-bit lane, q[0..3] hold channels 0-3, 4-7, 8-11, 12-15 of its 16:
    // two packs leave them in order.
    __m256i a = _mm256_packs_epi32(q[0], q[1]), b = _mm256_packs_epi32(q[2], q[3]);
    if constexpr (!kInFloatingPoint<kMode>) {
      a = _mm256_adds_epi16(a, clamp.zero_point16);
      b = _mm256_adds_epi16(b, clamp.zero_point16);
    }
    const __m256i bytes =
        _mm256_min_epi8(_mm256_max_epi8(_mm256_packs_epi16(a, b), clamp.qmin8), clamp.qmax8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(row_out + int64_t{ox} * g.input_channels + c0),
                        bytes);
  }
}

// For vpshufb on a 16-channel row broadcast to both 128-bit lanes: kSpread[h]
// [ky] takes channel 8h + 4L + j to byte ky of dword j of lane L, zeros
// elsewhere.
struct SpreadTable {
  alignas(32) uint8_t bytes[2][3][32];
};
constexpr SpreadTable MakeSpread() {
  SpreadTable t{};
  for (int h = 0; h < 2; ++h) {
    for (int ky = 0; ky < 3; ++ky) {
      for (int b = 0; b < 32; ++b) {
        const int lane = b / 16, j = b % 16 / 4;
        t.bytes[h][ky][b] = b % 4 == ky ? static_cast<uint8_t>(8 * h + 4 * lane + j) : 0x80;
      }
    }
  }
  return t;
}
inline constexpr SpreadTable kSpread = MakeSpread();

// 8 channels (half h of a 16-channel group) of one input column's three rows,
// flipped to x + 128: lane j = channel 8h + j's [row 0, row 1, row 2, 0x80]
// (the fourth byte meets a zero weight). `count` < 16 channels exist.
QFORGE_INLINE __m256i InterleaveEight(const int8_t* const src[3], int count, int h) {
  __m256i rows = _mm256_setzero_si256();
  for (int ky = 0; ky < 3; ++ky) {
    __m128i row;
    if (count >= 16) {
      row = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src[ky]));
    } else {
      alignas(16) int8_t part[16] = {};
      std::memcpy(part, src[ky], count);
      row = _mm_load_si128(reinterpret_cast<const __m128i*>(part));
    }
    rows = _mm256_or_si256(
        rows, _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(row), Load(kSpread.bytes[h][ky])));
  }
  return _mm256_xor_si256(rows, _mm256_set1_epi8(static_cast<char>(0x80)));
}

// The channels after the column blocks, in groups of 16 (two slices of 8),
// each swept along the row as ColumnSlice does.
template <RequantMode kMode>
QFORGE_AVXVNNI void ColumnTail(const PackedDepthwise& conv, const ColumnSource& source,
                               int8_t* row_out) {
  const reference::ConvGeometry& g = conv.geometry;
  const int channels = g.input_channels, first = conv.column_blocks * 64;
  const ChannelEpilogue& e = conv.column_tail_epilogue;
  const avx2::OutputStage stage(e.output);
  constexpr bool kAddZeroPoint = !kInFloatingPoint<kMode>;
  for (int group = 0; group < conv.column_tail_groups; ++group) {
    const int c0 = first + 16 * group, count = std::min(16, channels - c0);
    const Bytes64* w = conv.column_tail_weights.data() + static_cast<size_t>(group) * 3;
    auto column = [&](int64_t ix, __m256i(&v)[2]) __attribute__((always_inline)) {
      const int8_t* src[3];
      source.Find(ix, c0, src);
      v[0] = InterleaveEight(src, count, 0);
      v[1] = InterleaveEight(src, count, 1);
    };
    __m256i cols[3][2];
    StartColumns(cols, g.pad_left, column);
    for (int ox = 0; ox < g.output_width; ++ox) {
      if (ox > 0) AdvanceColumns(cols, ox, g.stride_w, g.pad_left, column);
      __m256i q[2];
      for (int h = 0; h < 2; ++h) {
        __m256i acc = Load(&e.bias[16 * group + 8 * h]);
        for (int kx = 0; kx < 3; ++kx) {
          acc = Dpbusd(acc, cols[kx][h], Load(w[kx].bytes + 32 * h));
        }
        q[h] = Requantize<kMode>(acc, e.requant[group], h);
      }
      avx2::StoreBytes(row_out + int64_t{ox} * channels + c0,
                       avx2::PackToInt8<kAddZeroPoint>(q[0], q[1], stage), count);
    }
  }
}

template <RequantMode kMode>
QFORGE_AVXVNNI void DepthwiseRange(const PackedDepthwise& conv, const int8_t* input, int8_t* output,
                                   int64_t begin, int64_t end) {
  [[maybe_unused]] const RoundingFor<kMode> rounding;
  const reference::ConvGeometry& g = conv.geometry;
  for (int64_t unit = begin; unit < end; ++unit) {
    const ColumnSource source(conv, input, static_cast<int>(unit / g.output_height),
                              static_cast<int>(unit % g.output_height));
    int8_t* row_out = output + unit * g.output_width * g.input_channels;
    for (int slice = 0; slice < 2 * conv.column_blocks; ++slice) {
      if (g.stride_w == 1) {
        ColumnSlice<1, kMode>(conv, source, slice / 2, slice % 2, row_out);
      } else {
        ColumnSlice<2, kMode>(conv, source, slice / 2, slice % 2, row_out);
      }
    }
    ColumnTail<kMode>(conv, source, row_out);
  }
}

#undef QFORGE_AVXVNNI

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
  // The column epilogues' channels are the op's: its mode holds for them.
  WithEpilogueMode(conv.epilogue, [&](auto mode) {
    DepthwiseRange<decltype(mode)::value>(conv, input, output, begin, end);
  });
}

}  // namespace qforge::kernels::avxvnni

// The AVX-512 VNNI level of int8_kernels.h. Compiled with -mavx512f/bw/dq/vl and
// -mavx512vnni (see BUILD); runs only where ResolveIsa allows it.
//
// Requantization, exactly as common/requantize.h, in 64-bit lanes. With the
// product p = acc * multiplier (|p| < 2^62) and a right shift s >= 1:
//   SaturatingRoundingDoublingHighMul: r1 = floor((p + 2^30) / 2^31)
//     (gemmlowp's nudge 1 - 2^30 for p < 0 with truncating division is the same
//     floor: both round to nearest with ties toward +infinity);
//   RoundingDivideByPOT: r2 = floor((r1 + 2^(s-1) - [r1 < 0]) / 2^s)
//     (ties away from zero).
// Since floor((floor(y / a) + c) / b) = floor((y + c * a) / (a * b)) for integer
// c and positive integers a, b:
//   r2 = floor((p + 2^30 + 2^(30+s) - [p < -2^30] * 2^31) / 2^(31+s)),
// one add, one conditional subtract and one arithmetic shift per lane. For s = 0
// it is r1 itself. A positive exponent (a left shift before the multiply) is
// applied to p, after clamping acc to +-2^23: beyond that the reference
// saturates and every int8 output clamps anyway, with the same sign.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "runtime/kernels/int8_kernels_isa.h"

namespace qforge::kernels::avx512vnni {
namespace {

// The int8 output stage after requantization: add the zero point and clamp to
// [qmin, qmax], for one vector of 16 int32 (OutputStage) or four at once
// (PackToInt8, with saturating packs that keep far-out values far out).
struct OutputStage {
  __m512i min;  // qmin - zero_point
  __m512i max;  // qmax - zero_point
  __m512i zero_point;
  __m512i zero_point16;  // as int16
  __m512i qmin8, qmax8;  // as int8

  explicit OutputStage(const reference::Int8Output& o)
      : min(_mm512_set1_epi32(o.qmin - o.zero_point)),
        max(_mm512_set1_epi32(o.qmax - o.zero_point)),
        zero_point(_mm512_set1_epi32(o.zero_point)),
        zero_point16(_mm512_set1_epi16(static_cast<int16_t>(o.zero_point))),
        qmin8(_mm512_set1_epi8(static_cast<char>(o.qmin))),
        qmax8(_mm512_set1_epi8(static_cast<char>(o.qmax))) {}
};

// Four vectors of requantized int32 to 64 int8. Within each 128-bit lane L
// the result holds v[j]'s elements 4L..4L+3 at bytes 4j..4j+3: callers put
// them in order with one permute. Saturating to int16 first is exact: a value
// beyond +-32767 is still beyond the int8 range after the zero point is added.
__m512i PackToInt8(const __m512i v[4], const OutputStage& out) {
  const __m512i v01 = _mm512_adds_epi16(_mm512_packs_epi32(v[0], v[1]), out.zero_point16);
  const __m512i v23 = _mm512_adds_epi16(_mm512_packs_epi32(v[2], v[3]), out.zero_point16);
  const __m512i q = _mm512_packs_epi16(v01, v23);
  return _mm512_min_epi8(_mm512_max_epi8(q, out.qmin8), out.qmax8);
}

__m512i Load(const void* p) { return _mm512_load_si512(p); }

// MultiplyByQuantizedMultiplier of 16 lanes. With kLeftShift the result is
// exact only as far as an int8 clamp after it can tell (see the top).
template <bool kLeftShift>
__m512i MultiplyByQuantizedMultiplier(__m512i acc, const RequantBlock& q) {
  if constexpr (kLeftShift) {
    acc = _mm512_min_epi32(_mm512_max_epi32(acc, _mm512_set1_epi32(-(1 << 23))),
                           _mm512_set1_epi32(1 << 23));
  }
  __m512i even = _mm512_mul_epi32(acc, Load(q.multiplier_even));
  __m512i odd = _mm512_mul_epi32(_mm512_srli_epi64(acc, 32), Load(q.multiplier_odd));
  if constexpr (kLeftShift) {
    even = _mm512_sllv_epi64(even, Load(q.left_shift[0]));
    odd = _mm512_sllv_epi64(odd, Load(q.left_shift[1]));
  }
  const __m512i minus_half = _mm512_set1_epi64(-(int64_t{1} << 30));
  const __mmask8 even_negative = _mm512_cmplt_epi64_mask(even, minus_half);
  const __mmask8 odd_negative = _mm512_cmplt_epi64_mask(odd, minus_half);
  even = _mm512_add_epi64(even, Load(q.rounding[0]));
  odd = _mm512_add_epi64(odd, Load(q.rounding[1]));
  even = _mm512_mask_sub_epi64(even, even_negative, even, Load(q.negative_fix[0]));
  odd = _mm512_mask_sub_epi64(odd, odd_negative, odd, Load(q.negative_fix[1]));
  even = _mm512_srav_epi64(even, Load(q.shift[0]));
  odd = _mm512_srav_epi64(odd, Load(q.shift[1]));
  // Each result fits in the low half of its 64-bit lane: interleave them back.
  const __m512i interleave =
      _mm512_set_epi32(30, 14, 28, 12, 26, 10, 24, 8, 22, 6, 20, 4, 18, 2, 16, 0);
  return _mm512_permutex2var_epi32(even, interleave, odd);
}

template <bool kLeftShift>
__m128i RequantizeToInt8(__m512i acc, const RequantBlock& q, const OutputStage& out) {
  __m512i v = MultiplyByQuantizedMultiplier<kLeftShift>(acc, q);
  // Clamp before adding the zero point: v may sit near the int32 limits.
  v = _mm512_min_epi32(_mm512_max_epi32(v, out.min), out.max);
  return _mm512_cvtepi32_epi8(_mm512_add_epi32(v, out.zero_point));
}

__mmask16 LaneMask(int lanes) {
  return lanes >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << lanes) - 1);
}

__mmask64 ByteMask(int bytes) {
  return bytes >= 64 ? ~__mmask64{0} : (__mmask64{1} << bytes) - 1;
}

// --- GEMM ---------------------------------------------------------------------

// sum_k a[k] over `bytes` signed bytes.
int32_t RowSum(const int8_t* a, int bytes) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i sum = _mm512_setzero_si512();
  int k = 0;
  for (; k + 64 <= bytes; k += 64) sum = _mm512_dpbusd_epi32(sum, ones, _mm512_loadu_si512(a + k));
  if (k < bytes) {
    sum = _mm512_dpbusd_epi32(sum, ones, _mm512_maskz_loadu_epi8(ByteMask(bytes - k), a + k));
  }
  return _mm512_reduce_add_epi32(sum);
}

// Rows of one tile: MR input rows (repeated when the tile is short) and where
// their outputs go.
template <int MR>
struct TileRows {
  const int8_t* a[MR];
  int8_t* c[MR];
  __m512i start[MR];  // -128 * sum_k a[k], the unsigned weights' correction
};

// Output channels [16 * first_block, 16 * (first_block + NB)) of MR rows: the
// register tile is MR x NB vectors of 16 int32 accumulators.
template <int MR, int NB, bool kLeftShift>
void GemmTile(const PackedGemmConv& conv, const TileRows<MR>& rows, int first_block,
              const OutputStage& out) {
  const int groups = conv.depth_padded / 4;
  const ChannelEpilogue& e = conv.epilogue;
  const Bytes64* w[NB];
  __m512i acc[MR][NB];
  for (int b = 0; b < NB; ++b) {
    w[b] = conv.weights.data() + static_cast<size_t>(first_block + b) * groups;
    const __m512i bias = _mm512_loadu_si512(&e.bias[(first_block + b) * kChannelsPerVector]);
    for (int m = 0; m < MR; ++m) acc[m][b] = _mm512_add_epi32(bias, rows.start[m]);
  }
  for (int kk = 0; kk < groups; ++kk) {
    __m512i wv[NB];
    for (int b = 0; b < NB; ++b) wv[b] = Load(w[b][kk].bytes);
    for (int m = 0; m < MR; ++m) {
      int32_t a4;
      std::memcpy(&a4, rows.a[m] + 4 * kk, 4);
      const __m512i av = _mm512_set1_epi32(a4);
      for (int b = 0; b < NB; ++b) acc[m][b] = _mm512_dpbusd_epi32(acc[m][b], wv[b], av);
    }
  }
  // The epilogue's loop is too long for GCC to unroll; reading a copy keeps
  // the accumulators above in registers.
  __m512i result[MR][NB];
  for (int m = 0; m < MR; ++m) {
    for (int b = 0; b < NB; ++b) result[m][b] = acc[m][b];
  }
  // Bytes 4j..4j+3 of lane L hold channels 16j + 4L..: gather each 16 back.
  const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  const __mmask64 mask =
      ByteMask(conv.geometry.output_channels - first_block * kChannelsPerVector);
  for (int m = 0; m < MR; ++m) {
    __m512i q[4] = {};
    for (int b = 0; b < NB; ++b) {
      q[b] = MultiplyByQuantizedMultiplier<kLeftShift>(result[m][b], e.requant[first_block + b]);
    }
    _mm512_mask_storeu_epi8(rows.c[m] + first_block * kChannelsPerVector, mask,
                            _mm512_permutexvar_epi32(order, PackToInt8(q, out)));
  }
}

template <int MR, bool kLeftShift>
void GemmTileRow(const PackedGemmConv& conv, const TileRows<MR>& rows, const OutputStage& out) {
  const int blocks = (conv.geometry.output_channels + kChannelsPerVector - 1) / kChannelsPerVector;
  int block = 0;
  for (; block + 4 <= blocks; block += 4) GemmTile<MR, 4, kLeftShift>(conv, rows, block, out);
  switch (blocks - block) {
    case 3: GemmTile<MR, 3, kLeftShift>(conv, rows, block, out); break;
    case 2: GemmTile<MR, 2, kLeftShift>(conv, rows, block, out); break;
    case 1: GemmTile<MR, 1, kLeftShift>(conv, rows, block, out); break;
    default: break;
  }
}

// Rows [first, first + count) with count <= MR; short tiles repeat their last
// row (recomputing and rewriting the same values) so the kernel has no row tail.
template <int MR, bool kLeftShift>
void GemmRows(const PackedGemmConv& conv, const int8_t* input, int8_t* output, uint8_t* scratch,
              int64_t first, int count, const OutputStage& out) {
  TileRows<MR> rows;
  for (int m = 0; m < MR; ++m) {
    const int64_t row = first + std::min(m, count - 1);
    if (conv.direct) {
      rows.a[m] = input + row * conv.depth;
    } else {
      uint8_t* gathered = scratch + row * conv.depth_padded;
      if (m < count) GatherConvRow(conv, input, row, gathered);
      rows.a[m] = reinterpret_cast<const int8_t*>(gathered);
    }
    rows.c[m] = output + row * conv.geometry.output_channels;
    rows.start[m] = _mm512_set1_epi32(-128 * RowSum(rows.a[m], conv.depth_padded));
  }
  GemmTileRow<MR, kLeftShift>(conv, rows, out);
}

template <bool kLeftShift>
void GemmConvRange(const PackedGemmConv& conv, const int8_t* input, int8_t* output,
                   uint8_t* scratch, int64_t begin, int64_t end) {
  const OutputStage out(conv.epilogue.output);
  for (int64_t tile = begin; tile < end; ++tile) {
    const int64_t first = tile * kGemmTileRows;
    const int count = static_cast<int>(std::min<int64_t>(kGemmTileRows, conv.rows - first));
    if (count == 1) {
      GemmRows<1, kLeftShift>(conv, input, output, scratch, first, count, out);
    } else {
      GemmRows<kGemmTileRows, kLeftShift>(conv, input, output, scratch, first, count, out);
    }
  }
}

// --- depthwise ----------------------------------------------------------------

// One output pixel's 64 channels [64 * block, ...) from its taps' input pixels.
template <bool kLeftShift>
void DepthwiseBlock(const PackedDepthwise& conv, const int8_t* const* taps, int tap_count,
                    int block, int8_t* out, const OutputStage& stage) {
  const ChannelEpilogue& e = conv.epilogue;
  const __mmask64 mask = ByteMask(conv.geometry.input_channels - block * 64);
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const Bytes64* w = conv.weights.data() + static_cast<size_t>(block) * tap_count * 4;
  __m512i acc[4];
  for (int r = 0; r < 4; ++r) acc[r] = _mm512_loadu_si512(&e.bias[block * 64 + r * 16]);
  for (int t = 0; t < tap_count; ++t, w += 4) {
    // x + 128 as unsigned bytes; masked-off bytes meet zero weights.
    const __m512i x = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, taps[t] + block * 64), flip);
    for (int r = 0; r < 4; ++r) acc[r] = _mm512_dpbusd_epi32(acc[r], x, Load(w[r].bytes));
  }
  __m512i q[4];
  for (int r = 0; r < 4; ++r) {
    q[r] = MultiplyByQuantizedMultiplier<kLeftShift>(acc[r], e.requant[block * 4 + r]);
  }
  // Lane L now holds channels 16L + 4i + r at byte 4r + i: put them in order.
  const __m512i order = _mm512_broadcast_i32x4(
      _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
  _mm512_mask_storeu_epi8(out + block * 64, mask,
                          _mm512_shuffle_epi8(PackToInt8(q, stage), order));
}

template <bool kLeftShift>
void DepthwiseRange(const PackedDepthwise& conv, const int8_t* input, int8_t* output,
                    int64_t begin, int64_t end) {
  const reference::ConvGeometry& g = conv.geometry;
  const int tap_count = g.kernel_height * g.kernel_width;
  const int blocks = (g.input_channels + 63) / 64;
  const OutputStage stage(conv.epilogue.output);
  const int8_t* taps[kMaxDepthwiseTaps];
  for (int64_t unit = begin; unit < end; ++unit) {
    const int n = static_cast<int>(unit / g.output_height);
    const int oy = static_cast<int>(unit % g.output_height);
    for (int ox = 0; ox < g.output_width; ++ox) {
      for (int ky = 0, t = 0; ky < g.kernel_height; ++ky) {
        const int64_t iy = int64_t{oy} * g.stride_h - g.pad_top + int64_t{ky} * g.dilation_h;
        for (int kx = 0; kx < g.kernel_width; ++kx, ++t) {
          const int64_t ix = int64_t{ox} * g.stride_w - g.pad_left + int64_t{kx} * g.dilation_w;
          const bool inside = iy >= 0 && iy < g.input_height && ix >= 0 && ix < g.input_width;
          taps[t] = inside ? input + ((int64_t{n} * g.input_height + iy) * g.input_width + ix) *
                                         g.input_channels
                           : conv.padding_row.data();
        }
      }
      int8_t* out = output + ((int64_t{n} * g.output_height + oy) * g.output_width + ox) *
                                 g.input_channels;
      for (int block = 0; block < blocks; ++block) {
        DepthwiseBlock<kLeftShift>(conv, taps, tap_count, block, out, stage);
      }
    }
  }
}

// --- element-wise -------------------------------------------------------------

template <bool kLeftShift>
void AddRange(const reference::AddInt8Params& p, const int8_t* a, const int8_t* b,
              int8_t* output, int64_t first, int64_t last) {
  const RequantBlock qa = UniformRequantBlock(p.a_multiplier);
  const RequantBlock qb = UniformRequantBlock(p.b_multiplier);
  const RequantBlock qo = UniformRequantBlock(p.output_multiplier);
  const OutputStage stage(p.output);
  const __m512i za = _mm512_set1_epi32(p.a_zero_point), zb = _mm512_set1_epi32(p.b_zero_point);
  for (int64_t i = first; i < last; i += 16) {
    const __mmask16 mask = LaneMask(static_cast<int>(last - i));
    const __m512i xa = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, a + i));
    const __m512i xb = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, b + i));
    // As reference::AddInt8: shift left for headroom, rescale each (multipliers
    // <= 1/2, so no left shift there), sum, requantize.
    const __m512i sa = _mm512_slli_epi32(_mm512_sub_epi32(xa, za), reference::kAddLeftShift);
    const __m512i sb = _mm512_slli_epi32(_mm512_sub_epi32(xb, zb), reference::kAddLeftShift);
    const __m512i sum = _mm512_add_epi32(MultiplyByQuantizedMultiplier<false>(sa, qa),
                                         MultiplyByQuantizedMultiplier<false>(sb, qb));
    _mm_mask_storeu_epi8(output + i, mask, RequantizeToInt8<kLeftShift>(sum, qo, stage));
  }
}

template <bool kLeftShift>
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
                           RequantizeToInt8<kLeftShift>(sum, q, stage));
    }
  }
}

}  // namespace

void GemmConv(const PackedGemmConv& conv, const int8_t* input, int8_t* output, uint8_t* scratch,
              int64_t begin, int64_t end) {
  if (conv.epilogue.any_left_shift) {
    GemmConvRange<true>(conv, input, output, scratch, begin, end);
  } else {
    GemmConvRange<false>(conv, input, output, scratch, begin, end);
  }
}

void Depthwise(const PackedDepthwise& conv, const int8_t* input, int8_t* output, int64_t begin,
               int64_t end) {
  if (conv.epilogue.any_left_shift) {
    DepthwiseRange<true>(conv, input, output, begin, end);
  } else {
    DepthwiseRange<false>(conv, input, output, begin, end);
  }
}

void Add(const reference::AddInt8Params& params, const int8_t* a, const int8_t* b, int8_t* output,
         int64_t begin, int64_t end) {
  if (params.output_multiplier.exponent > 0) {
    AddRange<true>(params, a, b, output, begin, end);
  } else {
    AddRange<false>(params, a, b, output, begin, end);
  }
}

void Mean(const reference::MeanInt8Params& params, const int8_t* input, int8_t* output,
          int64_t begin, int64_t end) {
  if (params.multiplier.exponent > 0) {
    MeanRange<true>(params, input, output, begin, end);
  } else {
    MeanRange<false>(params, input, output, begin, end);
  }
}

void Quantize(float scale, int32_t zero_point, const float* input, int8_t* output, int64_t begin,
              int64_t end) {
  const __m512 s = _mm512_set1_ps(scale), zp = _mm512_set1_ps(static_cast<float>(zero_point));
  const __m512 lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f);
  const __m512 nan_value = _mm512_set1_ps(static_cast<float>(std::clamp(zero_point, -128, 127)));
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 mask = LaneMask(static_cast<int>(end - i));
    const __m512 x = _mm512_maskz_loadu_ps(mask, input + i);
    // As common/quantization.h: nearbyint(x / scale) + zero_point in float,
    // clamped; NaN becomes the zero point.
    __m512 q = _mm512_roundscale_ps(_mm512_div_ps(x, s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(q, zp), lo), hi);
    q = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), q, nan_value);
    _mm_mask_storeu_epi8(output + i, mask, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(q)));
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

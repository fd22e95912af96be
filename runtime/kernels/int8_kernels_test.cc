// Every kernel of int8_kernels.h against the reference kernels, byte for byte,
// at every instruction-set level this CPU allows (a level it lacks is skipped
// and says so). Shapes cover the tile remainders: rows not a multiple of the
// tile, channels not a multiple of 16 or 64, depths not a multiple of 4.
#include "runtime/kernels/int8_kernels.h"

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "common/random.h"
#include "gtest/gtest.h"
#include "runtime/kernels/isa.h"

namespace qforge::kernels {
namespace {

using reference::ConvGeometry;

}  // namespace

void PrintTo(Isa isa, std::ostream* os) { *os << IsaName(isa); }

namespace {

class Int8KernelsTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (ResolveIsa(GetParam()) != GetParam()) {
      GTEST_SKIP() << "this CPU (or QFORGE_ISA) does not allow " << IsaName(GetParam());
    }
  }

  int Int(int lo, int hi) { return lo + static_cast<int>(rng_.Below(hi - lo + 1)); }
  std::vector<int8_t> Bytes(int64_t n, int lo = -128, int hi = 127) {
    std::vector<int8_t> v(n);
    for (int8_t& x : v) x = static_cast<int8_t>(Int(lo, hi));
    return v;
  }
  // Mostly the small multipliers of real layers, sometimes > 1 (a left shift),
  // tiny (a right shift of up to 31), or a power of two, where exact ties of
  // both signs are common and the tie rule shows.
  // With layer_like_, only the small ones, made odd: a multiplier with many
  // trailing zero bits can tie at accumulators a conv reaches, and then takes
  // the 64-bit requantization (ExactInDouble); a real layer's seldom has.
  QuantizedMultiplier Multiplier() {
    const int kind = layer_like_ ? 3 : Int(0, 9);
    if (float_like_) return *QuantizeMultiplier(std::ldexp(1.0 + rng_.UniformDouble(), -Int(2, 9)));
    if (kind == 2) return *QuantizeMultiplier(std::ldexp(1.0, -Int(1, 6)));
    const double exponent = kind == 0 ? Int(0, 5) : kind == 1 ? -Int(20, 31) : -Int(4, 14);
    QuantizedMultiplier m =
        *QuantizeMultiplier(std::ldexp(1.0 + rng_.UniformDouble(), static_cast<int>(exponent)) / 2);
    if (layer_like_) m.multiplier |= 1;
    return m;
  }
  reference::Int8Output Output() {
    reference::Int8Output out;
    out.zero_point = Int(-128, 127);
    if (Int(0, 1) == 1) {  // a fused ReLU-like clamp
      out.qmin = std::max(-128, out.zero_point);
      out.qmax = Int(out.qmin + 1 > 127 ? 127 : out.qmin + 1, 127);
      if (out.qmin == out.qmax) out.qmin = out.qmax - 1;
    }
    return out;
  }
  std::vector<int32_t> Bias(int n) {
    std::vector<int32_t> bias(n);
    for (int32_t& b : bias) b = Int(-(1 << 20), 1 << 20);
    return bias;
  }
  // Inputs of GEMMs get the 64 readable bytes past their end that the
  // runtime's arena gives every tensor (int8_kernels.h).
  std::vector<int8_t> GemmInput(int64_t n, int lo = -128, int hi = 127) {
    std::vector<int8_t> v = Bytes(n, lo, hi);
    v.resize(n + 64);
    return v;
  }
  // Runs [0, units) in a few uneven pieces, as threads would.
  template <typename F>
  void RunInPieces(int64_t units, F run) {
    int64_t begin = 0;
    while (begin < units) {
      const int64_t end = std::min<int64_t>(units, begin + 1 + rng_.Below(units - begin + 1) / 2);
      run(begin, end);
      begin = end;
    }
  }

  // Checks the conv three times: with multipliers of every kind; with only
  // the layer-like ones, where the SIMD levels requantize in double
  // precision; and with ones that each have a FloatScaleFor, where they
  // requantize in single precision.
  void CheckConv(const ConvGeometry& g) {
    for (int pass = 0; pass < 3; ++pass) {
      layer_like_ = pass == 1;
      float_like_ = pass == 2;
      CheckConvOnce(g);
      if (HasFatalFailure()) return;
    }
    layer_like_ = float_like_ = false;
  }

  // Redraws each channel's multiplier until it has a FloatScaleFor for the
  // accumulators its weights and bias allow (a bound found as the packing
  // does); false if some channel has none (a deep conv's bound past 2^24).
  bool MakeFloatLike(reference::Conv2DInt8Params& params, const std::vector<int8_t>& filter,
                     const int32_t* bias) {
    const int64_t per_output = static_cast<int64_t>(filter.size()) / params.multipliers.size();
    const int64_t input_range =
        std::max(127 - params.input_zero_point, 128 + params.input_zero_point);
    for (size_t o = 0; o < params.multipliers.size(); ++o) {
      int64_t bound = 0;
      for (int64_t k = 0; k < per_output; ++k) bound += std::abs(filter[o * per_output + k]);
      bound = bound * input_range + (bias != nullptr ? std::abs(int64_t{bias[o]}) : 0);
      int tries = 0;
      while (!FloatScaleFor(params.multipliers[o], bound, params.output).has_value()) {
        if (++tries == 100) return false;
        params.multipliers[o] = Multiplier();
      }
    }
    return true;
  }

  void CheckConvOnce(const ConvGeometry& g) {
    reference::Conv2DInt8Params params;
    params.geometry = g;
    params.input_zero_point = Int(-128, 127);
    for (int o = 0; o < g.output_channels; ++o) params.multipliers.push_back(Multiplier());
    params.output = Output();
    const int group_in = g.input_channels / g.groups;
    const std::vector<int8_t> input =
        GemmInput(int64_t{g.batch} * g.input_height * g.input_width * g.input_channels);
    const std::vector<int8_t> filter =
        Bytes(int64_t{g.output_channels} * g.kernel_height * g.kernel_width * group_in, -127, 127);
    const std::vector<int32_t> bias = Bias(g.output_channels);
    const bool with_bias = Int(0, 3) != 0;
    const int64_t out_size = int64_t{g.batch} * g.output_height * g.output_width * g.output_channels;
    std::vector<int8_t> expected(out_size), actual(out_size, 0x55);
    const bool in_float =
        float_like_ && MakeFloatLike(params, filter, with_bias ? bias.data() : nullptr);
    reference::Conv2DInt8(params, input.data(), filter.data(), with_bias ? bias.data() : nullptr,
                          expected.data());
    if (g.groups == 1) {
      const PackedGemmConv conv = PackGemmConv(params, filter.data(),
                                               with_bias ? bias.data() : nullptr, GetParam());
      CountEpilogue(conv.epilogue);
      if (layer_like_) {
        ASSERT_TRUE(conv.epilogue.exact_in_double) << Describe(g);
      }
      if (float_like_) {
        ASSERT_EQ(conv.epilogue.exact_in_float, in_float && conv.isa >= Isa::kAvx2) << Describe(g);
      }
      std::vector<uint8_t> scratch(conv.scratch_bytes);
      RunInPieces(GemmConvUnits(conv), [&](int64_t begin, int64_t end) {
        RunGemmConv(conv, input.data(), actual.data(), scratch.data(), begin, end);
      });
    } else {
      const PackedDepthwise conv = PackDepthwise(params, filter.data(),
                                                 with_bias ? bias.data() : nullptr, GetParam());
      for (const ChannelEpilogue* e :
           {&conv.epilogue, &conv.column_epilogue, &conv.column_tail_epilogue}) {
        if (!e->requant.empty()) CountEpilogue(*e);
      }
      if (layer_like_) {
        ASSERT_TRUE(conv.epilogue.exact_in_double) << Describe(g);
      }
      if (float_like_) {
        ASSERT_EQ(conv.epilogue.exact_in_float, in_float && conv.isa >= Isa::kAvx2) << Describe(g);
      }
      const bool columns = GetParam() >= Isa::kAvxVnni && g.kernel_height == 3 &&
                           g.kernel_width == 3 && g.dilation_h == 1 && g.dilation_w == 1 &&
                           g.stride_w <= 2;
      EXPECT_EQ(conv.column_blocks, columns ? g.input_channels / 64 : 0) << Describe(g);
      EXPECT_EQ(conv.column_tail_groups, columns ? (g.input_channels % 64 + 15) / 16 : 0)
          << Describe(g);
      RunInPieces(DepthwiseUnits(conv), [&](int64_t begin, int64_t end) {
        RunDepthwise(conv, input.data(), actual.data(), begin, end);
      });
    }
    ASSERT_EQ(actual, expected) << Describe(g);
  }

  // Counts the convs whose epilogue the SIMD levels run in each form.
  void CountEpilogue(const ChannelEpilogue& e) {
    ++(e.exact_in_float ? in_float_ : e.exact_in_double ? in_double_ : in_int64_);
  }

  // Each form the level has ran at least `least` times.
  void ExpectEveryEpilogueForm(int least) {
    EXPECT_GE(in_float_, GetParam() != Isa::kGeneric ? least : 0);
    EXPECT_GE(in_double_, least);
    EXPECT_GE(in_int64_, least);
  }

  // The packed fully connected layer, run in pieces, against the reference.
  void CheckFullyConnected(const reference::FullyConnectedInt8Params& params,
                           const std::vector<int8_t>& input, const std::vector<int8_t>& weights,
                           const std::vector<int32_t>& bias, const std::string& what) {
    std::vector<int8_t> expected(int64_t{params.batch} * params.output_features);
    std::vector<int8_t> actual(expected.size(), 0x55);
    reference::FullyConnectedInt8(params, input.data(), weights.data(), bias.data(),
                                  expected.data());
    const PackedGemmConv fc = PackFullyConnected(params, weights.data(), bias.data(), GetParam());
    std::vector<uint8_t> scratch(fc.scratch_bytes);
    RunInPieces(GemmConvUnits(fc), [&](int64_t begin, int64_t end) {
      RunGemmConv(fc, input.data(), actual.data(), scratch.data(), begin, end);
    });
    ASSERT_EQ(actual, expected) << what;
  }

  static std::string Describe(const ConvGeometry& g) {
    return "N" + std::to_string(g.batch) + " H" + std::to_string(g.input_height) + " W" +
           std::to_string(g.input_width) + " C" + std::to_string(g.input_channels) + " O" +
           std::to_string(g.output_channels) + " K" + std::to_string(g.kernel_height) + "x" +
           std::to_string(g.kernel_width) + " s" + std::to_string(g.stride_h) + " groups " +
           std::to_string(g.groups);
  }

  SplitMix64 rng_{7};
  bool layer_like_ = false;  // Multiplier() draws only real layers' multipliers
  bool float_like_ = false;  // Multiplier() draws ones of 2^-9 to 2^-1
  int in_float_ = 0, in_double_ = 0, in_int64_ = 0;  // CountEpilogue
};

ConvGeometry Geometry(int batch, int h, int w, int c, int o, int k, int stride, int pad,
                      int groups, int dilation = 1) {
  ConvGeometry g;
  g.batch = batch;
  g.input_height = h;
  g.input_width = w;
  g.input_channels = c;
  g.output_channels = o;
  g.kernel_height = g.kernel_width = k;
  g.stride_h = g.stride_w = stride;
  g.dilation_h = g.dilation_w = dilation;
  g.pad_top = g.pad_left = g.pad_bottom = g.pad_right = pad;
  g.groups = groups;
  g.output_height = static_cast<int>(reference::ConvOutputSize(h, k, stride, dilation, pad, pad));
  g.output_width = static_cast<int>(reference::ConvOutputSize(w, k, stride, dilation, pad, pad));
  return g;
}

TEST_P(Int8KernelsTest, PointwiseConvAtEveryTileRemainder) {
  for (int c : {4, 8, 16, 24, 96, 160, 324}) {
    for (int o : {1, 10, 16, 24, 32, 40, 64, 96, 100, 144}) {
      // Remainders 0 to 5 of the 6-row tiles, 1 to 11 of the 12-row ones.
      for (int pixels : {1, 5, 6, 7, 8, 9, 13, 16, 17, 40}) {
        CheckConv(Geometry(1, 1, pixels, c, o, 1, 1, 0, 1));
      }
    }
  }
  CheckConv(Geometry(2, 7, 9, 32, 96, 1, 1, 0, 1));
  // Deeper than kMaxDirectDepth: the VNNI level gathers its rows instead.
  CheckConv(Geometry(1, 2, 3, kMaxDirectDepth + 52, 20, 1, 1, 0, 1));
  ExpectEveryEpilogueForm(100);
}

TEST_P(Int8KernelsTest, GatheredConvs) {
  CheckConv(Geometry(1, 15, 15, 3, 32, 3, 2, 1, 1));  // MobileNetV2's first conv
  CheckConv(Geometry(2, 9, 8, 5, 17, 3, 1, 1, 1));    // depth 45, not a multiple of 4
  CheckConv(Geometry(1, 8, 8, 3, 16, 1, 1, 0, 1));    // 1x1 with depth 3
  CheckConv(Geometry(1, 9, 9, 16, 24, 1, 2, 0, 1));   // strided 1x1
  CheckConv(Geometry(1, 11, 10, 8, 20, 3, 1, 2, 1, 2));  // dilated
  ConvGeometry asymmetric = Geometry(1, 10, 10, 4, 12, 3, 2, 0, 1);
  asymmetric.pad_top = 1;
  asymmetric.pad_left = 0;
  asymmetric.pad_bottom = 0;
  asymmetric.pad_right = 1;
  asymmetric.output_height = 5;
  asymmetric.output_width = 5;
  CheckConv(asymmetric);
  // The VNNI level's strips: runs past 64 bytes, one output column, wide
  // padding, 5x5 with runs of 35 bytes, dilation along H only.
  CheckConv(Geometry(2, 6, 7, 40, 36, 3, 1, 1, 1));
  CheckConv(Geometry(1, 5, 1, 8, 16, 3, 1, 1, 1));
  CheckConv(Geometry(1, 4, 4, 4, 20, 3, 1, 3, 1));
  CheckConv(Geometry(1, 12, 13, 7, 40, 5, 2, 2, 1));
  CheckConv(Geometry(1, 11, 11, 3, 32, 3, 2, 1, 1));  // the first conv's; 33-byte rows
  // The AVX2 level's strips at their limit (KH * strip_run = 1008 of 1024
  // values, 16 left free) and past it (gathered; at 128 channels in two
  // chunks of its widening buffer).
  for (int c : {112, 113, 128}) CheckConv(Geometry(1, 5, 6, c, 24, 3, 1, 1, 1));
  ConvGeometry tall = Geometry(1, 12, 9, 4, 24, 3, 1, 2, 1);
  tall.dilation_h = 2;
  tall.output_height = static_cast<int>(reference::ConvOutputSize(12, 3, 1, 2, 2, 2));
  CheckConv(tall);
  ExpectEveryEpilogueForm(5);
}

TEST_P(Int8KernelsTest, DepthwiseConvs) {
  for (int c : {1, 8, 16, 32, 48, 64, 96, 144, 200}) {
    CheckConv(Geometry(1, 9, 7, c, c, 3, 1, 1, c));
    CheckConv(Geometry(2, 8, 9, c, c, 3, 2, 1, c));
  }
  // Rows wide enough for several blocks of neighbouring pixels (16 and 32
  // channels at stride 1: two blocks on one load of the weights), with one to
  // three pixels left at the row's end, and without padding (from column 0).
  for (int c : {16, 32}) {
    for (int w : {21, 22, 23}) CheckConv(Geometry(1, 4, w, c, c, 3, 1, 1, c));
    CheckConv(Geometry(2, 3, 20, c, c, 3, 1, 0, c));
  }
  // A 5x5 kernel (the loop over any tap count) on full blocks, tails and
  // neighbouring pixels.
  for (int c : {16, 32, 96, 144}) CheckConv(Geometry(1, 6, 14, c, c, 5, 1, 2, c));
  CheckConv(Geometry(1, 12, 12, 40, 40, 5, 1, 2, 40));
  CheckConv(Geometry(1, 12, 12, 24, 24, 3, 1, 0, 24));
  CheckConv(Geometry(1, 12, 12, 24, 24, 3, 1, 2, 24, 2));
  CheckConv(Geometry(1, 12, 12, 8, 8, 9, 1, 4, 8));  // 81 taps: the generic path
  // The column layout (3x3 at stride 1 or 2): full 64-channel blocks, tails
  // of one to four groups of 16 (the last one short), and both: no padding,
  // padding on one side, images one and two pixels wide, and a dilated
  // kernel, which does not take it.
  for (int c : {24, 64, 100, 136, 191}) {
    CheckConv(Geometry(1, 5, 6, c, c, 3, 1, 0, c));
    CheckConv(Geometry(1, 7, 7, c, c, 3, 2, 0, c));
    CheckConv(Geometry(2, 1, 1, c, c, 3, 1, 1, c));
    CheckConv(Geometry(1, 2, 2, c, c, 3, 2, 1, c));
    CheckConv(Geometry(1, 9, 9, c, c, 3, 1, 2, c, 2));
    ConvGeometry one_sided = Geometry(1, 8, 8, c, c, 3, 2, 0, c);
    one_sided.pad_right = one_sided.pad_bottom = 1;
    one_sided.output_height = one_sided.output_width = 4;
    CheckConv(one_sided);
  }
  // A kernel wider than the image, only the right padding making room.
  ConvGeometry narrow = Geometry(1, 2, 2, 16, 16, 3, 2, 0, 16);
  narrow.pad_right = narrow.pad_bottom = 1;
  narrow.output_height = narrow.output_width = 1;
  CheckConv(narrow);
  ExpectEveryEpilogueForm(30);
}

// The conditions of ExactInDouble (int8_kernels.h), at their edges.
TEST(ExactInDoubleTest, HoldsUntilATieOrAnInexactOffsetIsPossible) {
  const QuantizedMultiplier odd{(1 << 30) + 1, 0};  // T = 31, no trailing zeros
  EXPECT_TRUE(ExactInDouble(odd, (int64_t{1} << 30) - 1));
  EXPECT_FALSE(ExactInDouble(odd, int64_t{1} << 30));  // acc = 2^30 is a tie
  // A power of two, 2^-6: ties at odd multiples of 2^5.
  const QuantizedMultiplier power{1 << 30, -5};
  EXPECT_TRUE(ExactInDouble(power, 31));
  EXPECT_FALSE(ExactInDouble(power, 32));
  // T = 51 is the last whose offset is exact; accumulators are int32 anyway.
  EXPECT_TRUE(ExactInDouble({(1 << 30) + 1, -20}, int64_t{1} << 40));
  EXPECT_FALSE(ExactInDouble({(1 << 30) + 1, -21}, 1));
  EXPECT_FALSE(ExactInDouble({(1 << 30) + 1, 1}, 1));  // a left shift
}

// FloatScaleFor checks its scale only at the reference's steps; here every
// accumulator of the bound is tried, for multipliers over the range of real
// layers', output ranges with and without a fused ReLU, and bounds up to 2^20.
TEST(FloatScaleForTest, AScaleItGivesMatchesTheReferenceForEveryAccumulator) {
  SplitMix64 rng(11);
  int held = 0, refused = 0;
  for (int i = 0; i < 60; ++i) {
    const QuantizedMultiplier m = *QuantizeMultiplier(
        std::ldexp(1.0 + rng.UniformDouble(), -2 - static_cast<int>(rng.Below(12))));
    reference::Int8Output output;
    output.zero_point = static_cast<int32_t>(rng.Below(256)) - 128;
    if (rng.Below(2) == 1) output.qmin = output.zero_point == 127 ? 126 : output.zero_point;
    const int64_t bound = 1 + static_cast<int64_t>(rng.Below(int64_t{1} << 20));
    const std::optional<float> scale = FloatScaleFor(m, bound, output);
    ++(scale.has_value() ? held : refused);
    if (!scale.has_value()) continue;
    const float offset = 0x1.8p23f + static_cast<float>(output.zero_point);
    for (int64_t acc = -bound; acc <= bound; ++acc) {
      const float r = std::fma(static_cast<float>(acc), *scale, offset);
      int32_t bits;
      std::memcpy(&bits, &r, sizeof(bits));
      const int32_t got = std::clamp(bits - 0x4B400000, output.qmin, output.qmax);
      const int32_t want = RequantizeToInt8(static_cast<int32_t>(acc), m, output.zero_point,
                                            output.qmin, output.qmax);
      ASSERT_EQ(got, want) << "acc " << acc << ", multiplier " << m.multiplier << " * 2^"
                           << m.exponent << ", scale " << *scale;
    }
  }
  // Both answers occur, so both are tested.
  EXPECT_GT(held, 10);
  EXPECT_GT(refused, 0);
}

TEST(FloatScaleForTest, RefusesWhereTheFloatFormCannotHold) {
  const QuantizedMultiplier half = *QuantizeMultiplier(0.5);
  const reference::Int8Output output;
  EXPECT_TRUE(FloatScaleFor(half, 1000, output).has_value());
  // float(acc) is not exact past 2^24.
  EXPECT_FALSE(FloatScaleFor(*QuantizeMultiplier(1e-6), (int64_t{1} << 24) + 1, output));
  // acc * m must stay below 2^22, where the FMA's result has a step of 1.
  EXPECT_FALSE(FloatScaleFor(half, int64_t{1} << 23, output));
}

// The double-precision requantization against the reference on accumulators
// near every rounding boundary of a layer-like multiplier, through a 1x1 conv
// whose single input channel is 1 and whose weights and bias set acc.
TEST_P(Int8KernelsTest, DoubleRequantizationAtRoundingBoundaries) {
  for (const double real : {0.0123456789, 0.3, 1.0 / 3.0, 0.999, 3.1e-5}) {
    const QuantizedMultiplier m = *QuantizeMultiplier(real);
    // acc near (k + 1/2) / real for output values k of both signs.
    std::vector<int32_t> accs;
    for (int k = -140; k <= 140; ++k) {
      const int32_t center = static_cast<int32_t>(std::floor((k + 0.5) / real));
      for (int d = -2; d <= 2; ++d) accs.push_back(center + d);
    }
    reference::FullyConnectedInt8Params params;
    params.batch = 1;
    params.input_features = 4;
    params.output_features = static_cast<int>(accs.size());
    params.input_zero_point = 0;
    params.multipliers.assign(accs.size(), m);
    const std::vector<int8_t> input = GemmInput(4, 0, 0);  // all zero: acc = bias
    const std::vector<int8_t> weights(accs.size() * 4, 1);
    for (bool clamps_negatives : {false, true}) {
      // qmin -128 >= zero point -128: kNegativesClamp; zero point 3: kExact.
      params.output.zero_point = clamps_negatives ? -128 : 3;
      const PackedGemmConv fc = PackFullyConnected(params, weights.data(), accs.data(), GetParam());
      ASSERT_TRUE(fc.epilogue.exact_in_double) << real;
      CheckFullyConnected(params, input, weights, accs, "real multiplier " + std::to_string(real));
      if (HasFatalFailure()) return;
    }
  }
}

// An application may run with another floating-point rounding mode; the
// double-precision requantization must round to nearest whatever it is.
TEST_P(Int8KernelsTest, IgnoresTheRoundingModeOfTheCaller) {
  for (int mode : {FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO}) {
    ASSERT_EQ(std::fesetround(mode), 0);
    CheckConv(Geometry(1, 9, 7, 96, 96, 3, 1, 1, 96));  // column layout and tail
    CheckConv(Geometry(1, 5, 6, 40, 70, 1, 1, 0, 1));
    CheckConv(Geometry(1, 7, 8, 3, 24, 3, 2, 1, 1));  // strips
    std::fesetround(FE_TONEAREST);
    if (HasFatalFailure()) return;
  }
}

TEST_P(Int8KernelsTest, FullyConnected) {
  for (int batch : {1, 2, 7}) {
    for (auto [k, o] : std::vector<std::pair<int, int>>{{1280, 10}, {1280, 1000}, {7, 33}, {64, 1}}) {
      reference::FullyConnectedInt8Params params;
      params.batch = batch;
      params.input_features = k;
      params.output_features = o;
      params.input_zero_point = Int(-128, 127);
      for (int i = 0; i < o; ++i) params.multipliers.push_back(Multiplier());
      params.output = Output();
      const std::vector<int8_t> input = GemmInput(int64_t{batch} * k);
      const std::vector<int8_t> weights = Bytes(int64_t{o} * k, -127, 127);
      CheckFullyConnected(
          params, input, weights, Bias(o),
          "batch " + std::to_string(batch) + " K " + std::to_string(k) + " O " + std::to_string(o));
      if (HasFatalFailure()) return;
    }
  }
}

// Requantization's tie rule (ties away from zero), which random multipliers
// almost never reach: multipliers 2^-k on small accumulators make exact ties
// of both signs common, with unclamped outputs, and with one channel of
// multiplier 2 besides, which puts the op in the left-shift mode.
TEST_P(Int8KernelsTest, RequantizationTiesOfBothSigns) {
  for (bool left_shift : {false, true}) {
    reference::FullyConnectedInt8Params params;
    params.batch = 7;
    params.input_features = 24;
    params.output_features = 40;
    params.input_zero_point = 0;
    for (int o = 0; o < params.output_features; ++o) {
      const bool doubled = left_shift && o == 5;
      params.multipliers.push_back(
          *QuantizeMultiplier(doubled ? 2.0 : std::ldexp(1.0, -1 - o % 4)));
    }
    params.output.zero_point = 0;  // qmin -128, qmax 127: no clamp near zero
    const std::vector<int8_t> input =
        GemmInput(int64_t{params.batch} * params.input_features, -4, 4);
    const std::vector<int8_t> weights =
        Bytes(int64_t{params.output_features} * params.input_features, -4, 4);
    const std::vector<int32_t> bias(params.output_features, 1);
    int negative_ties = 0;
    for (int b = 0; b < params.batch; ++b) {
      for (int o = 0; o < params.output_features; ++o) {
        int32_t acc = bias[o];
        for (int k = 0; k < params.input_features; ++k) {
          acc += input[b * params.input_features + k] * weights[o * params.input_features + k];
        }
        const int32_t half = 1 << (o % 4);  // 2^(k - 1) for the multiplier 2^-k
        negative_ties += acc < 0 && (-acc) % (2 * half) == half && !(left_shift && o == 5);
      }
    }
    ASSERT_GE(negative_ties, 20) << "the inputs no longer make ties";
    CheckFullyConnected(params, input, weights, bias, left_shift ? "left shift" : "exact");
    if (HasFatalFailure()) return;
  }
}

// An op where one channel's multiplier is above 1 runs in the left-shift
// mode; the other channels, with tiny multipliers, must keep accumulators far
// beyond the 2^23 that the left-shifting channel may be clamped to.
TEST_P(Int8KernelsTest, LeftShiftModeKeepsOtherChannelsLargeAccumulators) {
  reference::FullyConnectedInt8Params params;
  params.batch = 5;
  params.input_features = 24;
  params.output_features = 48;
  params.input_zero_point = Int(-128, 127);
  std::vector<int32_t> bias(params.output_features);
  for (int o = 0; o < params.output_features; ++o) {
    const bool doubled = o % 16 == 3;
    params.multipliers.push_back(
        *QuantizeMultiplier(doubled ? 2.0 : std::ldexp(1.0 + rng_.UniformDouble(), -21)));
    bias[o] = doubled ? Int(-1000, 1000) : Int(-(1 << 27), 1 << 27);  // outputs within int8
  }
  params.output = Output();
  const std::vector<int8_t> input = GemmInput(int64_t{params.batch} * params.input_features);
  const std::vector<int8_t> weights =
      Bytes(int64_t{params.output_features} * params.input_features, -127, 127);
  CheckFullyConnected(params, input, weights, bias, "");
}

TEST_P(Int8KernelsTest, Add) {
  int in_double = 0, in_int64 = 0;  // adds AddExactInDouble allows and refuses
  for (int64_t size : {1, 15, 16, 17, 1000, 1024, 3001}) {
    for (int trial = 0; trial < 4; ++trial) {
      const double a_scale = std::ldexp(1.0 + rng_.UniformDouble(), -Int(2, 9));
      // The last trial's scales a power of two apart: b's multiplier is then
      // 2^-2, whose trailing zeros rule out the double-precision form.
      const double b_scale =
          trial == 3 ? a_scale / 4 : std::ldexp(1.0 + rng_.UniformDouble(), -Int(2, 9));
      const double y_scale = std::ldexp(1.0 + rng_.UniformDouble(), -Int(2, 9));
      const double twice_max = 2 * std::max(a_scale, b_scale);
      reference::AddInt8Params params;
      params.size = size;
      params.a_zero_point = Int(-128, 127);
      params.b_zero_point = Int(-128, 127);
      params.a_multiplier = *QuantizeMultiplier(a_scale / twice_max);
      params.b_multiplier = *QuantizeMultiplier(b_scale / twice_max);
      params.output_multiplier =
          *QuantizeMultiplier(twice_max / ((1 << reference::kAddLeftShift) * y_scale));
      params.output = Output();
      ++(AddExactInDouble(params) ? in_double : in_int64);
      const std::vector<int8_t> a = Bytes(size), b = Bytes(size);
      std::vector<int8_t> expected(size), actual(size);
      reference::AddInt8(params, a.data(), b.data(), expected.data());
      const PackedAdd add = PackAdd(params, GetParam());
      RunInPieces(ElementUnits(size), [&](int64_t begin, int64_t end) {
        RunAdd(add, a.data(), b.data(), actual.data(), begin, end);
      });
      ASSERT_EQ(actual, expected) << "size " << size << ", trial " << trial;
    }
  }
  EXPECT_GT(in_double, 0);
  EXPECT_GT(in_int64, 0);
}

TEST_P(Int8KernelsTest, Mean) {
  for (auto [pixels, channels] : std::vector<std::pair<int, int>>{{49, 1280}, {1, 17}, {4, 33}, {100, 8}}) {
    reference::MeanInt8Params params;
    params.batch = 3;
    params.height = 1;
    params.width = pixels;
    params.channels = channels;
    params.input_zero_point = Int(-128, 127);
    params.multiplier = *QuantizeMultiplier(std::ldexp(1.0 + rng_.UniformDouble(), Int(-8, 6)) /
                                            pixels);
    params.output = Output();
    const std::vector<int8_t> input = Bytes(int64_t{params.batch} * pixels * channels);
    std::vector<int8_t> expected(int64_t{params.batch} * channels), actual(expected.size());
    reference::MeanInt8(params, input.data(), expected.data());
    RunInPieces(params.batch, [&](int64_t begin, int64_t end) {
      RunMean(GetParam(), params, input.data(), actual.data(), begin, end);
    });
    ASSERT_EQ(actual, expected) << pixels << " pixels, " << channels << " channels";
  }
}

TEST_P(Int8KernelsTest, QuantizeAndDequantize) {
  const int64_t size = 2051;
  std::vector<float> values(size);
  for (float& v : values) v = 40.0f * rng_.UniformFloat() - 20.0f;
  values[0] = NAN;
  values[1] = INFINITY;
  values[2] = -INFINITY;
  for (int trial = 0; trial < 5; ++trial) {
    const float scale = std::ldexp(1.0f + rng_.UniformFloat(), -Int(1, 8));
    // Every fourth value at or a float step beside a rounding tie, x / scale
    // = k + 1/2, where a product off by one step would round the other way.
    for (int64_t i = 3; i < size; i += 4) {
      const float tie = (static_cast<float>(Int(-300, 300)) + 0.5f) * scale;
      values[i] = std::nextafter(tie, Int(0, 2) == 0 ? -INFINITY : Int(0, 1) ? INFINITY : tie);
    }
    const int32_t zero_point = Int(-128, 127);
    std::vector<int8_t> expected(size), actual(size);
    reference::QuantizeToInt8(size, scale, zero_point, values.data(), expected.data());
    RunInPieces(ElementUnits(size), [&](int64_t begin, int64_t end) {
      RunQuantize(GetParam(), size, scale, zero_point, values.data(), actual.data(), begin, end);
    });
    ASSERT_EQ(actual, expected) << "scale " << scale << " zero point " << zero_point;
    std::vector<float> expected_real(size), actual_real(size);
    reference::DequantizeInt8(size, scale, zero_point, expected.data(), expected_real.data());
    RunInPieces(ElementUnits(size), [&](int64_t begin, int64_t end) {
      RunDequantize(GetParam(), size, scale, zero_point, expected.data(), actual_real.data(),
                    begin, end);
    });
    ASSERT_EQ(actual_real, expected_real);
  }
}

INSTANTIATE_TEST_SUITE_P(Levels, Int8KernelsTest,
                         ::testing::Values(Isa::kGeneric, Isa::kAvx2, Isa::kAvxVnni,
                                           Isa::kAvx512Vnni, Isa::kAvx512Amx),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(IsaName(info.param));
                         });

}  // namespace
}  // namespace qforge::kernels

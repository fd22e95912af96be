// Random int8 layers for the runtime's tests that look like trained ones: the
// output quantization fits the values the layer computes, so that most int8
// outputs land inside the clamp range. (An output on a clamp bound says little
// about the arithmetic before the clamp: with ranges drawn at random, about
// 65% of conv outputs sat on one, and a 1-LSB bound checked little.)
#ifndef QFORGE_RUNTIME_INT8_TEST_LAYERS_H_
#define QFORGE_RUNTIME_INT8_TEST_LAYERS_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/random.h"

namespace qforge::testing {

class Random {
 public:
  explicit Random(uint64_t seed) : gen_(seed) {}
  int Int(int lo, int hi) { return lo + static_cast<int>(gen_.Below(hi - lo + 1)); }
  float Float(float lo, float hi) { return lo + (hi - lo) * gen_.UniformFloat(); }
  std::vector<int8_t> Int8s(int64_t n, int lo = -128, int hi = 127) {
    std::vector<int8_t> v(n);
    for (auto& x : v) x = static_cast<int8_t>(Int(lo, hi));
    return v;
  }
  std::vector<float> Floats(int64_t n, float lo, float hi) {
    std::vector<float> v(n);
    for (auto& x : v) x = Float(lo, hi);
    return v;
  }

 private:
  SplitMix64 gen_;
};

struct OutputQuantization {
  float scale;
  int32_t zero_point;
};

// Quantization that maps the real range [lo, hi] (widened to hold 0, then by
// a random 0-25%) onto the int8 codes [qmin, qmax].
inline OutputQuantization FitOutput(Random& rng, double lo, double hi, int qmin = -128,
                                    int qmax = 127) {
  lo = std::min(lo, 0.0);
  hi = std::max({hi, 0.0, lo + 1e-3});
  const double scale = (hi - lo) / (qmax - qmin) * rng.Float(1.0f, 1.25f);
  const long zero_point = std::clamp<long>(std::lround(qmin - lo / scale), -128, 127);
  return {static_cast<float>(scale), static_cast<int32_t>(zero_point)};
}

// The standard deviation, in accumulator units, of a sum of `terms` products
// of int8 inputs uniform in [-128, 127] (minus their zero point) and weights
// uniform in [-127, 127].
inline double ProductSd(int64_t terms, int32_t input_zero_point) {
  const double x2 = 65535.0 / 12 + (input_zero_point + 0.5) * (input_zero_point + 0.5);
  const double w2 = 127.0 * 128 / 3;
  return std::sqrt(static_cast<double>(terms) * x2 * w2);
}

// Weight scales, biases and output quantization of a random int8 product
// layer (conv or fully connected) whose real pre-activations have a standard
// deviation in [0.3, 2] and, if `positive`, a mean of about 2 of them (a layer
// before a ReLU, whose outputs are then mostly above 0).
struct ProductLayer {
  std::vector<float> weight_scales;  // one, or one per output
  std::vector<float> bias_scales;    // input_scale * weight_scales
  std::vector<int32_t> bias;         // one per output
  double real_mean, real_sd;         // of the pre-activations, for the widest weight scale
};

inline ProductLayer RandomProductLayer(Random& rng, int64_t terms, int outputs, float input_scale,
                                       int32_t input_zero_point, bool per_channel, bool positive) {
  ProductLayer l;
  const double sd = ProductSd(terms, input_zero_point);
  const double real_sd = rng.Float(0.3f, 2.0f);
  const double base = real_sd / (input_scale * sd);
  double widest = 0;
  l.weight_scales.resize(per_channel ? outputs : 1);
  for (float& ws : l.weight_scales) {
    ws = static_cast<float>(base * rng.Float(0.5f, 1.5f));
    widest = std::max(widest, ws / base);
  }
  const double shift = positive ? 2 * sd : 0;
  l.bias.resize(outputs);
  for (int32_t& b : l.bias) b = static_cast<int32_t>(shift + sd * rng.Float(-0.5f, 0.5f));
  for (float ws : l.weight_scales) l.bias_scales.push_back(input_scale * ws);
  // The bias adds a uniform spread of sd / sqrt(12).
  l.real_sd = real_sd * widest * std::sqrt(1 + 1.0 / 12);
  l.real_mean = real_sd * widest * shift / sd;
  return l;
}

// What a test's int8 outputs looked like: how many sat on a bound of their
// clamp range, and how widely the rest spread over the codes.
struct OutputStats {
  int64_t on_bound = 0, total = 0;
  double sum = 0, sum_squares = 0;

  void Add(int q, int qmin, int qmax) {
    on_bound += q == qmin || q == qmax;
    ++total;
    sum += q;
    sum_squares += static_cast<double>(q) * q;
  }
  double OnBoundShare() const { return static_cast<double>(on_bound) / total; }
  double CodeSd() const {
    const double mean = sum / total;
    return std::sqrt(std::max(0.0, sum_squares / total - mean * mean));
  }
};

}  // namespace qforge::testing

#endif  // QFORGE_RUNTIME_INT8_TEST_LAYERS_H_

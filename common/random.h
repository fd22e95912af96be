// A small counter-based random generator for reproducible training data order,
// augmentation and initialisation. The standard library's distributions are
// implementation-defined, so qforge draws its own: the same seed gives the same
// numbers with any compiler, thread count or batch position.
//
// SplitMix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number
// generators", OOPSLA 2014): a 64-bit counter passed through a strong mixer.
#ifndef QFORGE_COMMON_RANDOM_H_
#define QFORGE_COMMON_RANDOM_H_

#include <cmath>
#include <cstdint>
#include <initializer_list>

namespace qforge {

// The SplitMix64 finaliser: a bijective mix of all 64 bits.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// One seed from several keys (a run seed, an epoch, an image index, ...), so a
// stream can be derived for any position without replaying earlier ones.
inline uint64_t DeriveSeed(std::initializer_list<uint64_t> keys) {
  uint64_t h = 0x6a09e667f3bcc909ULL;
  for (uint64_t k : keys) h = Mix64(h ^ Mix64(k));
  return h;
}

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  // Moves on as n calls of Next() would.
  void Skip(uint64_t n) { state_ += n * 0x9e3779b97f4a7c15ULL; }

  // Uniform in [0, n) for n >= 1, without modulo bias (Lemire's method with
  // rejection, arXiv 1805.10941).
  uint64_t Below(uint64_t n) {
    unsigned __int128 m = static_cast<unsigned __int128>(Next()) * n;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = -n % n;
      while (low < threshold) {
        m = static_cast<unsigned __int128>(Next()) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

  // Uniform in [0, 1) with 24 random bits, exactly representable as float.
  float UniformFloat() { return static_cast<float>(Next() >> 40) * 0x1.0p-24f; }

  // Uniform in [0, 1) with 53 random bits.
  double UniformDouble() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  // Standard normal (Box-Muller; one of the pair, for simplicity).
  float Normal() {
    const double u1 = 1.0 - UniformDouble(), u2 = UniformDouble();  // u1 in (0, 1]
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) *
                              std::cos(2.0 * 3.14159265358979323846 * u2));
  }

 private:
  uint64_t state_;
};

}  // namespace qforge

#endif  // QFORGE_COMMON_RANDOM_H_

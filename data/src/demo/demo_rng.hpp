#pragma once
/// The demo generator's random numbers: SplitMix64 and integer/real draws built on it
/// by hand, so a seed gives the same corpus on every platform and standard library
/// (std::uniform_int_distribution's algorithm is implementation-defined).
#include <cstdint>
#include <vector>

namespace troupe::data::demo {

class DemoRng {
 public:
  explicit DemoRng(uint64_t seed) : state_(seed) {}

  /// A stream for one purpose (train, test, prompts, ...) of a user seed: changing
  /// one output's size never shifts another's samples.
  static DemoRng stream(uint64_t seed, uint64_t purpose) {
    DemoRng mix(seed ^ (0x9E3779B97F4A7C15ULL * (purpose + 1)));
    return DemoRng(mix.next());
  }

  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  /// Uniform in [0, n), unbiased by rejection; n > 0.
  uint64_t below(uint64_t n) {
    const uint64_t threshold = (0 - n) % n;
    for (;;) {
      const uint64_t r = next();
      if (r >= threshold) return r % n;
    }
  }

  /// Uniform integer in [lo, hi].
  int between(int lo, int hi) { return lo + static_cast<int>(below(static_cast<uint64_t>(hi - lo + 1))); }

  /// Uniform in [0, 1) with 53 random bits.
  double real() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  template <typename T>
  const T& pick(const std::vector<T>& items) { return items[below(items.size())]; }

 private:
  uint64_t state_;
};

}  // namespace troupe::data::demo

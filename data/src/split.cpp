/// Chunk boundaries and the NumPy-compatible seeded permutation.
#include <troupe/data/split.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>

#include <troupe/common/error.hpp>

namespace troupe::data {

std::vector<double> parse_data_split(const std::string& text, const std::string& flag) {
  std::vector<double> weights;
  std::stringstream in(text);
  std::string item;
  const std::string expected = " (expected three non-negative weights with a positive sum, e.g. 2,4,4)";
  while (std::getline(in, item, ',')) {
    size_t used = 0;
    double w = 0;
    try {
      w = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || !std::isfinite(w) || w < 0)
      throw Error(flag + " '" + text + "': '" + item + "' is not a non-negative number" + expected);
    weights.push_back(w);
  }
  if (weights.size() != 3) throw Error(flag + " '" + text + "': " + std::to_string(weights.size()) + " weights" + expected);
  if (weights[0] + weights[1] + weights[2] <= 0) throw Error(flag + " '" + text + "': weights sum to 0" + expected);
  return weights;
}

std::vector<int64_t> split_boundaries(int64_t n, const std::vector<double>& weights) {
  if (n < 0) throw Error("split_boundaries: negative size " + std::to_string(n));
  double sum = 0;  // summed left to right from 0, as Python's sum() does
  for (double w : weights) sum += w;
  if (weights.empty() || !(sum > 0)) throw Error("split_boundaries: weights must have a positive sum");
  std::vector<int64_t> b{0};
  for (double w : weights) {
    // std::nearbyint in the default rounding mode rounds half to even, like Python's round().
    b.push_back(b.back() + static_cast<int64_t>(std::nearbyint(w / sum * static_cast<double>(n))));
  }
  const int64_t diff = b.back() - n;
  for (size_t i = 1; i < b.size(); ++i) b[i] -= diff;
  return b;
}

namespace {

/// NumPy's random_interval: a uniform integer in [0, max] by masked rejection.
uint64_t random_interval(std::mt19937& mt, uint64_t max) {
  if (max == 0) return 0;
  uint64_t mask = max;
  for (int shift : {1, 2, 4, 8, 16, 32}) mask |= mask >> shift;
  uint64_t value;
  if (max <= 0xffffffffULL) {
    while ((value = (static_cast<uint64_t>(mt()) & mask)) > max) {}
  } else {
    while (true) {
      const uint64_t hi = mt();
      const uint64_t lo = mt();
      if ((value = ((hi << 32 | lo) & mask)) <= max) break;
    }
  }
  return value;
}

}  // namespace

std::vector<int64_t> shuffled_indices(uint32_t seed, int64_t n) {
  std::vector<int64_t> idx(static_cast<size_t>(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
  std::mt19937 mt(seed);  // init_genrand, as NumPy's legacy seeding of an integer
  for (int64_t i = n - 1; i >= 1; --i) {
    const auto j = static_cast<int64_t>(random_interval(mt, static_cast<uint64_t>(i)));
    std::swap(idx[static_cast<size_t>(i)], idx[static_cast<size_t>(j)]);
  }
  return idx;
}

std::vector<int64_t> chunk_indices(uint32_t seed, int64_t n, const std::vector<double>& weights, int chunk) {
  const auto b = split_boundaries(n, weights);
  if (chunk < 0 || chunk + 1 >= static_cast<int>(b.size())) throw Error("chunk_indices: no chunk " + std::to_string(chunk));
  const auto perm = shuffled_indices(seed, n);
  const int64_t lo = std::clamp<int64_t>(b[static_cast<size_t>(chunk)], 0, n);
  const int64_t hi = std::clamp<int64_t>(b[static_cast<size_t>(chunk) + 1], lo, n);
  return {perm.begin() + lo, perm.begin() + hi};
}

}  // namespace troupe::data

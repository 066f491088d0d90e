#pragma once
/// The 3-phase data split of DeepSpeed-Chat: contiguous chunks of a seeded permutation.
///
/// The permutation is NumPy's `np.random.RandomState(seed).shuffle(np.arange(n))`
/// (MT19937 seeded with init_genrand, Fisher-Yates from the end with masked rejection
/// sampling), which is what DeepSpeed-Chat's `get_shuffle_idx` uses: with the same
/// seed, every phase gets the same samples as it would there.
#include <cstdint>
#include <string>
#include <vector>

namespace troupe::data {

/// Parses `--data_split` ("2,4,4"): three non-negative weights with a positive sum.
/// Throws troupe::Error naming `flag` otherwise.
std::vector<double> parse_data_split(const std::string& text, const std::string& flag = "--data_split");

/// Chunk boundaries b_0..b_k for n items: weights normalised to sum 1,
/// b_i = b_(i-1) + round(w_i * n) rounding half to even, then (b_k - n) subtracted
/// from every b_i with i >= 1 so the first chunk absorbs the rounding.
/// n = 9, (2,4,4) gives 0,1,5,9; n = 37 gives 0,7,22,37.
std::vector<int64_t> split_boundaries(int64_t n, const std::vector<double>& weights);

/// 0..n-1 shuffled exactly as NumPy's legacy `RandomState(seed).shuffle` does.
std::vector<int64_t> shuffled_indices(uint32_t seed, int64_t n);

/// The items of chunk `chunk` (0-based): shuffled_indices(seed, n)[b_chunk, b_chunk+1).
std::vector<int64_t> chunk_indices(uint32_t seed, int64_t n, const std::vector<double>& weights, int chunk);

}  // namespace troupe::data

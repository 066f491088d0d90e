// Evaluation over data-parallel ranks: the ranks' shares of the eval samples, checked
// against the samples one process evaluates (the first max_eval_samples, each once).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "eval_share.hpp"

using troupe::engine::eval_share;
using troupe::engine::SupervisedTaskOptions;

TEST_CASE("eval shares cover the evaluated samples once, and every rank makes the most batches' passes", "[engine]") {
  for (int64_t samples : {0, 1, 4, 5, 7, 12}) {
    for (int64_t limit : {0, 3, 5, 100}) {
      for (int world : {1, 2, 3, 4}) {
        for (int64_t batch : {1, 2, 3}) {
          const int64_t evaluated = limit > 0 ? std::min(samples, limit) : samples;
          std::vector<int64_t> seen;
          int64_t most_batches = 0;
          std::vector<int64_t> passes;
          for (int rank = 0; rank < world; ++rank) {
            SupervisedTaskOptions options;
            options.rank = rank;
            options.world_size = world;
            options.eval_batch_size = batch;
            options.max_eval_samples = limit;
            const auto share = eval_share(samples, options);
            for (const auto& b : share.batches) {
              REQUIRE(!b.empty());
              REQUIRE(static_cast<int64_t>(b.size()) <= batch);
              seen.insert(seen.end(), b.begin(), b.end());
            }
            most_batches = std::max(most_batches, static_cast<int64_t>(share.batches.size()));
            passes.push_back(share.passes);
          }
          INFO("samples " << samples << ", limit " << limit << ", world " << world << ", batch " << batch);
          std::sort(seen.begin(), seen.end());
          std::vector<int64_t> expected(static_cast<size_t>(evaluated));
          for (int64_t i = 0; i < evaluated; ++i) expected[static_cast<size_t>(i)] = i;
          CHECK(seen == expected);  // none twice, none dropped
          for (int64_t p : passes) CHECK(p == most_batches);
        }
      }
    }
  }
}

TEST_CASE("an eval share is every world_size-th sample from the rank, in order", "[engine]") {
  SupervisedTaskOptions options;
  options.rank = 1;
  options.world_size = 2;
  options.eval_batch_size = 2;
  options.max_eval_samples = 5;
  const auto share = eval_share(16, options);
  CHECK(share.batches == std::vector<std::vector<int64_t>>{{1, 3}});
  CHECK(share.passes == 2);  // rank 0 has {0, 2}, {4}: rank 1 runs one padding pass
}

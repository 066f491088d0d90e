// distributed_indices against torch.utils.data.DistributedSampler (tests/reference/sampler_reference.py).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <troupe/common/files.hpp>
#include <troupe/data/sampler.hpp>

#include "data_fixtures.hpp"

using namespace troupe;
using namespace troupe::data;

TEST_CASE("sampler: each rank's indices match PyTorch's DistributedSampler", "[data]") {
  const auto ref = nlohmann::json::parse(read_file(troupe::test::data_fixture("sampler_reference.json")));
  for (const auto& c : ref.at("cases")) {
    SamplerOptions o;
    o.shuffle = c.at("shuffle");
    o.seed = c.at("seed");
    o.epoch = c.at("epoch");
    o.rank = c.at("rank");
    o.world_size = c.at("world_size");
    o.drop_last = c.at("drop_last");
    const int64_t n = c.at("n");
    INFO("n " << n << " world " << o.world_size << " rank " << o.rank << " seed " << o.seed << " epoch " << o.epoch
              << " shuffle " << o.shuffle << " drop_last " << o.drop_last);
    CHECK(distributed_indices(n, o) == c.at("indices").get<std::vector<int64_t>>());
  }
}

TEST_CASE("sampler: batches cut the rank's indices in order", "[data]") {
  SamplerOptions o;
  o.shuffle = false;
  auto batches = distributed_batches(7, 3, o);
  CHECK(batches == std::vector<std::vector<int64_t>>{{0, 1, 2}, {3, 4, 5}, {6}});
  o.rank = 2;
  CHECK_THROWS_WITH(distributed_batches(7, 3, o), Catch::Contains("rank 2 outside world size 1"));
}

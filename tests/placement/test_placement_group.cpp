#include <catch2/catch.hpp>

#include <map>
#include <set>

#include <troupe/common/error.hpp>
#include "bytes.hpp"
#include <troupe/placement/placement_group.hpp>

using namespace troupe::placement;

namespace {

NodeResources gpu_node(const std::string& name, int gpus, int cpus = 16, int64_t memory = 64 * kGiB) {
  NodeResources node{name, cpus, memory, memory, {}};
  for (int i = 0; i < gpus; ++i) node.gpus.push_back({i, 80 * kGiB, 80 * kGiB});
  return node;
}

PlacementGroupSpec gpus(const std::string& name, Strategy strategy, int count) {
  return {name, strategy, std::vector<Bundle>(static_cast<size_t>(count), Bundle{1, 0, 1})};
}

std::vector<std::string> nodes_of(const PlacementGroup& group) {
  std::vector<std::string> out;
  for (const auto& p : group.placements) out.push_back(p.node);
  return out;
}

}  // namespace

TEST_CASE("PACK keeps a group on one node when it fits, and spills when it must", "[placement][group]") {
  ResourcePool pool(ClusterResources({gpu_node("n0", 4), gpu_node("n1", 4)}));
  const auto group = pool.reserve(gpus("a", Strategy::Pack, 3));
  CHECK(nodes_of(group) == std::vector<std::string>{"n0", "n0", "n0"});
  CHECK(group.placements[0].gpu_indices == std::vector<int>{0});
  CHECK(group.placements[2].gpu_indices == std::vector<int>{2});
  CHECK(pool.nodes()[0].free_gpus() == 1);
  // 3 more: n0 has 1 left, n1 has 4: no single node holds 3 -> fill n1 (roomiest) then n0.
  const auto spill = pool.reserve(gpus("b", Strategy::Pack, 5));
  CHECK(spill.node_count() == 2);
  CHECK(pool.nodes()[0].free_gpus() == 0);
  CHECK(pool.nodes()[1].free_gpus() == 0);
}

TEST_CASE("PACK spans as few nodes as it can: roomiest nodes first", "[placement][group]") {
  // 7 GPUs on nodes of 2, 4 and 3: first-fit in node order would use all three nodes;
  // the 4-GPU and 3-GPU nodes suffice.
  ResourcePool pool(ClusterResources({gpu_node("n0", 2), gpu_node("n1", 4), gpu_node("n2", 3)}));
  const auto group = pool.reserve(gpus("seven", Strategy::Pack, 7));
  CHECK(group.node_count() == 2);
  CHECK(pool.nodes()[0].free_gpus() == 2);
  CHECK(pool.nodes()[1].free_gpus() == 0);
  CHECK(pool.nodes()[2].free_gpus() == 0);
}

TEST_CASE("SPREAD uses distinct nodes evenly and shares them when it must", "[placement][group]") {
  ResourcePool pool(ClusterResources({gpu_node("n0", 4), gpu_node("n1", 4), gpu_node("n2", 4)}));
  const auto group = pool.reserve(gpus("s", Strategy::Spread, 3));
  const auto used = nodes_of(group);
  CHECK(std::set<std::string>(used.begin(), used.end()).size() == 3);
  const auto more = pool.reserve(gpus("t", Strategy::Spread, 5));
  std::map<std::string, int> per_node;
  for (const auto& n : nodes_of(more)) ++per_node[n];
  CHECK(per_node.size() == 3);
  for (const auto& [node, count] : per_node) CHECK(count <= 2);
}

TEST_CASE("STRICT_PACK needs one node for the whole group", "[placement][group]") {
  ResourcePool pool(ClusterResources({gpu_node("n0", 2), gpu_node("n1", 4)}));
  const auto group = pool.reserve(gpus("sp", Strategy::StrictPack, 3));
  CHECK(nodes_of(group) == std::vector<std::string>{"n1", "n1", "n1"});
  try {
    pool.reserve(gpus("critic+reward", Strategy::StrictPack, 3));
    FAIL("expected an error");
  } catch (const troupe::Error& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Contains("placement group \"critic+reward\" (STRICT_PACK, 3 bundles)"));
    CHECK_THAT(what, Catch::Contains("n0 short 1 gpu (2 free)"));
    CHECK_THAT(what, Catch::Contains("n1 short 2 gpu (1 free)"));
  }
  // The failed group reserved nothing.
  CHECK(pool.nodes()[0].free_gpus() == 2);
  CHECK(pool.nodes()[1].free_gpus() == 1);
}

TEST_CASE("STRICT_SPREAD needs a distinct node per bundle and matches heterogeneous nodes", "[placement][group]") {
  // Bundle 0 fits anywhere, bundle 1 only on the big node: greedy in order would put
  // bundle 0 on the big node and fail; a matching does not.
  ResourcePool pool(ClusterResources({gpu_node("big", 4), gpu_node("small", 1)}));
  PlacementGroupSpec spec{"ss", Strategy::StrictSpread, {Bundle{1, 0, 1}, Bundle{1, 0, 3}}};
  const auto group = pool.reserve(spec);
  CHECK(nodes_of(group) == std::vector<std::string>{"small", "big"});
  CHECK(group.placements[1].gpu_indices == std::vector<int>{0, 1, 2});
  CHECK_THROWS_WITH(pool.reserve(gpus("three", Strategy::StrictSpread, 3)),
                    Catch::Contains("needs 3 distinct nodes, the cluster has 2"));
  CHECK_THROWS_WITH(pool.reserve(gpus("two", Strategy::StrictSpread, 2)),
                    Catch::Contains("no assignment of the bundles to distinct nodes") && Catch::Contains("small short 1 gpu (0 free)"));
}

TEST_CASE("memory and CPU bundles, release, and invalid bundles", "[placement][group]") {
  ResourcePool pool(ClusterResources({NodeResources{"cpu0", 8, 16 * kGiB, 12 * kGiB, {}}}));
  PlacementGroupSpec spec{"actor", Strategy::Pack, std::vector<Bundle>(2, Bundle{2, 5 * kGiB, 0})};
  const auto group = pool.reserve(spec);
  CHECK(pool.nodes()[0].cpu_threads == 4);
  CHECK(pool.nodes()[0].memory_bytes == 2 * kGiB);
  CHECK_THROWS_WITH(pool.reserve(spec), Catch::Contains("bundle 0 {cpu 2, memory 5.0 GiB} fits on no node") &&
                                            Catch::Contains("cpu0 short 3.0 GiB memory (2.0 GiB free)"));
  pool.release(group);
  CHECK(pool.nodes()[0].cpu_threads == 8);
  CHECK(pool.nodes()[0].memory_bytes == 12 * kGiB);
  CHECK_THROWS_WITH(pool.reserve({"empty", Strategy::Pack, {Bundle{}}}), Catch::Contains("bundle 0 asks for no resources"));
  CHECK_THROWS_WITH(pool.reserve({"none", Strategy::Pack, {}}), Catch::Contains("has no bundles"));
  CHECK_THROWS_WITH(parse_strategy("PACKED", "t.json: strategy"), Catch::Contains("t.json: strategy: unknown strategy \"PACKED\""));
  CHECK(parse_strategy("STRICT_SPREAD", "x") == Strategy::StrictSpread);
}

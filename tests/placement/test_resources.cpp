#include <catch2/catch.hpp>

#include <troupe/common/error.hpp>
#include "bytes.hpp"
#include <troupe/placement/resources.hpp>

using namespace troupe::placement;

TEST_CASE("sizes parse with binary and decimal units", "[placement][resources]") {
  CHECK(parse_bytes(1234, "x") == 1234);
  CHECK(parse_bytes("16GiB", "x") == 16LL * 1024 * 1024 * 1024);
  CHECK(parse_bytes("80 GB", "x") == 80'000'000'000LL);
  CHECK(parse_bytes("1.5 MiB", "x") == 1572864);
  CHECK(parse_bytes("512", "x") == 512);
  CHECK_THROWS_WITH(parse_bytes("12 parsecs", "c.json: nodes[0].memory"),
                    Catch::Contains("c.json: nodes[0].memory") && Catch::Contains("unknown unit"));
  CHECK_THROWS_WITH(parse_bytes(-1, "m"), Catch::Contains("negative"));
  CHECK(format_bytes(16LL * kGiB) == "16.0 GiB");
  CHECK(format_bytes(1536 * kKiB) == "1.5 MiB");
  CHECK(format_bytes(12) == "12 B");
}

TEST_CASE("/proc/meminfo and cgroup limits parse", "[placement][resources]") {
  const auto info = parse_meminfo("MemTotal:       16384000 kB\nMemFree:  100 kB\nMemAvailable:    8192000 kB\n", "meminfo");
  CHECK(info.total == 16384000LL * 1024);
  CHECK(info.available == 8192000LL * 1024);
  // Old kernels without MemAvailable fall back to MemFree.
  CHECK(parse_meminfo("MemTotal: 2048 kB\nMemFree: 1024 kB\n", "m").available == 1024 * 1024);
  CHECK_THROWS_WITH(parse_meminfo("nothing here", "/proc/meminfo"), Catch::Contains("/proc/meminfo: no MemTotal"));
  CHECK(parse_cgroup_limit("max\n") == std::nullopt);
  CHECK(parse_cgroup_limit("9223372036854771712\n") == std::nullopt);  // v1 "unlimited"
  CHECK(parse_cgroup_limit("4294967296\n") == 4294967296LL);
}

TEST_CASE("this machine reports threads and memory", "[placement][resources]") {
  const auto node = detect_local_node("here");
  CHECK(node.name == "here");
  CHECK(node.cpu_threads >= 1);
  CHECK(node.memory_total > 0);
  CHECK(node.memory_available > 0);
  CHECK(node.memory_available <= node.memory_total);
  for (const auto& gpu : node.gpus) CHECK(gpu.memory_free <= gpu.memory_total);
}

TEST_CASE("a cluster reads from JSON, with a GPU shorthand", "[placement][resources]") {
  const auto cluster = ClusterResources::from_json(nlohmann::json::parse(R"({"nodes": [
      {"name": "a", "cpu_threads": 16, "memory": "64GiB", "memory_available": "60GiB",
       "gpus": [{"memory": "80GiB", "memory_free": "70GiB"}, {"memory": "80GiB"}]},
      {"name": "b", "cpu_threads": 8, "memory": "32GiB", "gpus": {"count": 4, "memory": "40GiB"}},
      {"name": "c", "cpu_threads": 4, "memory": 1073741824}]})"), "cluster.json");
  REQUIRE(cluster.nodes().size() == 3);
  CHECK(cluster.has_gpus());
  CHECK(cluster.node("a").memory_available == 60 * kGiB);
  CHECK(cluster.node("a").gpus.at(0).memory_free == 70 * kGiB);
  CHECK(cluster.node("a").gpus.at(1).memory_free == 80 * kGiB);
  CHECK(cluster.node("b").gpus.size() == 4);
  CHECK(cluster.node("b").gpus.at(3).index == 3);
  CHECK(cluster.node("c").memory_available == kGiB);
  CHECK(cluster.node("c").gpus.empty());
  // Round trip.
  const auto again = ClusterResources::from_json(cluster.to_json(), "again");
  CHECK(again.node("b").gpus.at(2).memory_total == 40 * kGiB);

  CHECK_THROWS_WITH(ClusterResources::from_json(nlohmann::json::parse(R"({"nodes": [{"name": "a", "memory": "1GiB"}]})"), "c.json"),
                    Catch::Contains("c.json: nodes[0].cpu_threads"));
  CHECK_THROWS_WITH(ClusterResources::from_json(nlohmann::json::parse(
                        R"({"nodes": [{"name": "a", "cpu_threads": 1, "memory": "1GiB", "gpu": 2}]})"), "c.json"),
                    Catch::Contains("c.json: nodes[0].gpu: unknown field"));
  CHECK_THROWS_WITH(ClusterResources::from_json(nlohmann::json::parse(
                        R"({"nodes": [{"name": "a", "cpu_threads": 1, "memory": "1GiB"}, {"name": "a", "cpu_threads": 1, "memory": "1GiB"}]})"),
                        "c.json"),
                    Catch::Contains("appears twice"));
}

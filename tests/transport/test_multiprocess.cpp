// Transfers and collectives between real processes (tests/transport/transport_peer.cpp).
#include <catch2/catch.hpp>

#include <troupe/transport/c10d_communicator.hpp>
#include <troupe/transport/shm_communicator.hpp>
#include <troupe/transport/tensor_store.hpp>
#include <troupe/transport/ucx_channel.hpp>
#include <troupe/transport/ucx_communicator.hpp>

#include "child_process.hpp"
#include "collective_checks.hpp"
#include "transport_fixtures.hpp"

using namespace troupe::transport;
using troupe::test::ChildProcess;

TEST_CASE("pull a batch of every dtype from another process", "[transport][multiprocess]") {
  auto dir = troupe::test::transport_scratch("mp_pull");
  ChildProcess peer({TROUPE_TRANSPORT_PEER, "serve", dir.string()});
  auto producer = troupe::test::wait_for_bytes(dir / "peer0.addr", std::chrono::seconds(30));
  TensorStore consumer(std::make_shared<UcxWorker>());
  PullOptions options;
  options.timeout = std::chrono::seconds(30);
  auto batch = consumer.pull(producer, 1, options);
  REQUIRE(troupe::test::batch_difference(troupe::test::all_dtypes_batch(11), batch).empty());
  REQUIRE_THROWS_WITH(consumer.pull(producer, 2, options), Catch::Contains("ticket 2 is not held here"));
  troupe::test::write_bytes(dir / "stop", {});
  REQUIRE(peer.wait() == 0);
}

TEST_CASE("a killed producer is reported, not waited on forever", "[transport][multiprocess][errors]") {
  auto dir = troupe::test::transport_scratch("mp_killed");
  ChildProcess peer({TROUPE_TRANSPORT_PEER, "serve", dir.string()});
  auto producer = troupe::test::wait_for_bytes(dir / "peer0.addr", std::chrono::seconds(30));
  TensorStore consumer(std::make_shared<UcxWorker>());
  REQUIRE(consumer.pull(producer, 1).size() == 12);  // alive: served
  peer.kill();
  PullOptions options;
  options.timeout = std::chrono::seconds(3);
  auto start = std::chrono::steady_clock::now();
  REQUIRE_THROWS_WITH(consumer.pull(producer, 1, options),
                      Catch::Contains("ticket 1") && (Catch::Contains("gone") || Catch::Contains("timed out") || Catch::Contains("unreachable") ||
                                                      Catch::Contains("failed")));
  REQUIRE(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
}

TEST_CASE("channel round trip through another process", "[transport][multiprocess]") {
  auto dir = troupe::test::transport_scratch("mp_echo");
  auto worker = std::make_shared<UcxWorker>();
  troupe::test::write_bytes(dir / "parent.addr", worker->address());
  ChildProcess peer({TROUPE_TRANSPORT_PEER, "echo", dir.string(), "3"});
  auto child = troupe::test::wait_for_bytes(dir / "peer0.addr", std::chrono::seconds(30));
  TransferOptions options;
  options.timeout = std::chrono::seconds(30);
  UcxChannel out(worker, child, 1, options);
  UcxChannel in(worker, child, 2, options);

  auto dtypes = troupe::test::all_dtypes_batch(12);
  auto base = at::arange(30, at::kLong).view({5, 6});  // (5, 6)
  TensorBatch strided{{"t", base.t()}, {"every_other", base.index({at::indexing::Slice(0, 5, 2)})}};
  auto medium = TensorBatch{{"m", at::randn({1 << 20})}};  // (1M) float32: rendezvous-sized
  for (const auto* batch : {&dtypes, &strided, &medium}) {
    out.send(*batch);
    auto back = in.receive();
    REQUIRE(troupe::test::batch_difference(*batch, back).empty());
  }
  troupe::test::write_bytes(dir / "stop", {});
  REQUIRE(peer.wait() == 0);
}

namespace {

/// Rank 0 here, ranks 1 and 2 peer processes (`mode` of transport_peer), meeting through
/// a FileStore; every rank runs the checks.
void check_collectives_on_processes(troupe::test::CollectiveBackend backend, const std::string& mode,
                                    const std::string& scratch) {
  auto dir = troupe::test::transport_scratch(scratch);
  const int W = 3;
  std::vector<std::unique_ptr<ChildProcess>> peers;
  for (int r = 1; r < W; ++r) {
    peers.push_back(std::make_unique<ChildProcess>(
        std::vector<std::string>{TROUPE_TRANSPORT_PEER, mode, dir.string(), std::to_string(r), std::to_string(W)}));
  }
  auto store = make_file_store((dir / "store").string(), W);
  auto comm = troupe::test::make_test_communicator(backend, store, 0, W, "multiprocess", std::chrono::seconds(60));
  REQUIRE(troupe::test::run_collective_checks(*comm).empty());
  for (auto& peer : peers) REQUIRE(peer->wait() == 0);
}

}  // namespace

TEST_CASE("collectives across three processes equal the single-process reference", "[transport][multiprocess][collectives]") {
  check_collectives_on_processes(troupe::test::CollectiveBackend::kUcxRing, "collective", "mp_collectives");
}

TEST_CASE("c10d Gloo collectives across three processes equal the single-process reference",
          "[transport][multiprocess][collectives][gloo]") {
  if (!gloo_available()) {
    WARN("this build has no c10d Gloo");
    return;
  }
  check_collectives_on_processes(troupe::test::CollectiveBackend::kGloo, "gloo_collective", "mp_gloo_collectives");
}

TEST_CASE("shared-memory collectives across three processes equal the single-process reference",
          "[transport][multiprocess][collectives][shm]") {
  check_collectives_on_processes(troupe::test::CollectiveBackend::kShm, "shm_collective", "mp_shm_collectives");
}

TEST_CASE("a shared-memory peer process that exits is reported, not waited on for the whole timeout",
          "[transport][multiprocess][shm][errors]") {
  auto dir = troupe::test::transport_scratch("mp_shm_exit");
  ChildProcess peer({TROUPE_TRANSPORT_PEER, "shm_exit", dir.string(), "1", "2"});
  auto store = make_file_store((dir / "store").string(), 2);
  SharedMemoryCommunicator comm(store, 0, 2, "exits", std::chrono::seconds(60));
  auto x = at::ones({4});
  comm.all_reduce(x, ReduceOp::kSum);
  CHECK(x.equal(at::full({4}, 2.0)));
  REQUIRE(peer.wait() == 0);
  const auto start = std::chrono::steady_clock::now();
  REQUIRE_THROWS_WITH(comm.all_reduce(x, ReduceOp::kSum),
                      Catch::Contains("all-reduce in group 'exits' (rank 0 of 2) (collective 2)") &&
                          Catch::Contains("ranks that did not arrive: 1 (its process") && Catch::Contains("has exited"));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  REQUIRE_THROWS_WITH(comm.barrier(), Catch::Contains("failed earlier and is unusable"));
}

// Collectives between ranks that are threads of this process: the UCX rings (one UCX
// worker each) and c10d Gloo, each against the single-process reference.
#include <catch2/catch.hpp>

#include <future>

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/cuda.h>

#include <troupe/transport/c10d_communicator.hpp>
#include <troupe/transport/ucx_communicator.hpp>

#include "collective_checks.hpp"

using namespace troupe::transport;

namespace {

/// For world sizes 1-3: every rank a thread of this process, each running the checks.
void check_collectives_on_threads(troupe::test::CollectiveBackend backend) {
  for (int W : {1, 2, 3}) {
    DYNAMIC_SECTION("world size " << W) {
      c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::HashStore>();
      std::vector<std::future<std::string>> ranks;
      for (int r = 0; r < W; ++r) {
        ranks.push_back(std::async(std::launch::async, [backend, store, r, W] {
          auto comm = troupe::test::make_test_communicator(backend, store, r, W, "threads" + std::to_string(W),
                                                           std::chrono::seconds(30));
          return troupe::test::run_collective_checks(*comm);
        }));
      }
      for (auto& rank : ranks) REQUIRE(rank.get().empty());
    }
  }
}

}  // namespace

TEST_CASE("ring collectives equal the single-process reference", "[transport][collectives]") {
  check_collectives_on_threads(troupe::test::CollectiveBackend::kUcxRing);
}

TEST_CASE("c10d Gloo collectives equal the single-process reference", "[transport][collectives][gloo]") {
  if (!gloo_available()) {
    WARN("this build has no c10d Gloo");
    return;
  }
  check_collectives_on_threads(troupe::test::CollectiveBackend::kGloo);
}

TEST_CASE("gloo communicator arguments are checked", "[transport][collectives][gloo]") {
  if (!gloo_available()) {
    WARN("this build has no c10d Gloo");
    return;
  }
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::HashStore>();
  REQUIRE_THROWS_WITH(make_gloo_communicator(store, 2, 2, "bad"), Catch::Contains("rank 2 of size 2 is out of range"));
  auto single = make_gloo_communicator(store, 0, 1, "single");
  REQUIRE_THROWS_WITH(single->reduce_scatter(at::ones({2, 3}), ReduceOp::kSum), Catch::Contains("leading dimension of 1"));
  auto y = at::ones({2});
  REQUIRE_THROWS_WITH(single->broadcast(y, 1), Catch::Contains("root 1"));
  auto x = at::ones({3}, at::kInt);
  REQUIRE_THROWS_WITH(single->all_reduce(x, ReduceOp::kAvg), Catch::Contains("avg needs a floating dtype"));
}

TEST_CASE("a gloo collective that a rank never reaches fails naming that rank", "[transport][collectives][gloo]") {
  if (!gloo_available()) {
    WARN("this build has no c10d Gloo");
    return;
  }
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::HashStore>();
  std::promise<void> done;
  // Rank 1 joins the group, takes part in one all-reduce, then never calls the next.
  auto absent = std::async(std::launch::async, [&] {
    auto comm = make_gloo_communicator(store, 1, 2, "hang", std::chrono::milliseconds(1500));
    auto x = at::ones({4});
    comm->all_reduce(x, ReduceOp::kSum);
    done.get_future().wait();
  });
  auto comm = make_gloo_communicator(store, 0, 2, "hang", std::chrono::milliseconds(1500));
  auto x = at::ones({4});
  comm->all_reduce(x, ReduceOp::kSum);
  CHECK(x.equal(at::full({4}, 2.0)));
  std::string error;
  try {
    comm->all_reduce(x, ReduceOp::kSum);
  } catch (const troupe::Error& e) {
    error = e.what();
  }
  done.set_value();
  absent.get();
  INFO(error);
  CHECK_THAT(error, Catch::Contains("all-reduce in group 'hang' (rank 0 of 2) (collective 2)"));
  CHECK_THAT(error, Catch::Contains("ranks that did not arrive: 1 (no word from it)"));
}

TEST_CASE("communicator arguments are checked", "[transport][collectives]") {
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::HashStore>();
  auto worker = std::make_shared<UcxWorker>();
  REQUIRE_THROWS_WITH(UcxCommunicator(worker, store, 2, 2), Catch::Contains("rank 2 of size 2 is out of range"));
  UcxCommunicator single(worker, store, 0, 1);
  REQUIRE_THROWS_WITH(single.reduce_scatter(at::ones({2, 3}), ReduceOp::kSum),
                      Catch::Contains("leading dimension of 1"));
  auto y = at::ones({2});
  REQUIRE_THROWS_WITH(single.broadcast(y, 1), Catch::Contains("root 1"));
  auto x = at::ones({3}, at::kInt);
  REQUIRE_THROWS_WITH(single.all_reduce(x, ReduceOp::kAvg), Catch::Contains("avg needs a floating dtype"));
}

TEST_CASE("CUDA: c10d NCCL collectives equal the single-process reference", "[gpu][transport][collectives][nccl]") {
  if (!nccl_available() || !torch::cuda::is_available()) {
    WARN("no CUDA device or no NCCL in this build: skipped");
    return;
  }
  // One rank: the machines this runs on have one GPU, and NCCL refuses two ranks on one
  // device. What it checks: the tensors' trip to the device and back, every dtype and
  // op through ProcessGroupNCCL, and the shapes of all-gather and reduce-scatter.
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::HashStore>();
  auto comm = make_nccl_communicator(store, 0, 1, 0, "cuda");
  REQUIRE(troupe::test::run_collective_checks(*comm).empty());
  auto on_device = at::arange(6, at::TensorOptions().dtype(at::kFloat).device(at::kCUDA)).view({2, 3});
  comm->all_reduce(on_device, ReduceOp::kSum);
  CHECK(on_device.device().is_cuda());
  CHECK(at::equal(on_device.cpu(), at::arange(6, at::kFloat).view({2, 3})));
  CHECK_THROWS_WITH(make_nccl_communicator(store, 0, 1, 99, "bad device"), Catch::Contains("CUDA device 99 does not exist"));
}

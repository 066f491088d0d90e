// Shared-memory collectives between ranks that are threads of this process, against the
// single-process reference: every collective and dtype for 1-4 ranks, messages many
// times a slot (pieces), uneven all-to-all parts, and the errors (other hosts, a rank
// that never arrives). tests/transport/test_multiprocess.cpp runs them across processes.
#include <catch2/catch.hpp>

#include <filesystem>
#include <functional>
#include <future>

#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include <troupe/transport/shm_communicator.hpp>

#include "collective_checks.hpp"

using namespace troupe::transport;

namespace {

constexpr int64_t kSmallSlot = 4096;  // bytes: every message below is many slots

/// Runs `body(comm)` on `W` rank threads over one store; returns each rank's failures.
std::vector<std::string> on_threads(int W, const std::string& group, int64_t slot_bytes,
                                    const std::function<std::string(Communicator&)>& body) {
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::HashStore>();
  std::vector<std::future<std::string>> ranks;
  for (int r = 0; r < W; ++r)
    ranks.push_back(std::async(std::launch::async, [&, r] {
      SharedMemoryCommunicator comm(store, r, W, group, std::chrono::seconds(30), slot_bytes);
      return body(comm);
    }));
  std::vector<std::string> failures;
  for (auto& rank : ranks) failures.push_back(rank.get());
  return failures;
}

/// Rank i's input of `n` elements for collective `seed`: integers in [-11, 11], exact in every dtype.
at::Tensor input_of(int rank, int64_t n, at::ScalarType type, int seed) {
  return troupe::test::collective_input(rank + 31 * seed, n, type);
}

/// Every collective of `n` elements in `type`, each against reference_reduce.
std::string check_every_collective(Communicator& comm, int64_t n, at::ScalarType type) {
  const int W = comm.size(), r = comm.rank();
  std::string failures;
  auto expect = [&](bool ok, const std::string& what) {
    if (!ok) failures += "rank " + std::to_string(r) + ": " + what + " " + c10::toString(type) + " n=" + std::to_string(n) + "; ";
  };
  std::vector<ReduceOp> ops{ReduceOp::kSum, ReduceOp::kMax};
  if (at::isFloatingType(type)) ops.push_back(ReduceOp::kAvg);
  for (auto op : ops) {
    std::vector<at::Tensor> inputs;  // rank i's (n)
    for (int i = 0; i < W; ++i) inputs.push_back(input_of(i, n, type, 1));
    const auto expected = reference_reduce(inputs, op);
    auto mine = inputs[r].clone();
    comm.all_reduce(mine, op);
    expect(troupe::test::bit_equal(mine, expected), "all_reduce " + reduce_op_name(op));
    auto reduced = inputs[r].clone();
    comm.reduce(reduced, op, 0);
    if (r == 0) expect(troupe::test::bit_equal(reduced, expected), "reduce " + reduce_op_name(op));

    std::vector<at::Tensor> column;  // row r of every rank's (W, n)
    at::Tensor stacked;              // this rank's (W, n)
    for (int i = 0; i < W; ++i) {
      std::vector<at::Tensor> rows;
      for (int j = 0; j < W; ++j) rows.push_back(input_of(i * W + j, n, type, 2));
      if (i == r) stacked = at::stack(rows);
      column.push_back(rows[static_cast<size_t>(r)]);
    }
    expect(troupe::test::bit_equal(comm.reduce_scatter(stacked, op), reference_reduce(column, op)),
           "reduce_scatter " + reduce_op_name(op));
  }
  std::vector<at::Tensor> inputs;
  for (int i = 0; i < W; ++i) inputs.push_back(input_of(i, n, type, 3).view({n, 1}));  // (n, 1)
  expect(troupe::test::bit_equal(comm.all_gather(inputs[r]), at::stack(inputs)), "all_gather");
  const int root = W / 2;
  auto received = r == root ? input_of(root, n, type, 4) : at::zeros({n}, type);
  comm.broadcast(received, root);
  expect(troupe::test::bit_equal(received, input_of(root, n, type, 4)), "broadcast");
  comm.barrier();
  return failures;
}

/// all_to_all where rank s sends `count(s, d)` elements valued 1e6 s + 1000 d + i to d.
std::string check_all_to_all(Communicator& comm, const std::function<int64_t(int, int)>& count) {
  const int W = comm.size(), r = comm.rank();
  std::vector<int64_t> send_counts, receive_counts;
  std::vector<at::Tensor> send, expected;
  auto part = [](int s, int d, int64_t n) { return at::arange(n, at::kLong) + 1000000 * s + 1000 * d; };  // (n)
  for (int d = 0; d < W; ++d) {
    send_counts.push_back(count(r, d));
    send.push_back(part(r, d, count(r, d)));
  }
  for (int s = 0; s < W; ++s) {
    receive_counts.push_back(count(s, r));
    expected.push_back(part(s, r, count(s, r)));
  }
  auto got = comm.all_to_all(at::cat(send), send_counts, receive_counts);
  return troupe::test::bit_equal(got, at::cat(expected)) ? "" : "rank " + std::to_string(r) + ": all_to_all differs; ";
}

std::string joined(const std::vector<std::string>& failures) {
  std::string all;
  for (const auto& f : failures) all += f;
  return all;
}

}  // namespace

TEST_CASE("shared-memory collectives equal the single-process reference", "[transport][collectives][shm]") {
  for (int W : {1, 2, 3, 4}) {
    DYNAMIC_SECTION("world size " << W) {
      auto failures = on_threads(W, "threads" + std::to_string(W), SharedMemoryCommunicator::kDefaultSlotBytes,
                                 [](Communicator& comm) { return troupe::test::run_collective_checks(comm); });
      CHECK(joined(failures).empty());
    }
  }
}

TEST_CASE("shared-memory collectives of every dtype go through a small slot in pieces", "[transport][collectives][shm]") {
  for (int W : {1, 2, 3, 4}) {
    DYNAMIC_SECTION("world size " << W) {
      auto failures = on_threads(W, "pieces", kSmallSlot, [](Communicator& comm) {
        std::string failures;
        for (auto type : {at::kFloat, at::kDouble, at::kBFloat16, at::kHalf, at::kLong, at::kInt})
          for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{5000}})  // 5000: several slots in every dtype
            failures += check_every_collective(comm, n, type);
        return failures;
      });
      CHECK(joined(failures).empty());
    }
  }
}

TEST_CASE("shared-memory all-to-all sends uneven parts, empty ones and ones larger than a slot",
          "[transport][collectives][shm]") {
  for (int W : {1, 2, 3, 4}) {
    DYNAMIC_SECTION("world size " << W) {
      auto failures = on_threads(W, "all_to_all", kSmallSlot, [](Communicator& comm) {
        std::string failures;
        failures += check_all_to_all(comm, [](int s, int d) { return static_cast<int64_t>((s + d) % 3); });
        failures += check_all_to_all(comm, [](int s, int d) { return s == 0 ? int64_t{3000} + d : int64_t{d == 1}; });
        failures += check_all_to_all(comm, [](int, int) { return int64_t{0}; });
        // Packed into and unpacked out of the slots in pieces of a box (a slot's 1/W).
        failures += troupe::test::check_all_to_all_streams(comm, [](int s, int d) { return int64_t{1500} * (s + 1) + d; });
        failures += troupe::test::check_all_to_all_streams(comm, [](int s, int d) { return static_cast<int64_t>((s + d) % 3); });
        return failures;
      });
      CHECK(joined(failures).empty());
    }
  }
}

TEST_CASE("shared-memory all-to-all counts that disagree fail on every rank", "[transport][collectives][shm][errors]") {
  auto failures = on_threads(2, "disagree", kSmallSlot, [](Communicator& comm) -> std::string {
    // Rank 0 sends 2 to rank 1, which expects 3.
    std::vector<int64_t> send{1, comm.rank() == 0 ? 2 : 1}, receive{comm.rank() == 1 ? 3 : 1, 1};
    const auto total = send[0] + send[1];
    try {
      comm.all_to_all(at::zeros({total}), send, receive);
    } catch (const troupe::Error& e) {
      return e.what();
    }
    return "no error";
  });
  for (const auto& f : failures) CHECK_THAT(f, Catch::Contains("rank 0 sends 2 elements to rank 1, which expects 3"));
}

TEST_CASE("shared-memory reductions of arbitrary floats are the same bits on every rank", "[transport][collectives][shm]") {
  const int W = 3;
  const int64_t n = 10000;
  std::vector<at::Tensor> results(W);
  auto input = [](int rank) { return at::randn({n}, at::TensorOptions().dtype(at::kFloat)).mul_(rank + 1); };
  std::vector<at::Tensor> inputs;
  at::manual_seed(7);
  for (int r = 0; r < W; ++r) inputs.push_back(input(r));
  on_threads(W, "bits", kSmallSlot, [&](Communicator& comm) {
    auto x = inputs[static_cast<size_t>(comm.rank())].clone();
    comm.all_reduce(x, ReduceOp::kSum);
    results[static_cast<size_t>(comm.rank())] = x;
    return std::string();
  });
  // Ranks 0, 1, 2 in order, as the reduction runs.
  auto expected = (inputs[0] + inputs[1]) + inputs[2];
  for (const auto& result : results) CHECK(troupe::test::bit_equal(result, expected));
}

TEST_CASE("a shared-memory segment leaves nothing in /dev/shm once every rank has mapped it", "[transport][shm]") {
  const std::string group = "unlinked_after_join";
  auto leftovers = [&] {
    int found = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/dev/shm"))
      if (entry.path().filename().string().find("troupe-shm-" + group) == 0) ++found;
    return found;
  };
  auto failures = on_threads(2, group, kSmallSlot, [&](Communicator& comm) {
    comm.barrier();  // both ranks are past the rendezvous
    const int found = leftovers();
    comm.barrier();
    return found == 0 ? std::string() : "rank " + std::to_string(comm.rank()) + " saw the segment in /dev/shm; ";
  });
  CHECK(joined(failures).empty());
}

TEST_CASE("shared-memory arguments and other hosts are errors", "[transport][collectives][shm][errors]") {
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::HashStore>();
  REQUIRE_THROWS_WITH(SharedMemoryCommunicator(store, 2, 2, "bad"), Catch::Contains("rank 2 of size 2 is out of range"));
  REQUIRE_THROWS_WITH(SharedMemoryCommunicator(store, 0, 1, "tiny", std::chrono::seconds(1), 100),
                      Catch::Contains("a slot of 100 bytes"));
  SharedMemoryCommunicator single(store, 0, 1, "single");
  REQUIRE_THROWS_WITH(single.reduce_scatter(at::ones({2, 3}), ReduceOp::kSum), Catch::Contains("leading dimension of 1"));
  auto y = at::ones({2});
  REQUIRE_THROWS_WITH(single.broadcast(y, 1), Catch::Contains("root 1"));
  auto x = at::ones({3}, at::kInt);
  REQUIRE_THROWS_WITH(single.all_reduce(x, ReduceOp::kAvg), Catch::Contains("avg needs a floating dtype"));

  // Rank 1 of group "hosts" announces another machine, as a rank there would (the keys
  // of the group's first join).
  store->add("troupe/shm/hosts/joins", 1);
  const std::string other = "elsewhere 00000000-0000-0000-0000-000000000000";
  store->set("troupe/shm/hosts/0/host/1", std::vector<uint8_t>(other.begin(), other.end()));
  REQUIRE_THROWS_WITH(SharedMemoryCommunicator(store, 0, 2, "hosts", std::chrono::seconds(5)),
                      Catch::Contains("need every rank on one machine") && Catch::Contains("host '" + this_host_id() + "': rank 0") &&
                          Catch::Contains("host '" + other + "': rank 1"));
}

TEST_CASE("ranks_share_host gives every rank the same answer", "[transport][shm]") {
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::HashStore>();
  auto other = std::async(std::launch::async, [&] { return ranks_share_host(store, 1, 2, "pair", std::chrono::seconds(10)); });
  CHECK(ranks_share_host(store, 0, 2, "pair", std::chrono::seconds(10)));
  CHECK(other.get());
  // Joined again (a restarted group): the new join's keys, so a rank elsewhere shows.
  store->add("troupe/hosts/pair/joins", 1);
  const std::string elsewhere = "elsewhere 1";
  store->set("troupe/hosts/pair/1/1", std::vector<uint8_t>(elsewhere.begin(), elsewhere.end()));
  CHECK_FALSE(ranks_share_host(store, 0, 2, "pair", std::chrono::seconds(10)));
}

TEST_CASE("a shared-memory collective that a rank never reaches fails naming that rank", "[transport][collectives][shm][errors]") {
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::HashStore>();
  std::promise<void> done;
  // Rank 1 joins the group, takes part in one all-reduce, then never calls the next.
  auto absent = std::async(std::launch::async, [&] {
    SharedMemoryCommunicator comm(store, 1, 2, "hang", std::chrono::milliseconds(1500));
    auto x = at::ones({4});
    comm.all_reduce(x, ReduceOp::kSum);
    done.get_future().wait();
  });
  SharedMemoryCommunicator comm(store, 0, 2, "hang", std::chrono::milliseconds(1500));
  auto x = at::ones({4});
  comm.all_reduce(x, ReduceOp::kSum);
  CHECK(x.equal(at::full({4}, 2.0)));
  std::string error;
  const auto start = std::chrono::steady_clock::now();
  try {
    comm.all_reduce(x, ReduceOp::kSum);
  } catch (const troupe::Error& e) {
    error = e.what();
  }
  const auto waited = std::chrono::steady_clock::now() - start;
  done.set_value();
  absent.get();
  INFO(error);
  CHECK_THAT(error, Catch::Contains("shm all-reduce in group 'hang' (rank 0 of 2) (collective 2)"));
  CHECK_THAT(error, Catch::Contains("ranks that did not arrive: 1 (last at collective 1)"));
  CHECK(waited >= std::chrono::milliseconds(1500));
  CHECK(waited < std::chrono::seconds(10));
}

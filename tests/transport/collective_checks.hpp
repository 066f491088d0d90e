#pragma once
/// The collective checks every rank runs, in the test process and in peer processes
/// alike: each result is compared with the single-process reference (reference_reduce
/// over every rank's input, which each rank can compute since inputs are deterministic).
#include <functional>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <troupe/common/error.hpp>
#include <troupe/transport/c10d_communicator.hpp>
#include <troupe/transport/communicator.hpp>
#include <troupe/transport/shm_communicator.hpp>
#include <troupe/transport/ucx_communicator.hpp>

#include "transport_fixtures.hpp"

namespace troupe::test {

/// The communicators under test: troupe's UCX ring, c10d's Gloo and troupe's shared memory.
enum class CollectiveBackend { kUcxRing, kGloo, kShm };

inline std::unique_ptr<transport::Communicator> make_test_communicator(CollectiveBackend backend,
                                                                      c10::intrusive_ptr<c10d::Store> store, int rank,
                                                                      int size, const std::string& group,
                                                                      std::chrono::milliseconds timeout) {
  if (backend == CollectiveBackend::kGloo)
    return transport::make_gloo_communicator(std::move(store), rank, size, group, timeout);
  if (backend == CollectiveBackend::kShm)
    return std::make_unique<transport::SharedMemoryCommunicator>(std::move(store), rank, size, group, timeout);
  return std::make_unique<transport::UcxCommunicator>(std::make_shared<transport::UcxWorker>(), std::move(store), rank,
                                                      size, group, timeout);
}

/// Empty when every collective matched the reference; else what differed.
/// all_to_all_streams where rank s sends `count(s, d)` doubles valued 1e6 s + 1000 d + i
/// to d: every piece asked for is packed from that formula, and every piece unpacked must
/// hold it, come right after the previous piece from its rank, and together cover it all.
inline std::string check_all_to_all_streams(transport::Communicator& comm,
                                            const std::function<std::int64_t(int, int)>& count) {
  const int W = comm.size(), r = comm.rank();
  transport::AllToAllStreams streams;
  streams.dtype = at::kDouble;
  for (int d = 0; d < W; ++d) streams.send_counts.push_back(count(r, d));
  for (int s = 0; s < W; ++s) streams.receive_counts.push_back(count(s, r));
  auto value = [](int s, int d, std::int64_t i) { return 1e6 * s + 1000.0 * d + static_cast<double>(i); };
  std::vector<std::int64_t> next(static_cast<size_t>(W), 0);  // what each rank's next piece must start at
  std::string failures;
  streams.pack = [&](int d, std::int64_t offset, std::int64_t n, void* out) {
    if (offset < 0 || offset + n > count(r, d)) failures += "pack outside the stream to " + std::to_string(d) + "; ";
    auto* values = static_cast<double*>(out);
    for (std::int64_t i = 0; i < n; ++i) values[i] = value(r, d, offset + i);
  };
  streams.unpack = [&](int s, std::int64_t offset, std::int64_t n, const void* in) {
    if (offset != next[static_cast<size_t>(s)]) failures += "a piece from " + std::to_string(s) + " out of order; ";
    next[static_cast<size_t>(s)] = offset + n;
    const auto* values = static_cast<const double*>(in);
    for (std::int64_t i = 0; i < n; ++i)
      if (values[i] != value(s, r, offset + i)) {
        failures += "element " + std::to_string(offset + i) + " from " + std::to_string(s) + " differs; ";
        break;
      }
  };
  comm.all_to_all_streams(streams);
  for (int s = 0; s < W; ++s)
    if (next[static_cast<size_t>(s)] != count(s, r)) failures += "got " + std::to_string(next[static_cast<size_t>(s)]) +
                                                                " of " + std::to_string(count(s, r)) + " from " +
                                                                std::to_string(s) + "; ";
  return failures.empty() ? "" : "rank " + std::to_string(r) + " all_to_all_streams: " + failures;
}

inline std::string run_collective_checks(transport::Communicator& comm) {
  using transport::ReduceOp;
  const int W = comm.size();
  const int r = comm.rank();
  std::string failures;
  auto expect = [&](bool ok, const std::string& what) {
    if (!ok) failures += "rank " + std::to_string(r) + ": " + what + "; ";
  };
  // Sizes below W leave some ring chunks empty; 10 does not divide evenly by 3.
  for (std::int64_t n : {std::int64_t{1}, std::int64_t{10}, std::int64_t{1000}}) {
    for (auto type : {at::kFloat, at::kDouble, at::kLong, at::kBFloat16}) {
      std::vector<at::Tensor> inputs;  // rank i's input (n)
      for (int i = 0; i < W; ++i) inputs.push_back(collective_input(i, n, type));
      for (auto op : {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kAvg}) {
        auto label = transport::reduce_op_name(op) + " " + std::string(c10::toString(type)) + " n=" + std::to_string(n);
        bool floating = at::isFloatingType(type);
        auto mine = inputs[r].clone().view({n});
        if (op == ReduceOp::kAvg && !floating) {
          try {
            comm.all_reduce(mine, op);
            expect(false, "all_reduce avg on " + label + " should throw");
          } catch (const Error&) {
          }
          continue;
        }
        comm.all_reduce(mine, op);
        expect(bit_equal(mine, transport::reference_reduce(inputs, op)), "all_reduce " + label);

        // reduce onto the last rank: only the root's result is defined.
        auto reduced = inputs[r].clone().view({n});
        comm.reduce(reduced, op, W - 1);
        if (r == W - 1) expect(bit_equal(reduced, transport::reference_reduce(inputs, op)), "reduce " + label);

        // reduce_scatter: rank i contributes (W, n) rows i*W + j.
        std::vector<at::Tensor> stacked;  // rank i's (W, n) input
        for (int i = 0; i < W; ++i) {
          std::vector<at::Tensor> rows;
          for (int j = 0; j < W; ++j) rows.push_back(collective_input(i * W + j, n, type));
          stacked.push_back(at::stack(rows));
        }
        std::vector<at::Tensor> column;  // every rank's row r
        for (int i = 0; i < W; ++i) column.push_back(stacked[i][r]);
        auto scattered = comm.reduce_scatter(stacked[r], op);  // (n)
        expect(bit_equal(scattered, transport::reference_reduce(column, op)), "reduce_scatter " + label);
      }
      auto gathered = comm.all_gather(inputs[r]);  // (W, n)
      expect(bit_equal(gathered, at::stack(inputs)), "all_gather " + std::string(c10::toString(type)));
      auto flat = at::full({W * n}, 99, type);  // (W * n)
      comm.all_gather_into(inputs[r], flat);
      expect(bit_equal(flat, at::cat(inputs)), "all_gather_into " + std::string(c10::toString(type)));
      auto strided = at::full({W * n, 2}, 99, type);  // written through a non-contiguous view (W * n)
      auto column = strided.select(1, 0);
      comm.all_gather_into(inputs[r], column);
      expect(bit_equal(column, at::cat(inputs)), "all_gather_into a strided view " + std::string(c10::toString(type)));
      // A started all-gather with another collective issued before it is waited for
      // (the c10d backends leave it running; the others finish it at once).
      auto started = comm.start_all_gather(inputs[r]);
      auto meanwhile = inputs[r].clone().view({n});
      comm.all_reduce(meanwhile, ReduceOp::kMax);
      expect(bit_equal(meanwhile, transport::reference_reduce(inputs, ReduceOp::kMax)),
             "all_reduce while an all-gather runs " + std::string(c10::toString(type)));
      expect(bit_equal(started->wait(), at::stack(inputs)), "started all_gather " + std::string(c10::toString(type)));
      try {
        started->wait();
        expect(false, "a started all_gather waited for twice should throw");
      } catch (const Error&) {
      }
    }
  }
  {
    // Dropped unwaited: it waits for itself, and the next collective finds the group in step.
    auto dropped = comm.start_all_gather(collective_input(r, 7, at::kFloat));
  }
  // Broadcast over several 4 MiB segments, from the last rank.
  auto big = collective_input(W - 1, (5 << 20) / 4 + 3, at::kFloat);  // (n) ~5 MiB
  auto received = r == W - 1 ? big.clone() : at::zeros_like(big);
  comm.broadcast(received, W - 1);
  expect(bit_equal(received, big), "broadcast");
  // A non-contiguous tensor is reduced as its values.
  auto base = collective_input(r, 12, at::kFloat).view({3, 4});
  auto transposed = base.t();  // (4, 3) non-contiguous
  comm.all_reduce(transposed, ReduceOp::kSum);
  std::vector<at::Tensor> bases;
  for (int i = 0; i < W; ++i) bases.push_back(collective_input(i, 12, at::kFloat).view({3, 4}).t());
  expect(bit_equal(transposed.contiguous(), transport::reference_reduce(bases, ReduceOp::kSum)), "non-contiguous all_reduce");
  // all_to_all with uneven parts (some empty): rank s sends (s + d) % 3 elements to
  // rank d, each valued 1000 s + 10 d + i.
  auto part = [](int s, int d) { return static_cast<std::int64_t>((s + d) % 3); };
  std::vector<std::int64_t> send_counts, receive_counts;
  std::vector<float> send_values, expected_values;
  for (int d = 0; d < W; ++d) {
    send_counts.push_back(part(r, d));
    for (std::int64_t i = 0; i < part(r, d); ++i) send_values.push_back(static_cast<float>(1000 * r + 10 * d + i));
  }
  for (int s = 0; s < W; ++s) {
    receive_counts.push_back(part(s, r));
    for (std::int64_t i = 0; i < part(s, r); ++i) expected_values.push_back(static_cast<float>(1000 * s + 10 * r + i));
  }
  auto to_tensor = [](const std::vector<float>& v) {
    return at::tensor(at::ArrayRef<float>(v.data(), v.size()), at::kFloat).clone();
  };
  auto exchanged = comm.all_to_all(to_tensor(send_values), send_counts, receive_counts);
  expect(bit_equal(exchanged, to_tensor(expected_values)), "all_to_all");
  auto into = at::full({static_cast<std::int64_t>(expected_values.size())}, -1.0f);
  comm.all_to_all_into(to_tensor(send_values), send_counts, into, receive_counts);
  expect(bit_equal(into, to_tensor(expected_values)), "all_to_all_into");
  failures += check_all_to_all_streams(comm, part);
  comm.barrier();
  return failures;
}

}  // namespace troupe::test

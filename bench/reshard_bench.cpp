/// The Hybrid Engine's ZeRO-3 -> generation reshard: ZeRO stage 3 ranks (threads of this
/// process) build the inference weights from their chunks, for tensor-parallel sizes 1
/// (every rank gathers the whole layers) and k (each rank receives exactly its Megatron
/// slice), over each of the collectives asked for (c10d Gloo over loopback TCP, troupe's
/// shared memory), side by side. Per size: seconds, bytes this rank received against the
/// least any reshard must move, and a memcpy of the same bytes on every rank at once in
/// the same run. OPT-1.3B's layer shape (hidden 2048, ffn 8192, 32 heads), with fewer
/// layers than its 24 so that every rank's whole model fits while the partition is built
/// (the reshard moves each layer alike, so time scales by layers).
///
///   troupe_bench_reshard [--ranks 4] [--layers 4] [--tp 1,2] [--collectives gloo,shm] [--reps 3] [--json FILE]
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <troupe/actors/data_parallel.hpp>
#include <troupe/common/error.hpp>
#include <troupe/engine/zero3.hpp>
#include <troupe/models/causal_lm.hpp>
#include <troupe/transport/c10d_communicator.hpp>
#include <troupe/transport/shm_communicator.hpp>

#include "bench_support.hpp"

namespace {

using namespace troupe;

struct Args {
  int ranks = 4;
  int64_t layers = 4, reps = 3;
  std::vector<int> tp{1, 2};
  std::vector<std::string> collectives{"gloo", "shm"};
  std::string json;
};

Args parse(int argc, char** argv) {
  Args a;
  bench::for_each_flag(argc, argv, [&](const std::string& flag, const bench::FlagValue& value) {
    if (flag == "--ranks") a.ranks = std::stoi(value());
    else if (flag == "--layers") a.layers = std::stoll(value());
    else if (flag == "--reps") a.reps = std::stoll(value());
    else if (flag == "--json") a.json = value();
    else if (flag == "--tp") {
      a.tp.clear();
      std::stringstream list(value());
      for (std::string item; std::getline(list, item, ',');) a.tp.push_back(std::stoi(item));
    } else if (flag == "--collectives") {
      a.collectives.clear();
      std::stringstream list(value());
      for (std::string item; std::getline(list, item, ',');) {
        if (item != "gloo" && item != "shm") throw Error("--collectives " + item + ": gloo or shm");
        a.collectives.push_back(item);
      }
    } else {
      throw Error("unknown flag " + flag + " (flags: --ranks --layers --tp --collectives --reps --json)");
    }
  });
  if (a.collectives.empty()) throw Error("--collectives needs gloo, shm or both");

  for (int k : a.tp)
    if (k < 1 || a.ranks % k != 0)
      throw Error("--tp " + std::to_string(k) + " must divide --ranks " + std::to_string(a.ranks));
  return a;
}

/// facebook/opt-1.3b's shape with `layers` decoder layers, random weights.
models::Config opt_1_3b_layers(int64_t layers) {
  return models::parse_config({{"model_type", "opt"},
                               {"vocab_size", 50272},
                               {"hidden_size", 2048},
                               {"num_hidden_layers", layers},
                               {"num_attention_heads", 32},
                               {"ffn_dim", 8192},
                               {"max_position_embeddings", 2048},
                               {"word_embed_proj_dim", 2048},
                               {"do_layer_norm_before", true},
                               {"dropout", 0.0},
                               {"pad_token_id", 1},
                               {"eos_token_id", 2}},
                              "opt-1.3b layer shape");
}

/// One tensor-parallel size's figures over one kind of collectives, for rank 0 (every
/// rank moves alike).
struct Row {
  int tp = 1;
  double seconds = 0;
  int64_t received = 0, minimum = 0, resident = 0, peak = 0;
};

std::shared_ptr<transport::Communicator> make_communicator(const std::string& collectives,
                                                           c10::intrusive_ptr<c10d::Store> store, int rank, int size) {
  if (collectives == "shm")
    return std::make_shared<transport::SharedMemoryCommunicator>(std::move(store), rank, size, "reshard",
                                                                 std::chrono::minutes(5));
  return transport::make_gloo_communicator(std::move(store), rank, size, "reshard", std::chrono::minutes(5));
}

/// A memcpy of `bytes` on every rank thread at once, the median of `reps`.
double concurrent_memcpy_seconds(int ranks, int64_t bytes, int64_t reps) {
  std::vector<std::vector<char>> from(static_cast<size_t>(ranks)), to(static_cast<size_t>(ranks));
  for (int r = 0; r < ranks; ++r) {
    from[static_cast<size_t>(r)].assign(static_cast<size_t>(bytes), 1);
    to[static_cast<size_t>(r)].assign(static_cast<size_t>(bytes), 0);
  }
  std::vector<double> times;
  for (int64_t rep = 0; rep < reps; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int r = 0; r < ranks; ++r)
      threads.emplace_back([&, r] {
        std::memcpy(to[static_cast<size_t>(r)].data(), from[static_cast<size_t>(r)].data(), static_cast<size_t>(bytes));
      });
    for (auto& t : threads) t.join();
    times.push_back(bench::seconds_since(start));
  }
  return bench::median(times);
}

}  // namespace

/// Every --tp size's row over `collectives` ("gloo" or "shm"): fresh models, since a
/// ZeRO-3 partition takes over its model's parameters.
std::vector<Row> run_reshard(const Args& args, const std::string& collectives) {
  const auto config = opt_1_3b_layers(args.layers);
  std::vector<models::CausalLM> models;
  for (int r = 0; r < args.ranks; ++r) {
    torch::manual_seed(0);  // every rank starts from the same weights
    models.push_back(models::make_causal_lm(config));
    models.back()->eval();
  }
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::HashStore>();
  std::vector<Row> rows(args.tp.size());
  std::vector<std::string> failures(static_cast<size_t>(args.ranks));
  std::vector<std::thread> threads;
  for (int rank = 0; rank < args.ranks; ++rank)
    threads.emplace_back([&, rank] {
      try {
        auto communicator = make_communicator(collectives, store, rank, args.ranks);
        auto zero3_collectives = actors::zero3_collectives_over(
            [communicator]() -> transport::Communicator& { return *communicator; }, rank, args.ranks);
        engine::Zero3Partition zero3(models[static_cast<size_t>(rank)], zero3_collectives);
        torch::NoGradGuard no_grad;
        for (size_t i = 0; i < args.tp.size(); ++i) {
          const int k = args.tp[i];
          std::vector<double> times;
          int64_t received = 0;
          zero3.reset_peak();
          for (int64_t rep = 0; rep < args.reps; ++rep) {
            communicator->barrier();
            const int64_t before = zero3.received_bytes();
            const auto start = std::chrono::steady_clock::now();
            if (k == 1) {
              auto whole = zero3.gather_full_parameters();
              communicator->barrier();  // the slowest rank's time
              times.push_back(bench::seconds_since(start));
            } else {
              auto slices = zero3.gather_tensor_parallel_slices({k, rank % k, nullptr});
              communicator->barrier();
              times.push_back(bench::seconds_since(start));
            }
            received = zero3.received_bytes() - before;
          }
          if (rank != 0) continue;
          auto& row = rows[i];
          row.tp = k;
          row.seconds = bench::median(times);
          row.received = received;
          row.minimum = zero3.tensor_parallel_minimum_bytes(k);
          row.resident = zero3.param_resident_bytes();
          row.peak = zero3.peak_param_resident_bytes();
        }
      } catch (const std::exception& error) {
        failures[static_cast<size_t>(rank)] = error.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < args.ranks; ++r)
    if (!failures[static_cast<size_t>(r)].empty())
      throw Error(collectives + " rank " + std::to_string(r) + ": " + failures[static_cast<size_t>(r)]);
  return rows;
}

int main(int argc, char** argv) {
  try {
    const auto args = parse(argc, argv);
    at::set_num_threads(1);  // one thread per rank, as the ranks of a machine would share its cores
    std::vector<std::vector<Row>> runs;  // per --collectives entry, per --tp size
    for (const auto& collectives : args.collectives) runs.push_back(run_reshard(args, collectives));
    // The models are gone by now: the memcpy has the memory. Every run receives the same bytes.
    std::vector<double> memcpy_seconds;
    for (const auto& row : runs[0]) memcpy_seconds.push_back(concurrent_memcpy_seconds(args.ranks, row.received, args.reps));

    std::printf("ZeRO-3 -> generation reshard, OPT-1.3B layer shape x %lld layers, %d ranks (threads), fp32\n",
                static_cast<long long>(args.layers), args.ranks);
    std::printf("%-4s %14s %14s %10s", "tp", "received MiB", "minimum MiB", "memcpy s");
    for (const auto& c : args.collectives)
      std::printf(" %9s %12s %8s", (c + " s").c_str(), (c + "/memcpy").c_str(), (c + " GB/s").c_str());
    std::printf(" %18s\n", "peak resident MiB");
    nlohmann::json out = nlohmann::json::array();
    const double mib = 1 << 20;
    for (size_t i = 0; i < args.tp.size(); ++i) {
      const auto& first = runs[0][i];
      std::printf("%-4d %14.1f %14.1f %10.4f", first.tp, first.received / mib, first.minimum / mib, memcpy_seconds[i]);
      for (size_t c = 0; c < args.collectives.size(); ++c) {
        const auto& row = runs[c][i];
        std::printf(" %9.3f %12.1f %8.2f", row.seconds, memcpy_seconds[i] > 0 ? row.seconds / memcpy_seconds[i] : 0.0,
                    row.seconds > 0 ? row.received / row.seconds / 1e9 : 0.0);
        out.push_back({{"tp", row.tp}, {"collectives", args.collectives[c]}, {"reshard_seconds", row.seconds},
                       {"received_bytes", row.received}, {"minimum_bytes", row.minimum},
                       {"memcpy_seconds", memcpy_seconds[i]}, {"resident_bytes", row.resident},
                       {"peak_resident_bytes", row.peak}});
      }
      std::printf(" %18.1f\n", first.peak / mib);
    }
    std::printf("received: bytes rank 0 got from the other ranks; minimum: what it must get (its share of the\n"
                "inference layout that its own chunks do not hold); memcpy: the same bytes copied on every rank at once;\n"
                "gloo: c10d ProcessGroupGloo over loopback TCP; shm: troupe's shared-memory collectives.\n");
    if (!args.json.empty()) std::ofstream(args.json) << out.dump(2) << "\n";
    return 0;
  } catch (const std::exception& error) {
    std::cerr << "troupe_bench_reshard: " << error.what() << "\n";
    return 1;
  }
}

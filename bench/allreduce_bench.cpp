// All-reduce bandwidth of troupe's UCX ring and troupe's shared-memory collectives next to
// c10d's ProcessGroupGloo (what torch.distributed uses on CPUs), all across the same
// processes in the same run.
//
//   troupe_bench_allreduce [--ranks 2] [--min-mb 1] [--max-mb 256] [--seconds 1.0] [--json FILE]
//
// Rank 0 is this process; ranks 1.. are this program re-run with --rank R --dir D. The
// ranks meet through a c10d FileStore. For each size (powers of 4 MiB) and backend: one
// warm-up, then float32 sum all-reduces for about `seconds`; prints the algorithm
// bandwidth (bytes / time per all-reduce), the bus bandwidth (x 2 (W-1)/W, NCCL's
// convention: what each link carries) and the ratios UCX ring / Gloo and shm / Gloo.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/transport/c10d_communicator.hpp>
#include <troupe/transport/shm_communicator.hpp>
#include <troupe/transport/ucx_communicator.hpp>

#include "bench_processes.hpp"

namespace fs = std::filesystem;
using namespace troupe::transport;

namespace {

constexpr std::int64_t kMiB = 1 << 20;

struct Options {
  int ranks = 2;
  std::int64_t min_mb = 1, max_mb = 256;
  double seconds = 1.0;
  std::string json_path;
};

/// Seconds per all-reduce of `bytes`: the mean over about `seconds` of calls, after a warm-up.
/// Every rank runs the same calls; the iteration count comes from rank 0 by broadcast.
double seconds_per_all_reduce(Communicator& comm, std::int64_t bytes, double seconds) {
  auto tensor = at::ones({bytes / 4}, at::kFloat);
  comm.all_reduce(tensor, ReduceOp::kSum);  // warm-up: connections, registration
  auto iters = at::zeros({1}, at::kLong);
  if (comm.rank() == 0) {
    comm.barrier();
    auto start = std::chrono::steady_clock::now();
    comm.all_reduce(tensor, ReduceOp::kSum);
    double once = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    iters[0] = std::max<std::int64_t>(3, static_cast<std::int64_t>(seconds / std::max(once, 1e-6)));
  } else {
    comm.barrier();
    comm.all_reduce(tensor, ReduceOp::kSum);
  }
  comm.broadcast(iters, 0);
  const auto n = iters.item<std::int64_t>();
  comm.barrier();
  auto start = std::chrono::steady_clock::now();
  for (std::int64_t i = 0; i < n; ++i) comm.all_reduce(tensor, ReduceOp::kSum);
  comm.barrier();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / static_cast<double>(n);
}

struct Communicators {
  std::unique_ptr<Communicator> ucx, gloo, shm;
};

/// One rank's communicators over the FileStore in `dir`.
Communicators join(const fs::path& dir, int rank, int size) {
  auto store = make_file_store((dir / "store").string(), size);
  Communicators c;
  c.ucx = std::make_unique<UcxCommunicator>(std::make_shared<UcxWorker>(), store, rank, size, "bench_ucx",
                                            std::chrono::minutes(5));
  c.gloo = make_gloo_communicator(store, rank, size, "bench_gloo", std::chrono::minutes(5));
  c.shm = std::make_unique<SharedMemoryCommunicator>(store, rank, size, "bench_shm", std::chrono::minutes(5));
  return c;
}

std::vector<std::int64_t> sizes_mb(const Options& options) {
  std::vector<std::int64_t> sizes;
  for (std::int64_t mb = options.min_mb; mb <= options.max_mb; mb *= 4) sizes.push_back(mb);
  return sizes;
}

int run_peer(const fs::path& dir, int rank, const Options& options) {
  auto c = join(dir, rank, options.ranks);
  for (auto mb : sizes_mb(options)) {
    seconds_per_all_reduce(*c.ucx, mb * kMiB, options.seconds);
    seconds_per_all_reduce(*c.gloo, mb * kMiB, options.seconds);
    seconds_per_all_reduce(*c.shm, mb * kMiB, options.seconds);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options options;
    int rank = 0;
    fs::path dir;
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw troupe::Error("bench: " + arg + " needs a value");
        return argv[++i];
      };
      if (arg == "--ranks") options.ranks = std::stoi(next());
      else if (arg == "--min-mb") options.min_mb = std::stoll(next());
      else if (arg == "--max-mb") options.max_mb = std::stoll(next());
      else if (arg == "--seconds") options.seconds = std::stod(next());
      else if (arg == "--json") options.json_path = next();
      else if (arg == "--rank") rank = std::stoi(next());
      else if (arg == "--dir") dir = next();
      else throw troupe::Error("bench: unknown argument " + arg);
    }
    if (options.ranks < 2) throw troupe::Error("bench: --ranks must be at least 2");
    if (!gloo_available()) throw troupe::Error("bench: this build has no c10d Gloo (install libgloo-dev, reconfigure)");
    setenv("UCX_NET_DEVICES", "lo", 0);
    if (rank > 0) return run_peer(dir, rank, options);

    dir = fs::temp_directory_path() / ("troupe_allreduce_bench_" + std::to_string(getpid()));
    fs::create_directories(dir);
    std::vector<pid_t> peers;
    for (int r = 1; r < options.ranks; ++r) {
      std::vector<std::string> args = {fs::canonical("/proc/self/exe").string(), "--rank", std::to_string(r),
                                       "--dir", dir.string(), "--ranks", std::to_string(options.ranks),
                                       "--min-mb", std::to_string(options.min_mb), "--max-mb",
                                       std::to_string(options.max_mb), "--seconds", std::to_string(options.seconds)};
      peers.push_back(troupe::bench::spawn(args));
    }
    auto c = join(dir, 0, options.ranks);
    const double bus = 2.0 * (options.ranks - 1) / options.ranks;
    nlohmann::json rows = nlohmann::json::array();
    std::printf("all-reduce, float32 sum, %d processes on this machine\n", options.ranks);
    std::printf("%10s %14s %14s %14s %14s %14s %14s %9s %9s\n", "size", "ucx ring MB/s", "ucx bus MB/s", "gloo MB/s",
                "gloo bus MB/s", "shm MB/s", "shm bus MB/s", "ucx/gloo", "shm/gloo");
    for (auto mb : sizes_mb(options)) {
      const double bytes = static_cast<double>(mb * kMiB);
      const double ring = bytes / seconds_per_all_reduce(*c.ucx, mb * kMiB, options.seconds) / 1e6;
      const double c10d = bytes / seconds_per_all_reduce(*c.gloo, mb * kMiB, options.seconds) / 1e6;
      const double shm = bytes / seconds_per_all_reduce(*c.shm, mb * kMiB, options.seconds) / 1e6;
      std::printf("%6lld MiB %14.0f %14.0f %14.0f %14.0f %14.0f %14.0f %8.0f%% %8.0f%%\n", static_cast<long long>(mb), ring,
                  ring * bus, c10d, c10d * bus, shm, shm * bus, 100.0 * ring / c10d, 100.0 * shm / c10d);
      std::fflush(stdout);
      rows.push_back({{"bytes", mb * kMiB}, {"ucx_ring_MBps", ring}, {"gloo_MBps", c10d}, {"shm_MBps", shm},
                      {"ratio", ring / c10d}, {"shm_ratio", shm / c10d}});
    }
    int failed = 0;
    for (auto pid : peers) failed += troupe::bench::wait_pid(pid) != 0;
    fs::remove_all(dir);
    if (!options.json_path.empty()) std::ofstream(options.json_path) << rows.dump(2) << "\n";
    if (failed) throw troupe::Error("bench: " + std::to_string(failed) + " peer rank(s) failed");
    return 0;
  } catch (const std::exception& error) {
    std::cerr << "troupe_bench_allreduce: " << error.what() << std::endl;
    return 1;
  }
}

// Transfer bandwidth of troupe's channels next to ucx_perftest on the same machine.
//
//   troupe_bench_transport [--min-mb 1] [--max-mb 1024] [--seconds 1.0] [--json FILE]
//
// For each size (powers of 4 from min to max MiB): the in-process channel (a hand-over),
// the UCX channel between this process and a child process (this program re-run with
// --peer), receiving into a preallocated batch, and `ucx_perftest -t tag_bw` server and
// client on localhost with the same size; prints MB/s and the ratio UCX channel / perftest.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/transport/in_process_channel.hpp>
#include <troupe/transport/ucx_channel.hpp>

#include "bench_processes.hpp"

using namespace troupe::transport;
using troupe::bench::spawn;
using troupe::bench::wait_pid;
namespace fs = std::filesystem;
using Seconds = std::chrono::duration<double>;

namespace {

constexpr std::int64_t kMiB = 1 << 20;

void write_bytes(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  auto temp = path.string() + ".tmp";
  std::ofstream(temp, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  fs::rename(temp, path);
}

std::vector<std::uint8_t> wait_for_bytes(const fs::path& path) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(path)) {
    if (std::chrono::steady_clock::now() > deadline) throw troupe::Error("bench: " + path.string() + " never appeared");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::ifstream in(path, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

TransferOptions long_timeout() {
  TransferOptions options;
  options.timeout = std::chrono::seconds(300);
  return options;
}

/// Peer: for each size, receives `iters` batches into one preallocated buffer on
/// channel 1 and acknowledges the round on channel 2.
int run_peer(const fs::path& dir) {
  auto worker = std::make_shared<UcxWorker>();
  write_bytes(dir / "peer.addr", worker->address());
  auto parent = wait_for_bytes(dir / "parent.addr");
  UcxChannel in(worker, parent, 1, long_timeout());
  UcxChannel out(worker, parent, 2, long_timeout());
  while (true) {
    auto plan = in.receive();  // {"bytes", "iters"} or {"stop"}
    if (plan.contains("stop")) break;
    auto bytes = plan.get("bytes").item<std::int64_t>();
    auto iters = plan.get("iters").item<std::int64_t>();
    TensorBatch destination{{"payload", at::empty({bytes}, at::kByte)}};  // (bytes)
    for (std::int64_t i = 0; i < iters; ++i) in.receive_into(destination);
    out.send(TensorBatch{{"ack", at::ones({1}, at::kByte)}});
  }
  return 0;
}

/// MB/s of troupe's UCX channel to the peer: `iters` batches, then an acknowledgement.
double ucx_channel_bandwidth(UcxChannel& out, UcxChannel& in, std::int64_t bytes, std::int64_t iters) {
  auto payload = at::ones({bytes}, at::kByte);  // (bytes), touched once before timing
  out.send(TensorBatch{{"bytes", at::full({1}, bytes, at::kLong)}, {"iters", at::full({1}, iters + 1, at::kLong)}});
  out.send(TensorBatch{{"payload", payload}});  // warm-up: endpoint wire-up, registration cache
  auto start = std::chrono::steady_clock::now();
  for (std::int64_t i = 0; i < iters; ++i) out.send(TensorBatch{{"payload", payload}});
  in.receive();  // the peer has every byte
  auto elapsed = Seconds(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(bytes) * iters / elapsed / 1e6;
}

double in_process_bandwidth(std::int64_t bytes, std::int64_t iters) {
  InProcessChannel channel;
  auto payload = at::ones({bytes}, at::kByte);  // (bytes)
  auto start = std::chrono::steady_clock::now();
  for (std::int64_t i = 0; i < iters; ++i) {
    channel.send(TensorBatch{{"payload", payload}});
    channel.receive();
  }
  auto elapsed = Seconds(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(bytes) * iters / elapsed / 1e6;
}

/// ucx_perftest tag_bw on localhost; the "overall" bandwidth column of its Final line, MB/s
/// (ucx_perftest's MB is 2^20 bytes; converted to 10^6 here like the other columns).
double perftest_bandwidth(std::int64_t bytes, std::int64_t iters, int port) {
  auto size = std::to_string(bytes);
  auto n = std::to_string(iters);
  auto p = std::to_string(port);
  auto server = spawn({"ucx_perftest", "-t", "tag_bw", "-s", size, "-n", n, "-p", p}, true);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto command = "ucx_perftest 127.0.0.1 -t tag_bw -s " + size + " -n " + n + " -p " + p + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) throw troupe::Error("bench: cannot run ucx_perftest");
  std::string line;
  double mbps = -1;
  char buffer[512];
  while (fgets(buffer, sizeof buffer, pipe) != nullptr) {
    line = buffer;
    if (line.rfind("Final:", 0) == 0) {
      std::vector<double> columns;
      std::string token;
      for (auto c : line.substr(6) + " ") {
        if (c == ' ' || c == '\n') {
          if (!token.empty()) columns.push_back(std::stod(token));
          token.clear();
        } else {
          token += c;
        }
      }
      // iterations, overhead 50%/avg/overall, bandwidth avg/overall, msg rate avg/overall
      if (columns.size() >= 6) mbps = columns[5] * kMiB / 1e6;
    }
  }
  pclose(pipe);
  wait_pid(server);
  if (mbps < 0) throw troupe::Error("bench: no Final line from ucx_perftest for size " + size);
  return mbps;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::int64_t min_mb = 1, max_mb = 1024;
    double seconds = 1.0;
    std::string json_path;
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw troupe::Error("bench: " + arg + " needs a value");
        return argv[++i];
      };
      if (arg == "--peer") return run_peer(next());
      if (arg == "--min-mb") min_mb = std::stoll(next());
      else if (arg == "--max-mb") max_mb = std::stoll(next());
      else if (arg == "--seconds") seconds = std::stod(next());
      else if (arg == "--json") json_path = next();
      else throw troupe::Error("bench: unknown argument " + arg);
    }
    // ucx_perftest and the channel use the same devices: loopback (plus shared memory).
    setenv("UCX_NET_DEVICES", "lo", 0);

    auto dir = fs::temp_directory_path() / ("troupe_transport_bench_" + std::to_string(getpid()));
    fs::create_directories(dir);
    auto worker = std::make_shared<UcxWorker>();
    write_bytes(dir / "parent.addr", worker->address());
    auto peer = spawn({fs::canonical("/proc/self/exe").string(), "--peer", dir.string()});
    auto child = wait_for_bytes(dir / "peer.addr");
    UcxChannel out(worker, child, 1, long_timeout());
    UcxChannel in(worker, child, 2, long_timeout());

    nlohmann::json rows = nlohmann::json::array();
    std::printf("%10s %8s %16s %16s %16s %8s\n", "size", "iters", "in-process MB/s", "ucx channel MB/s",
                "ucx_perftest MB/s", "ratio");
    int port = 13500 + getpid() % 1000;
    for (std::int64_t mb = min_mb; mb <= max_mb; mb *= 4) {
      auto bytes = mb * kMiB;
      // Enough iterations for about `seconds` at ~2 GB/s, at least 3.
      auto iters = std::max<std::int64_t>(3, static_cast<std::int64_t>(seconds * 2e9 / bytes));
      auto local = in_process_bandwidth(bytes, iters);
      auto ucx = ucx_channel_bandwidth(out, in, bytes, iters);
      auto perftest = perftest_bandwidth(bytes, iters, port++);
      std::printf("%7lld MiB %8lld %16.0f %16.0f %16.0f %7.0f%%\n", static_cast<long long>(mb),
                  static_cast<long long>(iters), local, ucx, perftest, 100.0 * ucx / perftest);
      std::fflush(stdout);
      rows.push_back({{"bytes", bytes}, {"iters", iters}, {"in_process_MBps", local}, {"ucx_channel_MBps", ucx},
                      {"ucx_perftest_MBps", perftest}, {"ratio", ucx / perftest}});
    }
    out.send(TensorBatch{{"stop", at::ones({1})}});
    wait_pid(peer);
    fs::remove_all(dir);
    if (!json_path.empty()) std::ofstream(json_path) << rows.dump(2) << "\n";
    return 0;
  } catch (const std::exception& error) {
    std::cerr << "troupe_bench_transport: " << error.what() << std::endl;
    return 1;
  }
}

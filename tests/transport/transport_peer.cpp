// The other process of the multi-process transport tests and of the benchmark.
//   transport_peer serve DIR         publish all_dtypes_batch(11) as ticket 1; serve until DIR/stop
//   transport_peer echo DIR COUNT    receive COUNT batches on channel 1 from DIR/parent.addr, send each back on channel 2
//   transport_peer collective DIR RANK SIZE   run the collective checks as RANK of SIZE (FileStore DIR/store)
//   transport_peer gloo_collective | shm_collective DIR RANK SIZE   the same over c10d Gloo / shared memory
//   transport_peer shm_exit DIR RANK SIZE     join a shared-memory group, take part in one all-reduce, exit
// Each writes its UCX address to DIR/peer<RANK>.addr (RANK 0 for serve and echo).
#include <iostream>

#include <troupe/transport/c10d_communicator.hpp>
#include <troupe/transport/shm_communicator.hpp>
#include <troupe/transport/tensor_store.hpp>
#include <troupe/transport/ucx_channel.hpp>
#include <troupe/transport/ucx_communicator.hpp>

#include "collective_checks.hpp"
#include "transport_fixtures.hpp"

using namespace troupe::transport;
namespace fs = std::filesystem;

namespace {

int serve(const fs::path& dir) {
  auto worker = std::make_shared<UcxWorker>();
  TensorStore store(worker);
  store.publish(1, troupe::test::all_dtypes_batch(11));
  troupe::test::write_bytes(dir / "peer0.addr", worker->address());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (!fs::exists(dir / "stop") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return 0;
}

int echo(const fs::path& dir, int count) {
  auto worker = std::make_shared<UcxWorker>();
  troupe::test::write_bytes(dir / "peer0.addr", worker->address());
  auto parent = troupe::test::wait_for_bytes(dir / "parent.addr", std::chrono::seconds(30));
  TransferOptions options;
  options.timeout = std::chrono::seconds(60);
  UcxChannel in(worker, parent, 1, options);
  UcxChannel out(worker, parent, 2, options);
  for (int i = 0; i < count; ++i) out.send(in.receive());
  // Stay until the parent has taken the last batch's buffers (it writes DIR/stop).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (!fs::exists(dir / "stop") && std::chrono::steady_clock::now() < deadline) worker->progress();
  return 0;
}

int collective(const fs::path& dir, int rank, int size, troupe::test::CollectiveBackend backend) {
  auto store = make_file_store((dir / "store").string(), size);
  auto comm = troupe::test::make_test_communicator(backend, store, rank, size, "multiprocess", std::chrono::seconds(60));
  auto failures = troupe::test::run_collective_checks(*comm);
  if (!failures.empty()) {
    std::cerr << "transport_peer: " << failures << std::endl;
    return 1;
  }
  return 0;
}

int shm_exit(const fs::path& dir, int rank, int size) {
  auto store = make_file_store((dir / "store").string(), size);
  SharedMemoryCommunicator comm(store, rank, size, "exits", std::chrono::seconds(60));
  auto x = at::ones({4});
  comm.all_reduce(x, ReduceOp::kSum);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string mode = argc > 2 ? argv[1] : "";
    fs::path dir = argc > 2 ? argv[2] : "";
    if (mode == "serve") return serve(dir);
    if (mode == "echo" && argc == 4) return echo(dir, std::stoi(argv[3]));
    using troupe::test::CollectiveBackend;
    if ((mode == "collective" || mode == "gloo_collective" || mode == "shm_collective") && argc == 5)
      return collective(dir, std::stoi(argv[3]), std::stoi(argv[4]),
                        mode == "gloo_collective"  ? CollectiveBackend::kGloo
                        : mode == "shm_collective" ? CollectiveBackend::kShm
                                                   : CollectiveBackend::kUcxRing);
    if (mode == "shm_exit" && argc == 5) return shm_exit(dir, std::stoi(argv[3]), std::stoi(argv[4]));
    std::cerr << "usage: transport_peer serve DIR | echo DIR COUNT | [gloo_|shm_]collective DIR RANK SIZE"
                 " | shm_exit DIR RANK SIZE" << std::endl;
    return 2;
  } catch (const std::exception& error) {
    std::cerr << "transport_peer: " << error.what() << std::endl;
    return 1;
  }
}

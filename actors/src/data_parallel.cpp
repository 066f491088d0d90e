/// Data-parallel ranks across processes: rendezvous, gradient averaging, agreement.
#include <troupe/actors/data_parallel.hpp>

#include <map>

#include <torch/torch.h>

#include <unistd.h>

#include "host_port.hpp"
#include <troupe/common/error.hpp>
#include <troupe/transport/c10d_communicator.hpp>
#include <troupe/transport/c10d_store.hpp>
#include <troupe/transport/shm_communicator.hpp>
#include <troupe/transport/ucx_communicator.hpp>
#include <troupe/transport/ucx_worker.hpp>

namespace troupe::actors {
namespace {

std::string this_host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) throw Error("data parallel: gethostname failed");
  return name;
}

/// The address gloo binds this rank's TCP transport to: loopback when the ranks meet on
/// loopback (one machine), else this machine's address on the route to the rendezvous
/// (the host name may resolve to 127.0.1.1, which other machines cannot reach).
std::string gloo_hostname(const std::string& rendezvous_host, uint16_t rendezvous_port) {
  if (rendezvous_host == "127.0.0.1" || rendezvous_host == "localhost") return "127.0.0.1";
  return local_address_towards(rendezvous_host, rendezvous_port);
}

}  // namespace

Collectives parse_collectives(const std::string& name, const std::string& where) {
  if (name == "gloo") return Collectives::kGloo;
  if (name == "ucx") return Collectives::kUcx;
  if (name == "nccl") return Collectives::kNccl;
  if (name == "shm") return Collectives::kShm;
  if (name == "auto") return Collectives::kAuto;
  throw Error(where + ": collectives '" + name + "' is not gloo, ucx, nccl, shm or auto");
}

std::string collectives_name(Collectives collectives) {
  switch (collectives) {
    case Collectives::kGloo: return "gloo";
    case Collectives::kUcx: return "ucx";
    case Collectives::kNccl: return "nccl";
    case Collectives::kShm: return "shm";
    case Collectives::kAuto: return "auto";
  }
  return "?";
}

// Shared memory copies at memory speed where Gloo goes through loopback TCP (a ZeRO-3
// whole-model gather 2-3.5x faster, docs/benchmarks.md): the default wherever the ranks
// share a machine.
Collectives default_collectives() { return Collectives::kAuto; }

Collectives cross_host_collectives() { return transport::gloo_available() ? Collectives::kGloo : Collectives::kUcx; }

DataParallel::DataParallel(std::string host, uint16_t port, int rank, int world, std::string group,
                           std::chrono::milliseconds timeout, Collectives collectives, int cuda_device)
    : host_(std::move(host)),
      port_(port),
      rank_(rank),
      world_(world),
      group_(std::move(group)),
      timeout_(timeout),
      collectives_(collectives),
      joined_collectives_(collectives),
      cuda_device_(cuda_device) {
  if (world_ < 1 || rank_ < 0 || rank_ >= world_)
    throw Error("data parallel group " + group_ + ": rank " + std::to_string(rank_) + " of " + std::to_string(world_));
  if (collectives_ == Collectives::kGloo && !transport::gloo_available())
    throw Error("data parallel group " + group_ + ": gloo collectives asked for, but this build has no c10d Gloo");
  if (collectives_ == Collectives::kNccl && !transport::nccl_available())
    throw Error("data parallel group " + group_ + ": nccl collectives asked for, but this build has no CUDA parts");
  if (collectives_ == Collectives::kNccl && cuda_device_ < 0)
    throw Error("data parallel group " + group_ + ": nccl collectives need the ranks on CUDA devices (--device cuda)");
}

DataParallel::~DataParallel() = default;

std::unique_ptr<transport::Communicator> DataParallel::join(const std::string& name, int rank, int size) {
  auto store = transport::make_tcp_store(host_, port_, false, world_, timeout_);
  auto collectives = collectives_;
  if (collectives == Collectives::kAuto)
    collectives = transport::ranks_share_host(store, rank, size, name, timeout_) ? Collectives::kShm : cross_host_collectives();
  if (name == group_) joined_collectives_ = collectives;  // not a generation group's choice
  if (collectives == Collectives::kShm)
    return std::make_unique<transport::SharedMemoryCommunicator>(store, rank, size, name, timeout_);
  if (collectives == Collectives::kGloo)
    return transport::make_gloo_communicator(store, rank, size, name, timeout_, gloo_hostname(host_, port_));
  if (collectives == Collectives::kNccl) return transport::make_nccl_communicator(store, rank, size, cuda_device_, name, timeout_);
  if (!worker_) worker_ = std::make_shared<transport::UcxWorker>();
  return std::make_unique<transport::UcxCommunicator>(worker_, store, rank, size, name, timeout_);
}

transport::Communicator& DataParallel::communicator() {
  if (!communicator_) communicator_ = join(group_, rank_, world_);
  return *communicator_;
}

torch::Tensor DataParallel::all_gather(const torch::Tensor& input) {
  return world_ > 1 ? communicator().all_gather(input) : input.unsqueeze(0);
}

models::TensorParallelRank DataParallel::generation_group(int size) {
  if (size < 1 || world_ % size != 0)
    throw Error("data parallel group " + group_ + ": a tensor-parallel generation group of " + std::to_string(size) +
                " does not divide its " + std::to_string(world_) + " ranks");
  models::TensorParallelRank rank{size, rank_ % size, nullptr};
  if (size == 1) return rank;
  const std::string name = group_ + "/generation_tp" + std::to_string(rank_ / size);
  rank.all_reduce_sum = [self = shared_from_this(), name, size](torch::Tensor& tensor) {
    if (!self->generation_communicator_) self->generation_communicator_ = self->join(name, self->rank_ % size, size);
    self->generation_communicator_->all_reduce(tensor, transport::ReduceOp::kSum);
  };
  return rank;
}

void DataParallel::average_gradients(const std::vector<torch::Tensor>& parameters) {
  if (world_ == 1 || parameters.empty()) return;
  const auto count = static_cast<int64_t>(parameters.size());
  auto present = torch::zeros({count}, torch::kFloat32);
  for (int64_t i = 0; i < count; ++i) present[i] = parameters[i].grad().defined() ? 1.0f : 0.0f;
  communicator().all_reduce(present, transport::ReduceOp::kMax);
  // One buffer per dtype: a single all-reduce instead of one per tensor.
  std::map<torch::ScalarType, std::vector<torch::Tensor>> by_dtype;
  for (int64_t i = 0; i < count; ++i) {
    if (present[i].item<float>() == 0.0f) continue;
    auto parameter = parameters[i];
    if (!parameter.grad().defined()) parameter.mutable_grad() = torch::zeros_like(parameter);
    by_dtype[parameter.grad().scalar_type()].push_back(parameter.grad());
  }
  for (auto& [dtype, gradients] : by_dtype) {
    std::vector<torch::Tensor> flat;
    for (const auto& gradient : gradients) flat.push_back(gradient.reshape({-1}));
    auto buffer = torch::cat(flat);
    communicator().all_reduce(buffer, transport::ReduceOp::kAvg);
    int64_t offset = 0;
    for (auto& gradient : gradients) {
      const int64_t n = gradient.numel();
      gradient.copy_(buffer.slice(0, offset, offset + n).view_as(gradient));
      offset += n;
    }
  }
}

void DataParallel::broadcast(torch::Tensor& tensor, int root) {
  if (world_ > 1) communicator().broadcast(tensor, root);
}

void DataParallel::reduce_sum(torch::Tensor& tensor, int root) {
  if (world_ > 1) communicator().reduce(tensor, transport::ReduceOp::kSum, root);
}

void DataParallel::all_reduce_sum(torch::Tensor& tensor) {
  if (world_ > 1) communicator().all_reduce(tensor, transport::ReduceOp::kSum);
}

void DataParallel::all_reduce_max(torch::Tensor& tensor) {
  if (world_ > 1) communicator().all_reduce(tensor, transport::ReduceOp::kMax);
}

engine::TrainEngine::OptimizerSharding DataParallel::optimizer_sharding(int stage) {
  engine::TrainEngine::OptimizerSharding sharding;
  sharding.rank = rank_;
  sharding.world = world_;
  sharding.stage = stage;
  sharding.broadcast = [this](torch::Tensor& flat, int root) { broadcast(flat, root); };
  sharding.reduce_sum = [this](torch::Tensor& flat, int root) { reduce_sum(flat, root); };
  sharding.all_reduce_sum = [this](torch::Tensor& tensor) { all_reduce_sum(tensor); };
  sharding.all_reduce_max = [this](torch::Tensor& tensor) { all_reduce_max(tensor); };
  sharding.reduce_bucket_size = reduce_bucket_size_;
  return sharding;
}

engine::Zero3Collectives zero3_collectives_over(std::function<transport::Communicator&()> communicator, int rank,
                                                int world) {
  engine::Zero3Collectives collectives;
  collectives.rank = rank;
  collectives.world = world;
  collectives.all_gather = [communicator, world](const torch::Tensor& chunk, torch::Tensor& flat) {
    if (world == 1) {
      flat.copy_(chunk);
      return;
    }
    communicator().all_gather_into(chunk, flat);  // (W * C)
  };
  collectives.start_all_gather = [communicator, world](const torch::Tensor& chunk,
                                                      torch::Tensor& flat) -> std::function<void()> {
    if (world == 1) {
      flat.copy_(chunk);
      return [] {};
    }
    std::shared_ptr<transport::StartedCollective> started = communicator().start_all_gather(chunk);
    return [started, flat] { flat.copy_(started->wait().reshape({-1})); };  // (W, C) -> (W * C)
  };
  collectives.reduce_scatter_sum = [communicator, world](const torch::Tensor& flat, torch::Tensor& chunk) {
    if (world == 1) {
      chunk.copy_(flat);
      return;
    }
    chunk.copy_(communicator().reduce_scatter(flat.view({world, -1}), transport::ReduceOp::kSum));
  };
  collectives.all_reduce_sum = [communicator, world](torch::Tensor& tensor) {
    if (world > 1) communicator().all_reduce(tensor, transport::ReduceOp::kSum);
  };
  collectives.all_to_all = [communicator, world](const torch::Tensor& send, const std::vector<int64_t>& send_counts,
                                                 torch::Tensor& receive, const std::vector<int64_t>& receive_counts) {
    if (world == 1) {
      receive.copy_(send);
      return;
    }
    communicator().all_to_all_into(send, send_counts, receive, receive_counts);
  };
  if (world > 1)  // one rank: all_to_all's local copy serves
    collectives.all_to_all_streams = [communicator](torch::ScalarType dtype, const std::vector<int64_t>& send_counts,
                                                  const std::vector<int64_t>& receive_counts,
                                                  const engine::Zero3Collectives::PackPiece& pack,
                                                  const engine::Zero3Collectives::UnpackPiece& unpack) {
    communicator().all_to_all_streams({dtype, send_counts, receive_counts, pack, unpack});
  };
  return collectives;
}

void DataParallel::attach(engine::TrainEngine& trainer, std::shared_ptr<models::PartitionedLayers> built) {
  if (zero_stage_ >= 3) {
    trainer.set_zero3(zero3_collectives(), std::move(built), zero3_prefetch_layers_);
    return;
  }
  if (built) throw Error("data parallel group " + group_ + ": a model built partitioned needs ZeRO stage 3, not " +
                         std::to_string(zero_stage_));
  if (zero_stage_ < 2)
    trainer.set_gradient_sync(
        [self = shared_from_this()](const std::vector<torch::Tensor>& parameters) { self->average_gradients(parameters); });
  if (zero_stage_ >= 1) trainer.set_optimizer_sharding(optimizer_sharding(zero_stage_));
}

engine::Zero3Collectives DataParallel::zero3_collectives() {
  return zero3_collectives_over([self = shared_from_this()]() -> transport::Communicator& { return self->communicator(); },
                                rank_, world_);
}

int64_t DataParallel::max(int64_t value) {
  if (world_ == 1) return value;
  auto tensor = torch::tensor({value}, torch::kLong);
  communicator().all_reduce(tensor, transport::ReduceOp::kMax);
  return tensor.item<int64_t>();
}

double DataParallel::divergence(const std::vector<torch::Tensor>& parameters) {
  if (world_ == 1) return 0;
  double sum = 0;
  {
    torch::NoGradGuard no_grad;
    for (const auto& p : parameters) sum += p.to(torch::kCPU, torch::kDouble).sum().item<double>();
  }
  auto extremes = torch::tensor({sum, -sum}, torch::kDouble);  // max and -min in one all-reduce
  communicator().all_reduce(extremes, transport::ReduceOp::kMax);
  return extremes[0].item<double>() + extremes[1].item<double>();
}

struct Rendezvous::Server {
  c10::intrusive_ptr<c10d::Store> store;
};

Rendezvous::Rendezvous(std::string host, uint16_t port) : server_(std::make_unique<Server>()), host_(std::move(host)) {
  // The server counts as the only worker it waits for; ranks connect later as clients.
  server_->store = transport::make_tcp_store(host_, port, true, 1, std::chrono::minutes(5));
  port_ = transport::tcp_store_port(server_->store);
}

Rendezvous::~Rendezvous() = default;

std::string Rendezvous::address() const {
  const bool wildcard = host_ == "0.0.0.0" || host_ == "::";
  return (wildcard ? this_host_name() : host_) + ":" + std::to_string(port_);
}

}  // namespace troupe::actors

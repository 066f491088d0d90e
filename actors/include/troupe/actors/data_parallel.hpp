#pragma once
/// The ranks of one data-parallel role in separate processes: each trains on its rows,
/// and gradients are averaged by an all-reduce before every optimizer step, so the
/// ranks stay identical. By default the collectives go through shared memory when every
/// rank of the group is on one machine, else c10d's ProcessGroupGloo (as torch.distributed
/// with backend "gloo") when the build has it, else troupe's UCX ring. The ranks find each other through a c10d TCPStore that
/// the controller hosts (the rendezvous); they join on first use, so spawning rank 0
/// does not wait for rank 1.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include <troupe/engine/train_engine.hpp>
#include <troupe/models/tensor_parallel.hpp>

namespace troupe::transport {
class Communicator;
class UcxWorker;
}  // namespace troupe::transport

namespace troupe::actors {

/// Which collectives carry the all-reduces: c10d Gloo (CPU, device tensors staged
/// through the host), troupe's UCX ring, c10d NCCL (each rank on its own CUDA device),
/// shared memory (every rank on one machine; transport/shm_communicator.hpp), or auto:
/// shared memory when the group's ranks turn out to share a machine, else what
/// cross_host_collectives() says (decided at the group's join, the same on every rank).
enum class Collectives { kGloo, kUcx, kNccl, kShm, kAuto };
/// "gloo", "ucx", "nccl", "shm" or "auto"; anything else throws naming `where`.
Collectives parse_collectives(const std::string& name, const std::string& where);
std::string collectives_name(Collectives collectives);
/// Auto: shared memory within a machine, cross_host_collectives() across machines.
Collectives default_collectives();
/// Gloo when this build has c10d Gloo, else UCX.
Collectives cross_host_collectives();

/// ZeRO stage 3's collectives (engine/zero3.hpp) over the group `communicator()` returns
/// (asked on each call, so it may join lazily): rank `rank` of `world`.
engine::Zero3Collectives zero3_collectives_over(std::function<transport::Communicator&()> communicator, int rank,
                                                int world);

class DataParallel : public std::enable_shared_from_this<DataParallel> {
 public:
  /// Rank `rank` of `world` in group `group`, meeting at the TCPStore `host`:`port`.
  /// NCCL collectives run on CUDA device `cuda_device` (this rank's own).
  DataParallel(std::string host, uint16_t port, int rank, int world, std::string group,
               std::chrono::milliseconds timeout = std::chrono::minutes(5),
               Collectives collectives = default_collectives(), int cuda_device = -1);
  ~DataParallel();
  int rank() const { return rank_; }
  int world() const { return world_; }
  /// As asked (possibly kAuto); joined_collectives() says what auto became.
  Collectives collectives() const { return collectives_; }
  /// What the group's communicator runs on, once joined (before: collectives()).
  Collectives joined_collectives() const { return joined_collectives_; }
  /// ZeRO stage the group's roles train with: 0 = every rank holds all optimizer state;
  /// 1 = optimizer state partitioned over the ranks; 2 = gradients too (parameters
  /// stay whole on every rank); 3 = parameters too, in flat chunks (engine/zero3.hpp).
  int zero_stage() const { return zero_stage_; }
  void set_zero_stage(int stage) { zero_stage_ = stage; }
  /// ZeRO stage 2: gradient elements per bucket reduced during the backward (DeepSpeed's
  /// reduce_bucket_size; engine/zero2.hpp).
  int64_t reduce_bucket_size() const { return reduce_bucket_size_; }
  void set_reduce_bucket_size(int64_t elements) { reduce_bucket_size_ = elements; }
  /// ZeRO stage 3: decoder layers gathered ahead of the running one (0 = none; engine/zero3.hpp).
  int zero3_prefetch_layers() const { return zero3_prefetch_layers_; }
  void set_zero3_prefetch_layers(int layers) { zero3_prefetch_layers_ = layers; }

  /// Averages the gradients of `parameters` over the ranks in place (one flattened
  /// all-reduce per dtype). A parameter with a gradient on some rank only (its rows
  /// did not reach it there) counts zeros for the others; one with no gradient
  /// anywhere keeps none, as in a single process.
  void average_gradients(const std::vector<torch::Tensor>& parameters);
  /// In place: every rank ends with rank `root`'s `tensor`.
  void broadcast(torch::Tensor& tensor, int root);
  /// In place on `root`: the sum over the ranks (others: unspecified).
  void reduce_sum(torch::Tensor& tensor, int root);
  /// In place: the element-wise sum / maximum over the ranks.
  void all_reduce_sum(torch::Tensor& tensor);
  void all_reduce_max(torch::Tensor& tensor);
  /// input (*S) on every rank -> (W, *S), rank i's input at index i.
  torch::Tensor all_gather(const torch::Tensor& input);
  /// The optimizer sharding for a TrainEngine on this rank at stage `stage` (1 or 2).
  engine::TrainEngine::OptimizerSharding optimizer_sharding(int stage);
  /// The collectives of ZeRO stage 3 (TrainEngine::set_zero3) over this group. They keep
  /// this object alive; needs a shared_ptr owner.
  engine::Zero3Collectives zero3_collectives();
  /// Wires `trainer` to this group at zero_stage(): gradients averaged before every
  /// step (stages 0 and 1) or reduced onto their chunks' owners in buckets during the
  /// backward (stage 2, engine/zero2.hpp), optimizer state
  /// partitioned from stage 1, the parameters too at stage 3 (engine/zero3.hpp). The
  /// trainer's callbacks keep this group alive: needs a shared_ptr owner. `built`: the
  /// PartitionedLayers of a model built inside a models::PartitionedInit (stage 3).
  void attach(engine::TrainEngine& trainer, std::shared_ptr<models::PartitionedLayers> built = nullptr);
  /// Whether the ranks partition the parameters (ZeRO stage 3 on several ranks): then a
  /// model for this group is best built inside a models::PartitionedInit(rank(), world()).
  bool partitions_parameters() const { return zero_stage_ >= 3 && world_ > 1; }
  /// The largest `value` over the ranks (ranks agree on how many steps they take).
  int64_t max(int64_t value);
  /// Largest minus smallest, over the ranks, of a float64 sum of `parameters`: 0 when
  /// every rank holds the same weights. (Under ZeRO stage 3 a decoder layer's parameters
  /// are empty outside a pass: what is compared is what every rank keeps whole.)
  double divergence(const std::vector<torch::Tensor>& parameters);

  /// This rank's place in its tensor-parallel generation group of `size` ranks (ranks
  /// [g * size, (g + 1) * size) for g = rank / size), with the group's own
  /// communicator (same collectives, joined on first use). The returned all-reduce
  /// keeps this object alive. Needs a shared_ptr owner; throws when `size` does not
  /// divide the world.
  models::TensorParallelRank generation_group(int size);

 private:
  transport::Communicator& communicator();

  std::string host_;
  uint16_t port_;
  int rank_, world_;
  std::string group_;
  std::chrono::milliseconds timeout_;
  Collectives collectives_;
  Collectives joined_collectives_;
  int cuda_device_ = -1;
  int zero_stage_ = 0;
  int64_t reduce_bucket_size_ = engine::kDefaultReduceBucketElements;
  int zero3_prefetch_layers_ = engine::kDefaultZero3PrefetchLayers;
  /// Joins `name` as `rank` of `size` over this group's rendezvous and collectives.
  std::unique_ptr<transport::Communicator> join(const std::string& name, int rank, int size);

  std::shared_ptr<transport::UcxWorker> worker_;
  std::unique_ptr<transport::Communicator> communicator_;
  std::unique_ptr<transport::Communicator> generation_communicator_;
};

/// The rendezvous a controller hosts for its data-parallel roles: a c10d TCPStore
/// server listening on `host` (127.0.0.1 by default: ranks on this machine only) and
/// `port` (0: a free one), alive as long as this object.
class Rendezvous {
 public:
  explicit Rendezvous(std::string host = "127.0.0.1", uint16_t port = 0);
  ~Rendezvous();
  uint16_t port() const { return port_; }
  /// "HOST:port", the form a role spec carries; a wildcard host (0.0.0.0, ::) is
  /// advertised as this machine's host name.
  std::string address() const;

 private:
  struct Server;
  std::unique_ptr<Server> server_;
  std::string host_;
  uint16_t port_ = 0;
};

}  // namespace troupe::actors

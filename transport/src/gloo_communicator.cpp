/// Communicator over c10d::ProcessGroupGloo.
///
/// Why gloo's Debian headers are safe with the gloo inside libtorch_cpu.so, although
/// they are an older snapshot: this file only declares what ProcessGroupGloo.hpp needs
/// and calls functions libtorch exports (Options::create_default,
/// createDeviceForHostname, the constructor and the Backend virtuals). It never
/// constructs or inspects a gloo object; gloo devices travel as shared_ptr handles, and
/// ProcessGroupGloo's own size does not depend on gloo's classes (its gloo members are
/// pointers). The build compiles this file with -fvisibility-inlines-hidden so no inline
/// gloo function from these headers can interpose on libtorch's copies.
#include <troupe/transport/gloo_communicator.hpp>

#include <troupe/common/error.hpp>

#ifdef TROUPE_WITH_GLOO
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

namespace troupe::transport {

#ifdef TROUPE_WITH_GLOO
namespace {

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(c10::intrusive_ptr<c10d::Backend> backend, int rank, int size, std::string group)
      : backend_(std::move(backend)), rank_(rank), size_(size), group_(std::move(group)) {}

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce(at::Tensor& tensor, ReduceOp op) override {
    check_average(tensor, op, "all-reduce");
    auto dense = dense_host(tensor);
    std::vector<at::Tensor> tensors{dense};
    c10d::AllreduceOptions options;
    options.reduceOp = c10d_op(op);
    wait(backend_->allreduce(tensors, options), "all-reduce");
    if (op == ReduceOp::kAvg) dense.div_(size_);
    if (!dense.is_same(tensor)) tensor.copy_(dense);
  }

  at::Tensor all_gather(const at::Tensor& input) override {
    auto dense = dense_host(input);
    std::vector<at::Tensor> inputs{dense};
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int i = 0; i < size_; ++i) outputs[0].push_back(at::empty_like(dense));
    wait(backend_->allgather(outputs, inputs), "all-gather");
    return at::stack(outputs[0]).to(input.device());  // (W, *S)
  }

  at::Tensor reduce_scatter(const at::Tensor& input, ReduceOp op) override {
    if (input.dim() < 1 || input.size(0) != size_)
      throw Error(where("reduce-scatter") + ": input needs a leading dimension of " + std::to_string(size_) +
                  ", got " + c10::str(input.sizes()));
    check_average(input, op, "reduce-scatter");
    auto dense = input.to(at::kCPU).contiguous();  // (W, *S)
    std::vector<at::Tensor> outputs{at::empty_like(dense[0])};
    std::vector<std::vector<at::Tensor>> inputs(1);
    for (int i = 0; i < size_; ++i) inputs[0].push_back(dense[i]);
    c10d::ReduceScatterOptions options;
    options.reduceOp = c10d_op(op);
    wait(backend_->reduce_scatter(outputs, inputs, options), "reduce-scatter");
    if (op == ReduceOp::kAvg) outputs[0].div_(size_);
    return outputs[0].to(input.device());
  }

  void broadcast(at::Tensor& tensor, int root) override {
    if (root < 0 || root >= size_) throw Error(where("broadcast") + ": root " + std::to_string(root) + " out of range");
    auto dense = dense_host(tensor);
    std::vector<at::Tensor> tensors{dense};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    wait(backend_->broadcast(tensors, options), "broadcast");
    if (!dense.is_same(tensor)) tensor.copy_(dense);
  }

  void barrier() override { wait(backend_->barrier(), "barrier"); }

 private:
  static c10d::ReduceOp c10d_op(ReduceOp op) {
    switch (op) {
      case ReduceOp::kSum:
      case ReduceOp::kAvg: return c10d::ReduceOp::SUM;  // gloo has no AVG: sum, then divide
      case ReduceOp::kMax: return c10d::ReduceOp::MAX;
    }
    throw Error("transport: unknown reduce op");
  }

  /// `tensor` itself when gloo can use it in place (contiguous, on the CPU), else a copy.
  static at::Tensor dense_host(const at::Tensor& tensor) {
    if (tensor.device().is_cpu() && tensor.is_contiguous()) return tensor;
    return tensor.to(at::kCPU).contiguous();
  }

  void check_average(const at::Tensor& tensor, ReduceOp op, const std::string& what) const {
    if (op == ReduceOp::kAvg && !at::isFloatingType(tensor.scalar_type()))
      throw Error(where(what) + ": avg needs a floating dtype, got " + std::string(c10::toString(tensor.scalar_type())));
  }

  void wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) const {
    try {
      work->wait();
    } catch (const std::exception& error) {
      throw Error(where(what) + ": " + error.what());
    }
  }

  std::string where(const std::string& op) const {
    return "transport: gloo " + op + " in group '" + group_ + "' (rank " + std::to_string(rank_) + " of " +
           std::to_string(size_) + ")";
  }

  c10::intrusive_ptr<c10d::Backend> backend_;
  int rank_, size_;
  std::string group_;
};

}  // namespace

bool gloo_available() { return true; }

std::unique_ptr<Communicator> make_gloo_communicator(c10::intrusive_ptr<c10d::Store> store, int rank, int size,
                                                     const std::string& group, std::chrono::milliseconds timeout,
                                                     const std::string& hostname) {
  if (!store) throw Error("transport: gloo group '" + group + "' needs a store");
  if (size < 1 || rank < 0 || rank >= size)
    throw Error("transport: gloo group '" + group + "': rank " + std::to_string(rank) + " of size " +
                std::to_string(size) + " is out of range");
  try {
    auto options = c10d::ProcessGroupGloo::Options::create_default(timeout);
    options->devices = {c10d::ProcessGroupGloo::createDeviceForHostname(hostname)};
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("troupe/gloo/" + group, std::move(store));
    auto backend = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, size, options);
    return std::make_unique<GlooCommunicator>(std::move(backend), rank, size, group);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& error) {
    throw Error("transport: gloo group '" + group + "' (rank " + std::to_string(rank) + " of " +
                std::to_string(size) + ") at " + hostname + ": " + error.what());
  }
}

#else

bool gloo_available() { return false; }

std::unique_ptr<Communicator> make_gloo_communicator(c10::intrusive_ptr<c10d::Store>, int, int, const std::string& group,
                                                     std::chrono::milliseconds, const std::string&) {
  throw Error("transport: gloo group '" + group +
              "': this build has no c10d Gloo (gloo headers not found; scripts/setup installs libgloo-dev)");
}

#endif

}  // namespace troupe::transport

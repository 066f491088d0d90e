#include "c10d_backend_communicator.hpp"

#include <chrono>
#include <map>
#include <thread>
#include <utility>

#include <troupe/common/error.hpp>

namespace troupe::transport {
namespace {

c10d::ReduceOp c10d_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg: return c10d::ReduceOp::SUM;  // gloo has no AVG: sum, then divide
    case ReduceOp::kMax: return c10d::ReduceOp::MAX;
  }
  throw Error("transport: unknown reduce op");
}

}  // namespace

std::string describe_group(const std::string& name, const std::string& group, int rank, int size) {
  return "transport: " + name + " group '" + group + "' (rank " + std::to_string(rank) + " of " + std::to_string(size) +
         ")";
}

void check_rank(const std::string& name, const std::string& group, int rank, int size) {
  if (size < 1 || rank < 0 || rank >= size)
    throw Error("transport: " + name + " group '" + group + "': rank " + std::to_string(rank) + " of size " +
                std::to_string(size) + " is out of range");
}

BackendCommunicator::BackendCommunicator(c10::intrusive_ptr<c10d::Backend> backend, int rank, int size,
                                         std::string group, std::string name, at::Device device,
                                         c10::intrusive_ptr<c10d::Store> store)
    : backend_(std::move(backend)),
      rank_(rank),
      size_(size),
      group_(std::move(group)),
      name_(std::move(name)),
      device_(device),
      store_(std::move(store)) {}

void BackendCommunicator::all_reduce(at::Tensor& tensor, ReduceOp op) {
  check_average(tensor, op, "all-reduce");
  auto dense = on_backend(tensor);
  std::vector<at::Tensor> tensors{dense};
  c10d::AllreduceOptions options;
  options.reduceOp = c10d_op(op);
  wait(backend_->allreduce(tensors, options), "all-reduce");
  if (op == ReduceOp::kAvg) dense.div_(size_);
  if (!dense.is_same(tensor)) tensor.copy_(dense);
}

void BackendCommunicator::reduce(at::Tensor& tensor, ReduceOp op, int root) {
  if (root < 0 || root >= size_) throw Error(where("reduce") + ": root " + std::to_string(root) + " out of range");
  check_average(tensor, op, "reduce");
  auto dense = on_backend(tensor);
  std::vector<at::Tensor> tensors{dense};
  c10d::ReduceOptions options;
  options.reduceOp = c10d_op(op);
  options.rootRank = root;
  wait(backend_->reduce(tensors, options), "reduce");
  if (op == ReduceOp::kAvg && rank_ == root) dense.div_(size_);
  if (!dense.is_same(tensor)) tensor.copy_(dense);
}

at::Tensor BackendCommunicator::all_gather(const at::Tensor& input) {
  auto dense = on_backend(input);
  std::vector<at::Tensor> inputs{dense};
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int i = 0; i < size_; ++i) outputs[0].push_back(at::empty_like(dense));
  wait(backend_->allgather(outputs, inputs), "all-gather");
  return at::stack(outputs[0]).to(input.device());  // (W, *S)
}

/// An all-gather whose c10d Work runs on: its outputs are stacked once it is waited for.
class StartedBackendAllGather final : public StartedCollective {
 public:
  StartedBackendAllGather(const BackendCommunicator& owner, c10::intrusive_ptr<c10d::Work> work,
                          std::vector<std::vector<at::Tensor>> outputs, std::vector<at::Tensor> inputs,
                          at::Device device, int64_t op)
      : owner_(owner), work_(std::move(work)), outputs_(std::move(outputs)), inputs_(std::move(inputs)),
        device_(device), op_(op) {}

  ~StartedBackendAllGather() override {
    if (!work_) return;
    try {
      work_->wait();  // the transfer still writes into outputs_: never left running behind us
    } catch (...) {
      // Nobody is left to tell: the owner dropped it, and the other ranks see the failure themselves.
    }
  }

  at::Tensor wait() override {
    if (!work_) throw Error(owner_.where("all-gather") + ": a started all-gather was waited for twice");
    const auto work = std::exchange(work_, {});
    owner_.wait(work, "all-gather", op_);
    auto result = at::stack(outputs_[0]).to(device_);  // (W, *S)
    outputs_.clear();
    inputs_.clear();
    return result;
  }

 private:
  const BackendCommunicator& owner_;
  c10::intrusive_ptr<c10d::Work> work_;
  std::vector<std::vector<at::Tensor>> outputs_;  // [1][W] (*S) each
  std::vector<at::Tensor> inputs_;                // kept alive until the transfer ends
  at::Device device_;
  int64_t op_;
};

std::unique_ptr<StartedCollective> BackendCommunicator::start_all_gather(const at::Tensor& input) {
  auto dense = on_backend(input);
  std::vector<at::Tensor> inputs{dense};
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int i = 0; i < size_; ++i) outputs[0].push_back(at::empty_like(dense));
  const int64_t op = ++collectives_;
  auto work = backend_->allgather(outputs, inputs);
  return std::make_unique<StartedBackendAllGather>(*this, std::move(work), std::move(outputs), std::move(inputs),
                                                   input.device(), op);
}

at::Tensor BackendCommunicator::reduce_scatter(const at::Tensor& input, ReduceOp op) {
  if (input.dim() < 1 || input.size(0) != size_)
    throw Error(where("reduce-scatter") + ": input needs a leading dimension of " + std::to_string(size_) + ", got " +
                c10::str(input.sizes()));
  check_average(input, op, "reduce-scatter");
  auto dense = on_backend(input);  // (W, *S)
  std::vector<at::Tensor> outputs{at::empty_like(dense[0])};
  std::vector<std::vector<at::Tensor>> inputs(1);
  for (int i = 0; i < size_; ++i) inputs[0].push_back(dense[i]);
  c10d::ReduceScatterOptions options;
  options.reduceOp = c10d_op(op);
  wait(backend_->reduce_scatter(outputs, inputs, options), "reduce-scatter");
  if (op == ReduceOp::kAvg) outputs[0].div_(size_);
  return outputs[0].to(input.device());
}

at::Tensor BackendCommunicator::all_to_all(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                                           const std::vector<int64_t>& receive_counts) {
  check_all_to_all(input, send_counts, receive_counts, size_, where("all-to-all"));
  auto dense = on_backend(input);
  int64_t total = 0;
  for (auto n : receive_counts) total += n;
  auto output = at::empty({total}, dense.options());
  std::vector<int64_t> out_splits(receive_counts), in_splits(send_counts);
  c10d::AllToAllOptions options;
  wait(backend_->alltoall_base(output, dense, out_splits, in_splits, options), "all-to-all");
  return output.to(input.device());
}

void BackendCommunicator::broadcast(at::Tensor& tensor, int root) {
  if (root < 0 || root >= size_) throw Error(where("broadcast") + ": root " + std::to_string(root) + " out of range");
  auto dense = on_backend(tensor);
  std::vector<at::Tensor> tensors{dense};
  c10d::BroadcastOptions options;
  options.rootRank = root;
  wait(backend_->broadcast(tensors, options), "broadcast");
  if (!dense.is_same(tensor)) tensor.copy_(dense);
}

void BackendCommunicator::barrier() { wait(backend_->barrier(), "barrier"); }

at::Tensor BackendCommunicator::on_backend(const at::Tensor& tensor) const {
  if (tensor.device() == device_ && tensor.is_contiguous()) return tensor;
  return tensor.to(device_).contiguous();
}

void BackendCommunicator::check_average(const at::Tensor& tensor, ReduceOp op, const std::string& what) const {
  if (op == ReduceOp::kAvg && !at::isFloatingType(tensor.scalar_type()))
    throw Error(where(what) + ": avg needs a floating dtype, got " + std::string(c10::toString(tensor.scalar_type())));
}

void BackendCommunicator::wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) const {
  wait(work, what, ++collectives_);
}

void BackendCommunicator::wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what, int64_t op) const {
  try {
    work->wait();
  } catch (const std::exception& error) {
    throw Error(where(what) + " (collective " + std::to_string(op) + "): " + error.what() + absent_ranks(op));
  }
}

std::string BackendCommunicator::absent_ranks(int64_t op) const {
  if (!store_ || size_ < 2) return "";
  const auto key = [&](int rank) { return "troupe/arrived/" + group_ + "/" + std::to_string(rank); };
  try {
    store_->set(key(rank_), std::to_string(op));
    // The ranks that reached this collective fail at about the same time: give them a
    // moment to record it.
    std::map<int, int64_t> reached;  // rank -> the collective it last failed at
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (true) {
      for (int r = 0; r < size_; ++r)
        if (r != rank_ && !reached.count(r) && store_->check({key(r)})) {
          const auto bytes = store_->get(key(r));
          reached[r] = std::stoll(std::string(bytes.begin(), bytes.end()));
        }
      if (static_cast<int>(reached.size()) == size_ - 1 || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::string absent;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      const auto it = reached.find(r);
      if (it != reached.end() && it->second >= op) continue;
      absent += (absent.empty() ? "" : ", ") + std::to_string(r) +
                (it == reached.end() ? " (no word from it)" : " (last at collective " + std::to_string(it->second) + ")");
    }
    return absent.empty() ? "; every rank reached it (the transport failed)" : "; ranks that did not arrive: " + absent;
  } catch (const std::exception& e) {
    return std::string("; which ranks did not arrive is unknown (the rendezvous store failed: ") + e.what() + ")";
  }
}

std::string BackendCommunicator::where(const std::string& op) const {
  return "transport: " + name_ + " " + op + " in group '" + group_ + "' (rank " + std::to_string(rank_) + " of " +
         std::to_string(size_) + ")";
}

}  // namespace troupe::transport

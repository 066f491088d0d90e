#include <troupe/transport/ucx_communicator.hpp>

#include <troupe/common/error.hpp>

namespace troupe::transport {
namespace {

constexpr int kOpBits = 24;
constexpr std::int64_t kBroadcastSegmentBytes = 4 << 20;  // pipelining unit of the ring broadcast

std::uint16_t hash16(const std::string& text) {
  std::uint32_t hash = 2166136261u;  // FNV-1a
  for (unsigned char c : text) hash = (hash ^ c) * 16777619u;
  return static_cast<std::uint16_t>(hash ^ (hash >> 16));
}


/// `flat` (N) split into W nearly equal views; the first N mod W are one element longer.
std::vector<at::Tensor> split_even(const at::Tensor& flat, int parts) {
  std::vector<at::Tensor> chunks;
  auto n = flat.numel();
  std::int64_t begin = 0;
  for (int i = 0; i < parts; ++i) {
    auto length = n / parts + (i < n % parts ? 1 : 0);
    chunks.push_back(flat.narrow(0, begin, length));
    begin += length;
  }
  return chunks;
}

std::size_t nbytes(const at::Tensor& t) { return static_cast<std::size_t>(t.numel()) * t.element_size(); }

void accumulate(at::Tensor& into, const at::Tensor& other, ReduceOp op) {
  if (op == ReduceOp::kMax) {
    at::maximum_out(into, into, other);
  } else {
    into.add_(other);  // kSum and kAvg (divided once at the end)
  }
}

void finish_average(at::Tensor& tensor, ReduceOp op, int size, const std::string& where) {
  if (op != ReduceOp::kAvg) return;
  if (!at::isFloatingType(tensor.scalar_type())) {
    throw Error(where + ": avg needs a floating dtype, got " + std::string(c10::toString(tensor.scalar_type())));
  }
  tensor.div_(size);
}

/// A contiguous host tensor holding `tensor`'s values: `tensor` itself when possible.
at::Tensor host_contiguous(const at::Tensor& tensor) {
  if (tensor.device().is_cpu() && tensor.is_contiguous()) return tensor;
  return tensor.to(at::kCPU).contiguous();
}

}  // namespace

UcxCommunicator::UcxCommunicator(std::shared_ptr<UcxWorker> worker, c10::intrusive_ptr<c10d::Store> store, int rank,
                                 int size, const std::string& group, std::chrono::milliseconds timeout)
    : worker_(std::move(worker)), rank_(rank), size_(size), group_(group), timeout_(timeout), group_id_(hash16(group)) {
  if (!worker_ || !store) throw Error("transport: UcxCommunicator '" + group + "' needs a worker and a store");
  if (size < 1 || rank < 0 || rank >= size) {
    throw Error("transport: UcxCommunicator '" + group + "': rank " + std::to_string(rank) + " of size " +
                std::to_string(size) + " is out of range");
  }
  if (size_ == 1) return;
  auto key = [&](int r) { return "troupe/" + group_ + "/ucx_address/" + std::to_string(r); };
  try {
    store->set(key(rank_), worker_->address());
    auto right = store->get(key((rank_ + 1) % size_));
    auto left = store->get(key((rank_ + size_ - 1) % size_));
    right_ = &worker_->endpoint(right);
    left_ = &worker_->endpoint(left);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& error) {
    throw Error(where("rendezvous") + ": " + error.what());
  }
}

std::string UcxCommunicator::where(const std::string& op) const {
  return "transport: communicator '" + group_ + "' rank " + std::to_string(rank_) + "/" + std::to_string(size_) + " " + op;
}

ucp_tag_t UcxCommunicator::tag(std::uint64_t step) const {
  auto stream = (std::uint64_t{group_id_} << kOpBits) | (op_count_ & ((1u << kOpBits) - 1));
  return UcxTag::make(UcxTag::kCollective, stream, step);
}

void UcxCommunicator::ring_exchange(const at::Tensor& send, at::Tensor& receive, std::uint64_t step,
                                    const std::string& what) {
  std::vector<UcxRequest> requests;
  requests.push_back(worker_->receive(receive.data_ptr(), nbytes(receive), tag(step), ~ucp_tag_t{0},
                                      UCS_MEMORY_TYPE_HOST, what + " step " + std::to_string(step) + " receive", left_));
  requests.push_back(worker_->send(*right_, send.data_ptr(), nbytes(send), tag(step), UCS_MEMORY_TYPE_HOST,
                                   what + " step " + std::to_string(step) + " send"));
  worker_->wait_all(requests, deadline_after(timeout_));
}

void UcxCommunicator::ring_reduce_scatter(std::vector<at::Tensor>& chunks, ReduceOp op, int shift, std::uint64_t& step) {
  auto what = where("reduce-scatter");
  for (int s = 0; s < size_ - 1; ++s) {
    auto send_index = ((rank_ - s + shift) % size_ + size_) % size_;
    auto receive_index = ((rank_ - s - 1 + shift) % size_ + size_) % size_;
    auto incoming = at::empty_like(chunks[receive_index]);
    ring_exchange(chunks[send_index], incoming, step++, what);
    accumulate(chunks[receive_index], incoming, op);
  }
}

void UcxCommunicator::ring_all_gather(std::vector<at::Tensor>& chunks, int shift, std::uint64_t& step) {
  auto what = where("all-gather");
  for (int s = 0; s < size_ - 1; ++s) {
    auto send_index = ((rank_ + 1 + shift - s) % size_ + size_) % size_;
    auto receive_index = ((rank_ + shift - s) % size_ + size_) % size_;
    ring_exchange(chunks[send_index], chunks[receive_index], step++, what);
  }
}

void UcxCommunicator::all_reduce(at::Tensor& tensor, ReduceOp op) {
  if (size_ > 1) {
    auto work = host_contiguous(tensor);
    auto flat = work.view(-1);  // (N)
    auto chunks = split_even(flat, size_);
    std::uint64_t step = 0;
    ring_reduce_scatter(chunks, op, 0, step);
    ring_all_gather(chunks, 0, step);
    ++op_count_;
    if (!work.is_same(tensor)) tensor.copy_(work);
  }
  finish_average(tensor, op, size_, where("all-reduce"));
}

void UcxCommunicator::reduce(at::Tensor& tensor, ReduceOp op, int root) {
  if (root < 0 || root >= size_) throw Error(where("reduce") + ": root " + std::to_string(root) + " out of range");
  all_reduce(tensor, op);
}

at::Tensor UcxCommunicator::all_gather(const at::Tensor& input) {
  auto sizes = input.sizes().vec();
  sizes.insert(sizes.begin(), size_);
  auto output = at::empty(sizes, input.options().device(at::kCPU));  // (W, *S)
  output[rank_].copy_(input);
  if (size_ > 1) {
    auto chunks = output.unbind(0);
    std::vector<at::Tensor> views(chunks.begin(), chunks.end());
    std::uint64_t step = 0;
    ring_all_gather(views, -1, step);
    ++op_count_;
  }
  return input.device().is_cpu() ? output : output.to(input.device());
}

at::Tensor UcxCommunicator::reduce_scatter(const at::Tensor& input, ReduceOp op) {
  if (input.dim() < 1 || input.size(0) != size_) {
    throw Error(where("reduce-scatter") + ": input needs a leading dimension of " + std::to_string(size_) +
                " (one slice per rank), got " + c10::str(input.sizes()));
  }
  auto work = input.to(at::kCPU).contiguous().clone();  // (W, *S), reduced in place
  auto chunks = work.unbind(0);
  std::vector<at::Tensor> views(chunks.begin(), chunks.end());
  if (size_ > 1) {
    std::uint64_t step = 0;
    ring_reduce_scatter(views, op, -1, step);
    ++op_count_;
  }
  auto result = views[rank_];  // (*S)
  finish_average(result, op, size_, where("reduce-scatter"));
  return input.device().is_cpu() ? result : result.to(input.device());
}

void UcxCommunicator::broadcast(at::Tensor& tensor, int root) {
  if (root < 0 || root >= size_) throw Error(where("broadcast") + ": root " + std::to_string(root) + " out of range");
  if (size_ == 1) return;
  auto work = host_contiguous(tensor);
  auto bytes = work.view(-1).view(at::kByte);  // (N * element size)
  auto total = bytes.numel();
  auto segments = std::max<std::int64_t>(1, (total + kBroadcastSegmentBytes - 1) / kBroadcastSegmentBytes);
  bool forwards = (rank_ + 1) % size_ != root;
  auto what = where("broadcast");
  auto deadline = deadline_after(timeout_);

  std::vector<UcxRequest> receives;
  std::vector<UcxRequest> sends;
  std::vector<at::Tensor> pieces;
  for (std::int64_t s = 0; s < segments; ++s) {
    auto begin = s * kBroadcastSegmentBytes;
    pieces.push_back(bytes.narrow(0, begin, std::min(kBroadcastSegmentBytes, total - begin)));
  }
  // Posts every receive first, then forwards each segment as soon as it lands.
  if (rank_ != root) {
    for (std::int64_t s = 0; s < segments; ++s) {
      receives.push_back(worker_->receive(pieces[s].data_ptr(), nbytes(pieces[s]), tag(s), ~ucp_tag_t{0},
                                          UCS_MEMORY_TYPE_HOST, what + " segment " + std::to_string(s), left_));
    }
  }
  try {
    for (std::int64_t s = 0; s < segments; ++s) {
      if (rank_ != root) worker_->wait(receives[s], deadline);
      if (rank_ == root || forwards) {
        sends.push_back(worker_->send(*right_, pieces[s].data_ptr(), nbytes(pieces[s]), tag(s), UCS_MEMORY_TYPE_HOST,
                                      what + " segment " + std::to_string(s)));
      }
    }
  } catch (...) {
    try {
      worker_->wait_all(receives, Clock::now());
    } catch (const Error&) {
    }
    throw;
  }
  worker_->wait_all(sends, deadline);
  ++op_count_;
  if (!work.is_same(tensor)) tensor.copy_(work);
}

void UcxCommunicator::barrier() {
  auto token = at::ones({1}, at::kInt);
  all_reduce(token, ReduceOp::kSum);
  if (token.item<int>() != size_) throw Error(where("barrier") + ": expected " + std::to_string(size_) + " ranks");
}

}  // namespace troupe::transport

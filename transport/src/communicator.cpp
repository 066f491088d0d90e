#include <troupe/transport/communicator.hpp>

#include <algorithm>
#include <utility>

#include <troupe/common/error.hpp>

namespace troupe::transport {

std::string reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kAvg: return "avg";
    case ReduceOp::kMax: return "max";
  }
  return "unknown";
}

namespace {

int64_t sum_of(const std::vector<int64_t>& counts) {
  int64_t total = 0;
  for (auto n : counts) total += n;
  return total;
}

/// A collective that finished before it was handed back (Communicator's defaults).
class FinishedCollective final : public StartedCollective {
 public:
  explicit FinishedCollective(at::Tensor result) : result_(std::move(result)) {}
  at::Tensor wait() override {
    if (!result_.defined()) throw Error("transport: a started collective was waited for twice");
    return std::exchange(result_, at::Tensor());
  }

 private:
  at::Tensor result_;
};

}  // namespace

std::unique_ptr<StartedCollective> Communicator::start_all_gather(const at::Tensor& input) {
  return std::make_unique<FinishedCollective>(all_gather(input));
}

void check_all_to_all(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                      const std::vector<int64_t>& receive_counts, int size, const std::string& where) {
  if (static_cast<int>(send_counts.size()) != size || static_cast<int>(receive_counts.size()) != size)
    throw Error(where + ": all-to-all needs " + std::to_string(size) + " send and receive counts, got " +
                std::to_string(send_counts.size()) + " and " + std::to_string(receive_counts.size()));
  if (input.dim() != 1 || input.numel() != sum_of(send_counts))
    throw Error(where + ": all-to-all input of " + std::to_string(input.numel()) + " elements (" +
                std::to_string(input.dim()) + "-D) for send counts summing to " + std::to_string(sum_of(send_counts)));
}

at::Tensor Communicator::all_to_all(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                                    const std::vector<int64_t>& receive_counts) {
  const int world = size(), me = rank();
  check_all_to_all(input, send_counts, receive_counts, world, "transport");
  // Everyone's counts, then everyone's input padded to the longest.
  auto counts = all_gather(at::tensor(send_counts, at::kLong));  // (W, W): [s][d] = s sends to d
  auto counts_cpu = counts.cpu().contiguous();
  const auto* c = counts_cpu.data_ptr<int64_t>();
  int64_t longest = 0;
  for (int s = 0; s < world; ++s) {
    int64_t total = 0;
    for (int d = 0; d < world; ++d) total += c[s * world + d];
    longest = std::max(longest, total);
  }
  if (longest == 0) return at::empty({0}, input.options());  // nobody sends anything
  auto padded = at::zeros({longest}, input.options());
  padded.narrow(0, 0, input.numel()).copy_(input);
  auto everyone = all_gather(padded);  // (W, longest)
  std::vector<at::Tensor> parts;
  for (int s = 0; s < world; ++s) {
    int64_t offset = 0;
    for (int d = 0; d < me; ++d) offset += c[s * world + d];
    const int64_t n = c[s * world + me];
    if (n != receive_counts[static_cast<size_t>(s)])
      throw Error("transport: all-to-all: rank " + std::to_string(s) + " sends " + std::to_string(n) + " elements to rank " +
                  std::to_string(me) + ", which expects " + std::to_string(receive_counts[static_cast<size_t>(s)]));
    parts.push_back(everyone[s].narrow(0, offset, n));
  }
  return at::cat(parts);
}

void Communicator::all_gather_into(const at::Tensor& input, at::Tensor& output) {
  if (output.numel() != input.numel() * size())
    throw Error("transport: all-gather into " + std::to_string(output.numel()) + " elements of " +
                std::to_string(input.numel()) + " from each of " + std::to_string(size()) + " ranks");
  output.copy_(all_gather(input).reshape(output.sizes()));
}

void Communicator::all_to_all_into(const at::Tensor& input, const std::vector<int64_t>& send_counts, at::Tensor& output,
                                   const std::vector<int64_t>& receive_counts) {
  if (output.numel() != sum_of(receive_counts))
    throw Error("transport: all-to-all into " + std::to_string(output.numel()) + " elements for receive counts summing to " +
                std::to_string(sum_of(receive_counts)));
  output.copy_(all_to_all(input, send_counts, receive_counts).reshape(output.sizes()));
}

void Communicator::all_to_all_streams(const AllToAllStreams& streams) {
  const int world = size();
  if (static_cast<int>(streams.send_counts.size()) != world || static_cast<int>(streams.receive_counts.size()) != world)
    throw Error("transport: all-to-all streams need " + std::to_string(world) + " send and receive counts, got " +
                std::to_string(streams.send_counts.size()) + " and " + std::to_string(streams.receive_counts.size()));
  const auto options = at::TensorOptions().dtype(streams.dtype);
  auto send = at::empty({sum_of(streams.send_counts)}, options);  // (sum of send_counts)
  auto receive = at::empty({sum_of(streams.receive_counts)}, options);  // (sum of receive_counts)
  const int64_t element = send.element_size();
  int64_t at = 0;
  for (int d = 0; d < world; ++d) {
    const int64_t n = streams.send_counts[static_cast<size_t>(d)];
    if (n > 0) streams.pack(d, 0, n, static_cast<char*>(send.data_ptr()) + at * element);
    at += n;
  }
  all_to_all_into(send, streams.send_counts, receive, streams.receive_counts);
  at = 0;
  for (int s = 0; s < world; ++s) {
    const int64_t n = streams.receive_counts[static_cast<size_t>(s)];
    if (n > 0) streams.unpack(s, 0, n, static_cast<const char*>(receive.data_ptr()) + at * element);
    at += n;
  }
}

at::Tensor reference_reduce(const std::vector<at::Tensor>& inputs, ReduceOp op) {
  if (inputs.empty()) throw Error("transport: reference_reduce needs at least one input");
  auto stacked = at::stack(inputs);  // (W, *S)
  switch (op) {
    case ReduceOp::kSum: return stacked.sum(0, false, inputs[0].scalar_type());
    case ReduceOp::kAvg: return stacked.sum(0, false, inputs[0].scalar_type()) / static_cast<double>(inputs.size());
    case ReduceOp::kMax: return std::get<0>(stacked.max(0));
  }
  throw Error("transport: unknown reduce op");
}

}  // namespace troupe::transport

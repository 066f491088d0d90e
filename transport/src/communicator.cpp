#include <troupe/transport/communicator.hpp>

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

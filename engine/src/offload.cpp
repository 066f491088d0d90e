#include <troupe/engine/offload.hpp>

#include <troupe/common/error.hpp>

namespace troupe::engine {

std::string offload_note(const std::string& what, const torch::Device& device) {
  if (device.is_cpu())
    return what + ": a no-op on the CPU: the optimizer state, the fp32 master weights and the parameters already "
                  "live in host memory";
  throw Error(what + ": offloading to host memory from " + device.str() +
              " is not implemented yet; run without it (ZeRO stage 3 partitions the parameters, gradients and "
              "optimizer state over the ranks instead)");
}

}  // namespace troupe::engine

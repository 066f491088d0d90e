#pragma once
/// ZeRO-Offload (DeepSpeed-Chat's --offload, a topology's offload_optimizer and
/// offload_params): keeping the optimizer state and fp32 master weights, or the
/// parameters, in host memory while the model computes on a GPU.
#include <string>

#include <torch/types.h>

namespace troupe::engine {

/// What offloading `what` (e.g. "--offload (actor, critic)") means on `device`: on the
/// CPU a no-op, said in the returned log line, since everything already lives in host
/// memory. On an accelerator it is not built yet: throws troupe::Error naming `what`,
/// rather than accepting the setting and ignoring it.
std::string offload_note(const std::string& what, const torch::Device& device);

}  // namespace troupe::engine

#pragma once
/// `--device` and `--dtype`, shared by every command that runs a model.
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <torch/cuda.h>
#include <torch/types.h>

#include <troupe/common/error.hpp>

namespace troupe::apps {

struct DeviceFlags {
  std::string device_name = "cpu";
  std::string dtype_name = "fp32";

  torch::Device device() const {
    if (device_name == "cuda" && !torch::cuda::is_available())
      throw Error("--device cuda: no CUDA device is available (build with TROUPE_CUDA and run on a GPU machine)");
    return torch::Device(device_name);
  }
  torch::ScalarType dtype() const {
    if (dtype_name == "fp16") return torch::kFloat16;
    if (dtype_name == "bf16") return torch::kBFloat16;
    return torch::kFloat32;
  }
};

inline void add_device_flags(CLI::App& cmd, DeviceFlags& flags) {
  cmd.add_option("--device", flags.device_name, "cpu, cuda or cuda:N")
      ->capture_default_str()
      ->check([](const std::string& v) {
        return (v == "cpu" || v == "cuda" || v.rfind("cuda:", 0) == 0) ? std::string() : "expected cpu, cuda or cuda:N";
      });
  cmd.add_option("--dtype", flags.dtype_name, "Parameter dtype")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
}

}  // namespace troupe::apps

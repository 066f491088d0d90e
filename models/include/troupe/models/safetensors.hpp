#pragma once
/// safetensors files and Hugging Face checkpoint directories (single file or sharded
/// through `model.safetensors.index.json`).
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include <torch/types.h>

namespace troupe::models {

/// Tensors by Hugging Face parameter name, sorted by name.
using TensorMap = std::map<std::string, torch::Tensor>;

/// Reads every tensor of one `.safetensors` file into owned, contiguous CPU tensors.
/// Throws troupe::Error naming the file and the problem for a truncated or corrupt
/// file (header length, JSON, dtype, shape, offsets).
TensorMap read_safetensors(const std::filesystem::path& file);

/// Writes tensors (any device; F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL) to
/// `file` through a temporary name renamed into place.
void write_safetensors(const std::filesystem::path& file, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

/// Reads the weights of a Hugging Face model directory: `model.safetensors`, or the
/// shards listed by `model.safetensors.index.json`.
TensorMap read_checkpoint(const std::filesystem::path& dir);

/// Writes weights as a Hugging Face model directory would hold them: one
/// `model.safetensors`, or shards of at most `max_shard_bytes` plus the index.
void write_checkpoint(const std::filesystem::path& dir, const TensorMap& tensors,
                      int64_t max_shard_bytes = int64_t{5} << 30);

}  // namespace troupe::models

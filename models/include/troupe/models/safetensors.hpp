#pragma once
/// safetensors files and Hugging Face checkpoint directories (single file or sharded
/// through `model.safetensors.index.json`).
#include <cstdint>
#include <filesystem>
#include <functional>
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

/// As read_safetensors, but the tensors are read-only views of the file mapped into
/// memory (copies only where a tensor's bytes are misaligned for its dtype): nothing is
/// read until used, and the mapping lives while any view does. For loading a model,
/// whose parameters then hold the only copy; never write into the views.
TensorMap map_safetensors(const std::filesystem::path& file);

/// Drops the pages of a map_safetensors view from this process's memory once they have
/// been copied (they are read from the file again if the view is used). Nothing for a
/// tensor that owns its memory.
void release_mapped_pages(const torch::Tensor& tensor);

/// What a writer calls for each tensor just before its bytes go out: the tensor to write
/// in place of `stored` (same shape and dtype), e.g. computed now so that a whole model of
/// them never exists at once. Unset: `stored` as it is.
using TensorMaterializer = std::function<torch::Tensor(const std::string& name, const torch::Tensor& stored)>;

/// Writes tensors (any device; F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL) to
/// `file` through a temporary name renamed into place.
void write_safetensors(const std::filesystem::path& file, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}},
                       const TensorMaterializer& materialize = {});

/// Reads the weights of a Hugging Face model directory: `model.safetensors`, or the
/// shards listed by `model.safetensors.index.json`.
TensorMap read_checkpoint(const std::filesystem::path& dir);
/// As read_checkpoint, with map_safetensors views of the file or of every shard.
TensorMap map_checkpoint(const std::filesystem::path& dir);

/// Writes weights as a Hugging Face model directory would hold them: one
/// `model.safetensors`, or shards of at most `max_shard_bytes` plus the index.
void write_checkpoint(const std::filesystem::path& dir, const TensorMap& tensors,
                      int64_t max_shard_bytes = int64_t{5} << 30, const TensorMaterializer& materialize = {});

}  // namespace troupe::models

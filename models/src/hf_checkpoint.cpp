/// Hugging Face checkpoint directories: one `model.safetensors`, or shards named
/// `model-00001-of-0000N.safetensors` listed by `model.safetensors.index.json`, laid out
/// as transformers' `save_pretrained` writes them so either side can read the other's.
#include <troupe/models/safetensors.hpp>

#include <cctype>
#include <cstdio>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>

namespace troupe::models {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

std::string shard_file_name(size_t index, size_t count) {
  char name[64];
  std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return name;
}

/// Matches `model-DDDDD-of-DDDDD.safetensors`, the names transformers gives shards.
bool is_shard_file_name(const std::string& name) {
  const std::string pattern = "model-#####-of-#####.safetensors";
  if (name.size() != pattern.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const bool ok = pattern[i] == '#' ? std::isdigit(static_cast<unsigned char>(name[i])) != 0 : name[i] == pattern[i];
    if (!ok) return false;
  }
  return true;
}

uint64_t tensor_bytes(const torch::Tensor& t) {
  return static_cast<uint64_t>(t.numel()) * static_cast<uint64_t>(t.element_size());
}

/// A shard name from an index must stay inside the checkpoint directory.
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

/// `mapped`: the shards as map_safetensors views (each tensor's pages dropped once a
/// loader copies it), else read a shard at a time into owned memory.
TensorMap read_sharded(const fs::path& dir, const fs::path& index_file, bool mapped) {
  const auto where = index_file.string() + ": ";
  auto index = nlohmann::json::parse(read_file(index_file), nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded()) throw Error(where + "not valid JSON");
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    throw Error(where + "no 'weight_map' object (tensor name -> shard file)");

  std::map<std::string, std::vector<std::string>> names_by_shard;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (!shard.is_string() || !is_plain_file_name(shard.get<std::string>()))
      throw Error(where + "tensor '" + name + "' maps to " + shard.dump() +
                  ", not a file name in the checkpoint directory");
    names_by_shard[shard.get<std::string>()].push_back(name);
  }
  if (names_by_shard.empty()) throw Error(where + "'weight_map' lists no tensors");

  TensorMap tensors;
  for (const auto& [shard, names] : names_by_shard) {
    const fs::path shard_path = dir / shard;
    if (!fs::is_regular_file(shard_path))
      throw Error(where + "shard '" + shard + "' (listed for tensor '" + names.front() +
                  "') is missing from " + dir.string());
    auto shard_tensors = mapped ? map_safetensors(shard_path) : read_safetensors(shard_path);
    for (const auto& name : names) {
      auto it = shard_tensors.find(name);
      if (it == shard_tensors.end())
        throw Error(where + "tensor '" + name + "' is listed in shard '" + shard + "' but missing from it");
      tensors.emplace(name, std::move(it->second));
    }
  }
  return tensors;
}

/// Splits tensors, in name order, into shards of at most `max_bytes` as huggingface_hub
/// does: a tensor starts a new shard when it would overflow the current one, and a
/// tensor larger than `max_bytes` gets a shard of its own.
std::vector<TensorMap> plan_shards(const TensorMap& tensors, uint64_t max_bytes) {
  std::vector<TensorMap> shards;
  uint64_t current = 0;
  for (const auto& [name, tensor] : tensors) {
    const uint64_t bytes = tensor_bytes(tensor);
    if (shards.empty() || current + bytes > max_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().emplace(name, tensor);
    current += bytes;
  }
  return shards;
}

/// Removes weight files a previous save left that the new one did not write, so a reader
/// never mixes two saves (it would prefer a stale `model.safetensors` to a new index).
void remove_stale_weights(const fs::path& dir, const std::set<std::string>& written) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const bool is_weights = name == kSingleFile || name == kIndexFile || is_shard_file_name(name);
    if (!is_weights || written.count(name) > 0 || !entry.is_regular_file()) continue;
    std::error_code ec;
    fs::remove(entry.path(), ec);
    if (ec) throw Error(entry.path().string() + ": cannot remove stale weights of a previous save: " + ec.message());
  }
}

}  // namespace

TensorMap read_checkpoint(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw Error(dir.string() + ": not a directory (expected a Hugging Face model directory)");
  if (fs::exists(dir / kSingleFile)) return read_safetensors(dir / kSingleFile);
  if (fs::exists(dir / kIndexFile)) return read_sharded(dir, dir / kIndexFile, false);
  throw Error(dir.string() + ": no model weights: looked for " + kSingleFile + " and " + kIndexFile +
              " (pytorch_model.bin is not supported: convert it to safetensors)");
}

TensorMap map_checkpoint(const fs::path& dir) {
  if (fs::is_directory(dir) && fs::exists(dir / kSingleFile)) return map_safetensors(dir / kSingleFile);
  if (fs::is_directory(dir) && fs::exists(dir / kIndexFile)) return read_sharded(dir, dir / kIndexFile, true);
  return read_checkpoint(dir);  // its errors
}

void write_checkpoint(const fs::path& dir, const TensorMap& tensors, int64_t max_shard_bytes,
                      const TensorMaterializer& materialize) {
  if (max_shard_bytes <= 0)
    throw Error(dir.string() + ": max_shard_bytes must be positive, got " + std::to_string(max_shard_bytes));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir.string() + ": cannot create directory: " + ec.message());

  uint64_t total_bytes = 0;
  int64_t total_parameters = 0;
  for (const auto& [name, tensor] : tensors) {
    if (tensor.defined()) {
      total_bytes += tensor_bytes(tensor);
      total_parameters += tensor.numel();
    }
  }
  const std::map<std::string, std::string> metadata{{"format", "pt"}};
  std::set<std::string> written;
  if (total_bytes <= static_cast<uint64_t>(max_shard_bytes)) {
    write_safetensors(dir / kSingleFile, tensors, metadata, materialize);
    written.insert(kSingleFile);
  } else {
    auto shards = plan_shards(tensors, static_cast<uint64_t>(max_shard_bytes));
    nlohmann::json weight_map = nlohmann::json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string name = shard_file_name(i, shards.size());
      write_safetensors(dir / name, shards[i], metadata, materialize);
      written.insert(name);
      for (const auto& entry : shards[i]) weight_map[entry.first] = name;
    }
    // The index goes last: until it is in place, readers see the previous save whole.
    nlohmann::json index = {
        {"metadata", {{"total_parameters", total_parameters}, {"total_size", total_bytes}}},
        {"weight_map", weight_map}};
    write_file_atomically(dir / kIndexFile, index.dump(2) + "\n");
    written.insert(kIndexFile);
  }
  remove_stale_weights(dir, written);
}

}  // namespace troupe::models

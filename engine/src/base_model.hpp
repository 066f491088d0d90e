#pragma once
/// The frozen base a LoRA checkpoint trains on, as the checkpoint records it: the
/// directory and, for each file that defines the weights, its size and XXH64 content
/// hash, so that resume can tell a changed or missing base from the one trained on.
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace troupe::engine {

struct BaseModelFile {
  std::string name;   ///< within the directory, e.g. "model.safetensors"
  int64_t size = 0;   ///< bytes
  std::string xxh64;  ///< content hash, 16 hex digits
};

struct BaseModelFingerprint {
  std::filesystem::path dir;  ///< absolute
  /// config.json, model.safetensors.index.json when sharded, every *.safetensors; by name.
  std::vector<BaseModelFile> files;
  /// The tensors the safetensors files hold (from their headers).
  std::set<std::string> tensor_names;
};

/// Reads every file of the base once (hashing runs at about disk or memory speed); a
/// file already hashed in this process with the same size and modification time is not
/// read again, so periodic checkpoints cost a stat per file. Throws troupe::Error naming
/// the directory when it holds no safetensors weights.
BaseModelFingerprint fingerprint_base_model(const std::filesystem::path& dir);

/// {"dir": ..., "files": [{"name", "size", "xxh64"}]}, what state.json keeps.
nlohmann::json base_model_json(const BaseModelFingerprint& base);
/// The fingerprint of base_model_json(); `where` names the file in errors.
BaseModelFingerprint base_model_from_json(const nlohmann::json& j, const std::string& where);

/// Checks that the base directory still holds the files `recorded` names with the same
/// sizes and hashes, and returns its tensor names; throws troupe::Error naming the
/// checkpoint and the file that is missing or differs.
std::set<std::string> verify_base_model(const BaseModelFingerprint& recorded, const std::string& checkpoint);

}  // namespace troupe::engine

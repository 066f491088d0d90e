#include "base_model.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/xxh64.hpp>

namespace fs = std::filesystem;

namespace troupe::engine {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// The files whose bytes decide the base's weights, sorted by name.
std::vector<std::string> weight_files(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const auto name = entry.path().filename().string();
    if (!entry.is_regular_file()) continue;
    if (name == "config.json" || name == "model.safetensors.index.json" || ends_with(name, ".safetensors"))
      names.push_back(name);
  }
  if (ec) throw Error(dir.string() + ": cannot list the base model directory: " + ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

struct HashedFile {
  int64_t size = 0;
  std::string xxh64;
  std::vector<std::string> tensor_names;  // safetensors files only
};

/// The tensor names of a safetensors header: 8 bytes little-endian length, then JSON.
std::vector<std::string> header_names(const std::string& header, const fs::path& file) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {
    throw Error(file.string() + ": the safetensors header is not JSON: " + e.what());
  }
  std::vector<std::string> names;
  for (const auto& item : j.items())
    if (item.key() != "__metadata__") names.push_back(item.key());
  return names;
}

HashedFile hash_file(const fs::path& file) {
  std::unique_ptr<FILE, int (*)(FILE*)> in(std::fopen(file.c_str(), "rb"), &std::fclose);
  if (!in) throw Error(file.string() + ": cannot open for reading");
  HashedFile out;
  Xxh64 hash;
  std::vector<char> chunk(size_t{4} << 20);
  std::string head;  // the first bytes, enough for a safetensors header
  uint64_t header_length = 0;
  const bool safetensors = ends_with(file.filename().string(), ".safetensors");
  for (size_t got; (got = std::fread(chunk.data(), 1, chunk.size(), in.get())) > 0;) {
    hash.update(chunk.data(), got);
    if (safetensors && (out.size < 8 || static_cast<uint64_t>(out.size) < 8 + header_length)) {
      head.append(chunk.data(), got);
      if (head.size() >= 8 && header_length == 0) {
        for (int i = 7; i >= 0; --i) header_length = header_length << 8 | static_cast<unsigned char>(head[static_cast<size_t>(i)]);
        if (header_length == 0 || header_length > (uint64_t{100} << 20))
          throw Error(file.string() + ": not a safetensors file (header length " + std::to_string(header_length) + ")");
      }
    }
    out.size += static_cast<int64_t>(got);
  }
  if (std::ferror(in.get())) throw Error(file.string() + ": read failed");
  if (safetensors) {
    if (head.size() < 8 + header_length) throw Error(file.string() + ": truncated safetensors header");
    out.tensor_names = header_names(head.substr(8, header_length), file);
  }
  out.xxh64 = hash.hex();
  return out;
}

/// hash_file() once per file version in this process: periodic checkpoints of one run
/// stat the base instead of reading it again.
HashedFile hash_file_cached(const fs::path& file) {
  static std::mutex mutex;
  static std::map<std::tuple<std::string, uintmax_t, int64_t>, HashedFile> cache;
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  if (ec) throw Error(file.string() + ": " + ec.message());
  const auto mtime = fs::last_write_time(file, ec).time_since_epoch().count();
  if (ec) throw Error(file.string() + ": " + ec.message());
  const auto key = std::make_tuple(file.string(), size, static_cast<int64_t>(mtime));
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  auto hashed = hash_file(file);
  std::lock_guard<std::mutex> lock(mutex);
  cache[key] = hashed;
  return hashed;
}

}  // namespace

BaseModelFingerprint fingerprint_base_model(const fs::path& dir) {
  BaseModelFingerprint base;
  base.dir = fs::absolute(dir).lexically_normal();
  for (const auto& name : weight_files(base.dir)) {
    auto hashed = hash_file_cached(base.dir / name);
    base.files.push_back({name, hashed.size, hashed.xxh64});
    base.tensor_names.insert(hashed.tensor_names.begin(), hashed.tensor_names.end());
  }
  if (base.tensor_names.empty())
    throw Error(base.dir.string() + ": no safetensors weights in the base model directory");
  return base;
}

nlohmann::json base_model_json(const BaseModelFingerprint& base) {
  nlohmann::json files = nlohmann::json::array();
  for (const auto& f : base.files) files.push_back({{"name", f.name}, {"size", f.size}, {"xxh64", f.xxh64}});
  return {{"dir", base.dir.string()}, {"files", files}};
}

BaseModelFingerprint base_model_from_json(const nlohmann::json& j, const std::string& where) {
  BaseModelFingerprint base;
  try {
    base.dir = j.at("dir").get<std::string>();
    for (const auto& f : j.at("files"))
      base.files.push_back({f.at("name").get<std::string>(), f.at("size").get<int64_t>(), f.at("xxh64").get<std::string>()});
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": field base_model: " + e.what());
  }
  if (base.files.empty()) throw Error(where + ": field base_model lists no files");
  return base;
}

std::set<std::string> verify_base_model(const BaseModelFingerprint& recorded, const std::string& checkpoint) {
  const auto why = " (the checkpoint's adapters were trained on it; restore the base it was written against)";
  std::set<std::string> names;
  for (const auto& f : recorded.files) {
    const auto file = recorded.dir / f.name;
    if (!fs::exists(file)) throw Error(checkpoint + ": the base model file " + file.string() + " is missing" + why);
    const auto now = hash_file_cached(file);
    if (now.size != f.size)
      throw Error(checkpoint + ": the base model file " + file.string() + " has " + std::to_string(now.size) +
                  " bytes, " + std::to_string(f.size) + " when checkpointed" + why);
    if (now.xxh64 != f.xxh64)
      throw Error(checkpoint + ": the base model file " + file.string() + " has changed (xxh64 " + now.xxh64 + ", " +
                  f.xxh64 + " when checkpointed)" + why);
    names.insert(now.tensor_names.begin(), now.tensor_names.end());
  }
  return names;
}

}  // namespace troupe::engine

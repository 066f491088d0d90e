/// Staging a role's files on a node: what the controller offers, what the node keeps.
#include "file_staging.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include <troupe/common/error.hpp>

namespace troupe::actors {
namespace fs = std::filesystem;
namespace {

/// `file` under `base`: base itself for "" (the path is a file).
fs::path under(const fs::path& base, const std::string& file) { return file.empty() ? base : base / file; }

/// Where the controller's absolute path `absolute` lives under `root`.
fs::path staged_location(const fs::path& root, const std::string& absolute) {
  return root / fs::path(absolute).relative_path();
}

/// True when `path` climbs out of where it is put ("..").
bool climbs(const fs::path& path) {
  for (const auto& part : path)
    if (part == "..") return true;
  return false;
}

bool has_file(const fs::path& path, uint64_t size) {
  std::error_code error;
  return fs::is_regular_file(path, error) && fs::file_size(path, error) == size && !error;
}

}  // namespace

const std::vector<std::string>& staged_options() {
  static const std::vector<std::string> options = {"model", "tokenizer", "unsupervised_data"};
  return options;
}

StageRequest staging_request(const RoleSpec& spec) {
  StageRequest request;
  for (const auto& key : staged_options()) {
    auto found = spec.options.find(key);
    if (found == spec.options.end() || found->second.empty()) continue;
    std::error_code error;
    const fs::path path = found->second;
    if (!fs::exists(path, error)) continue;  // not a path here: the factory will say so
    StagedPath staged;
    staged.option_value = found->second;
    staged.absolute = fs::absolute(path).lexically_normal().string();
    if (fs::is_directory(path)) {
      // A Hugging Face directory is flat: config, weights, tokenizer files. Training
      // leftovers beside them (checkpoint/, tensorboard/, metrics) are not read.
      for (const auto& entry : fs::directory_iterator(path)) {
        const auto extension = entry.path().extension();
        if (!entry.is_regular_file() || extension == ".jsonl" || extension == ".log") continue;
        staged.files.push_back(entry.path().filename().string());
      }
      std::sort(staged.files.begin(), staged.files.end());
    } else {
      staged.files.push_back("");
    }
    for (const auto& file : staged.files) staged.sizes.push_back(fs::file_size(under(path, file)));
    request.paths.push_back(std::move(staged));
  }
  return request;
}

void for_each_chunk(const std::string& path, const std::function<void(FileChunk&)>& send, uint64_t chunk_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("staging: cannot read " + path);
  const uint64_t size = fs::file_size(path);
  uint64_t offset = 0;
  do {  // an empty file still sends one (empty) chunk, so the node creates it
    FileChunk chunk;
    chunk.path = path;
    chunk.offset = offset;
    chunk.size = size;
    chunk.bytes.resize(static_cast<size_t>(std::min<uint64_t>(chunk_bytes, size - offset)));
    if (!in.read(chunk.bytes.data(), static_cast<std::streamsize>(chunk.bytes.size())))
      throw Error("staging: reading " + path + " failed at byte " + std::to_string(offset));
    offset += chunk.bytes.size();
    send(chunk);
  } while (offset < size);
}

StagingArea::StagingArea(fs::path root) : root_(std::move(root)) {}

fs::path StagingArea::default_root() {
  if (const char* dir = std::getenv("TROUPE_STAGE_DIR"); dir && *dir) return dir;
  if (const char* cache = std::getenv("XDG_CACHE_HOME"); cache && *cache) return fs::path(cache) / "troupe" / "staged";
  if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".cache" / "troupe" / "staged";
  return fs::temp_directory_path() / "troupe-staged";
}

StageReply StagingArea::plan(const StageRequest& request) {
  StageReply reply;
  for (const auto& path : request.paths) {
    if (path.files.size() != path.sizes.size())
      throw Error("staging: " + path.absolute + ": " + std::to_string(path.files.size()) + " files but " +
                  std::to_string(path.sizes.size()) + " sizes");
    // Everything lands under the staging root: no path may climb out of it.
    const bool plain = fs::path(path.absolute).is_absolute() && !climbs(path.absolute) &&
                       std::none_of(path.files.begin(), path.files.end(), [](const std::string& file) {
                         return climbs(file) || fs::path(file).is_absolute();
                       });
    if (!plain) throw Error("staging: " + path.absolute + ": not an absolute path of plain names");
    auto complete_at = [&](const fs::path& base) {
      for (size_t i = 0; i < path.files.size(); ++i)
        if (!has_file(under(base, path.files[i]), path.sizes[i])) return false;
      return true;
    };
    // The same files at the same path (a shared file system): nothing to move.
    if (complete_at(path.absolute)) {
      located_[path.option_value] = path.absolute;
      continue;
    }
    const auto local = staged_location(root_, path.absolute);
    located_[path.option_value] = local.string();
    for (size_t i = 0; i < path.files.size(); ++i) {
      const auto target = under(local, path.files[i]);
      if (has_file(target, path.sizes[i])) continue;  // received for an earlier role
      const auto source = under(path.absolute, path.files[i]).string();
      if (expected_.count(source)) continue;  // named twice (a model directory is also the tokenizer)
      expected_[source] = {target, path.sizes[i]};
      reply.needed.push_back(source);
    }
  }
  return reply;
}

void StagingArea::write(const FileChunk& chunk) {
  auto found = expected_.find(chunk.path);
  if (found == expected_.end()) throw Error("staging: " + chunk.path + " was not asked for");
  const auto& [target, size] = found->second;
  if (chunk.size != size || chunk.offset + chunk.bytes.size() > size)
    throw Error("staging: " + chunk.path + ": bytes [" + std::to_string(chunk.offset) + ", " +
                std::to_string(chunk.offset + chunk.bytes.size()) + ") do not fit its " + std::to_string(size) + " bytes");
  auto partial = target;
  partial += ".partial";
  fs::create_directories(target.parent_path());
  std::fstream out(partial, std::ios::binary | std::ios::in | std::ios::out | (chunk.offset == 0 ? std::ios::trunc : std::ios::openmode{}));
  if (!out) throw Error("staging: cannot write " + partial.string());
  out.seekp(static_cast<std::streamoff>(chunk.offset));
  out.write(chunk.bytes.data(), static_cast<std::streamsize>(chunk.bytes.size()));
  out.close();
  if (!out) throw Error("staging: writing " + partial.string() + " failed");
  if (chunk.offset + chunk.bytes.size() == size) {
    fs::rename(partial, target);
    expected_.erase(found);
  }
}

RoleSpec StagingArea::localize(RoleSpec spec) const {
  for (auto& [key, value] : spec.options) {
    if (std::find(staged_options().begin(), staged_options().end(), key) == staged_options().end()) continue;
    if (auto found = located_.find(value); found != located_.end()) value = found->second;
  }
  return spec;
}

}  // namespace troupe::actors

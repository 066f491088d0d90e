#pragma once
/// Files a role needs on a node without the controller's file system: the controller
/// offers what a spec names (model directories, the tokenizer, the mixture corpus), the
/// node keeps what it already has at the same path (a shared file system) or in its
/// staging directory from an earlier role, receives the rest in chunks, and spawns the
/// role with its spec's paths pointing there.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>

#include <troupe/actors/messages.hpp>

namespace troupe::actors {

/// The spec options that name files or directories a role reads.
const std::vector<std::string>& staged_options();

/// What `spec` names that exists here: a file, or a directory's top-level files (a
/// Hugging Face directory; subdirectories and *.jsonl / *.log beside it are left out).
StageRequest staging_request(const RoleSpec& spec);

/// Bytes of file content sent per message.
constexpr uint64_t kFileChunkBytes = 16u << 20;

/// Reads `path` (absolute on this machine) and calls `send` with each chunk of at most
/// `chunk_bytes` in order.
void for_each_chunk(const std::string& path, const std::function<void(FileChunk&)>& send,
                    uint64_t chunk_bytes = kFileChunkBytes);

/// The node's side. Files go under `root` at their controller path (root/abs/path), so
/// two controllers' files never collide and a later role reuses what an earlier one
/// received. Writes go to a ".partial" name renamed into place when complete.
class StagingArea {
 public:
  explicit StagingArea(std::filesystem::path root);
  /// The staging directory: $TROUPE_STAGE_DIR, else $XDG_CACHE_HOME/troupe/staged, else
  /// ~/.cache/troupe/staged.
  static std::filesystem::path default_root();

  /// The files of `request` this node lacks (absolute on the controller); remembers
  /// where each of the request's paths is found here.
  StageReply plan(const StageRequest& request);
  /// Writes one chunk of a file plan() asked for; throws troupe::Error for any other
  /// path or a chunk past the file's size.
  void write(const FileChunk& chunk);
  /// `spec` with every option naming a planned path replaced by where it is here.
  RoleSpec localize(RoleSpec spec) const;

  const std::filesystem::path& root() const { return root_; }

 private:
  struct Expected {
    std::filesystem::path local;
    uint64_t size = 0;
  };
  std::filesystem::path root_;
  std::map<std::string, Expected> expected_;   // by controller path
  std::map<std::string, std::string> located_;  // option value -> path here
};

}  // namespace troupe::actors

#pragma once
/// A training run's metrics as JSON Lines: one object per logged step, readable by
/// `jq`, pandas and the HTML report alike, and safe to append to when a run resumes.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace troupe::engine {

/// Appends `{"phase":..., "step":..., "time":<unix seconds>, "<name>":value, ...}`
/// lines to a `.jsonl` file, flushing each one so a crash loses at most the line
/// being written and `tail -f` shows progress as it happens.
class MetricsLog {
 public:
  /// Opens `path` (creating its directory); `append` keeps earlier lines, as a
  /// resumed run wants, otherwise the file starts empty. Throws troupe::Error
  /// naming the path when it cannot be opened.
  MetricsLog(std::filesystem::path path, bool append);

  /// Writes one line. Non-finite values are written as null (JSON has no NaN);
  /// a value named "phase", "step" or "time" is refused with troupe::Error.
  void log(const std::string& phase, int64_t step, const std::map<std::string, double>& values);

  const std::filesystem::path& path() const { return path_; }
  /// Cuts the file back to its first `bytes` bytes (where a checkpoint left it), so that
  /// a resumed run writes the rows after it again instead of twice.
  void cut_to(int64_t bytes);

 private:
  std::filesystem::path path_;
  std::ofstream out_;
};

/// Reads every line of a metrics log, in order. Throws troupe::Error naming the
/// file and line for a malformed line, except a torn last line (no newline) from
/// a run that died mid-write, which is skipped.
std::vector<nlohmann::json> read_metrics_log(const std::filesystem::path& path);

}  // namespace troupe::engine

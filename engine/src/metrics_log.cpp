#include <troupe/engine/metrics_log.hpp>

#include <chrono>
#include <cmath>
#include <system_error>

#include <troupe/common/error.hpp>

namespace troupe::engine {
namespace {

double unix_seconds_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

/// Cuts a torn last line (no newline: a run died mid-write) off an existing log, so
/// lines appended on resume follow whole lines only.
void drop_torn_last_line(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec || size == 0) return;
  std::ifstream in(path, std::ios::binary);
  if (!in) return;
  // Scan backwards in blocks for the last newline; a line is rarely longer than one block.
  constexpr std::uintmax_t kBlock = 4096;
  std::uintmax_t end = size;
  std::string block;
  while (end > 0) {
    const std::uintmax_t begin = end > kBlock ? end - kBlock : 0;
    block.resize(static_cast<size_t>(end - begin));
    in.seekg(static_cast<std::streamoff>(begin));
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    if (!in) throw Error(path.string() + ": cannot read metrics log");
    const auto newline = block.rfind('\n');
    if (newline != std::string::npos) {
      end = begin + newline + 1;
      break;
    }
    end = begin;
  }
  in.close();
  if (end == size) return;
  std::filesystem::resize_file(path, end, ec);
  if (ec) throw Error(path.string() + ": cannot cut the torn last line: " + ec.message());
}

}  // namespace

MetricsLog::MetricsLog(std::filesystem::path path, bool append) : path_(std::move(path)) {
  std::error_code ec;
  if (path_.has_parent_path()) std::filesystem::create_directories(path_.parent_path(), ec);
  if (append) drop_torn_last_line(path_);
  out_.open(path_, append ? std::ios::app : std::ios::trunc);
  if (!out_) throw Error(path_.string() + ": cannot open metrics log for writing");
}

void MetricsLog::cut_to(int64_t bytes) {
  out_.flush();
  std::error_code ec;
  if (static_cast<int64_t>(std::filesystem::file_size(path_, ec)) > bytes)
    std::filesystem::resize_file(path_, static_cast<uintmax_t>(bytes), ec);
  // A log opened to truncate writes at its own position, not at the end: move it back.
  if (!ec) out_.seekp(bytes);
  if (ec) throw Error(path_.string() + ": cannot cut the metrics log back to " + std::to_string(bytes) + " bytes: " + ec.message());
}

void MetricsLog::log(const std::string& phase, int64_t step, const std::map<std::string, double>& values) {
  nlohmann::ordered_json row;  // ordered: phase, step and time lead every line
  row["phase"] = phase;
  row["step"] = step;
  row["time"] = unix_seconds_now();
  for (const auto& [name, value] : values) {
    if (name == "phase" || name == "step" || name == "time")
      throw Error(path_.string() + ": metric name '" + name + "' is reserved for the row itself");
    row[name] = std::isfinite(value) ? nlohmann::ordered_json(value) : nlohmann::ordered_json(nullptr);
  }
  out_ << row.dump() << '\n';
  out_.flush();
  if (!out_) throw Error(path_.string() + ": write failed (disk full?)");
}

std::vector<nlohmann::json> read_metrics_log(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open metrics log for reading");
  std::vector<nlohmann::json> rows;
  std::string line;
  int64_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    const bool last_without_newline = in.eof();
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (row.is_discarded() || !row.is_object()) {
      if (last_without_newline) break;  // torn final write of a crashed run
      throw Error(path.string() + ":" + std::to_string(line_number) + ": not a JSON object");
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace troupe::engine

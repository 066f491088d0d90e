/// Locating a dataset's files and reading them through its adapter.
#include <troupe/data/dataset.hpp>

#include <chrono>

#include <troupe/common/error.hpp>
#include <troupe/data/adapters.hpp>

#include "json_rows.hpp"

namespace troupe::data {
namespace fs = std::filesystem;

namespace {

constexpr size_t kBadExamples = 5;

SourceFile stat_file(const fs::path& path) {
  std::error_code ec;
  SourceFile f;
  f.path = path;
  f.size = fs::file_size(path, ec);
  if (ec) throw Error(path.string() + ": cannot read file size (" + ec.message() + ")");
  const auto mtime = fs::last_write_time(path, ec);
  if (ec) throw Error(path.string() + ": cannot read modification time (" + ec.message() + ")");
  f.mtime_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(mtime.time_since_epoch()).count();
  return f;
}

/// The one file in `dir` named `stem` + .json or .jsonl, if any.
std::optional<fs::path> find_split_file(const fs::path& dir, const std::vector<std::string>& stems) {
  std::vector<fs::path> found;
  for (const auto& stem : stems)
    for (const char* ext : {".jsonl", ".json"})
      if (fs::is_regular_file(dir / (stem + ext))) found.push_back(dir / (stem + ext));
  if (found.size() > 1)
    throw Error(dir.string() + ": ambiguous split files " + found[0].filename().string() + " and " +
                found[1].filename().string() + " (keep one)");
  if (found.empty()) return std::nullopt;
  return found.front();
}

void read_split(const fs::path& file, const Adapter& adapter, const ReadOptions& options,
                std::vector<Sample>& out, ReadReport& report) {
  for (auto& row : detail::read_json_rows(file)) {
    ++report.rows;
    const std::string where = file.string() + ":" + std::to_string(row.line) + ": ";
    try {
      if (!row.value) throw SampleError(row.error);
      if (!row.value->is_object()) throw SampleError("expected a JSON object, got " + std::string(row.value->type_name()));
      auto sample = adapter(*row.value);
      if (!sample) {
        ++report.declined;
        continue;
      }
      out.push_back(std::move(*sample));
      ++report.samples;
    } catch (const SampleError& e) {
      if (!options.skip_bad_samples) throw Error(where + e.what() + " (--skip_bad_samples counts and skips such rows)");
      ++report.bad;
      if (report.bad_examples.size() < kBadExamples) report.bad_examples.push_back(where + e.what());
    }
  }
}

}  // namespace

DatasetSpec parse_dataset_spec(const std::string& text, const std::string& flag) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw Error(flag + " '" + text + "': expected SCHEMA=PATH, e.g. Dahoas/rm-static=/data/rm-static");
  DatasetSpec spec{text.substr(0, eq), text.substr(eq + 1)};
  try {
    find_adapter(spec.schema);
  } catch (const Error& e) {
    throw Error(flag + " '" + text + "': " + e.what());
  }
  return spec;
}

DatasetFiles find_dataset_files(const DatasetSpec& spec) {
  const auto& path = spec.path;
  if (!fs::exists(path)) throw Error(spec.text() + ": " + path.string() + " does not exist");
  DatasetFiles files;
  if (fs::is_regular_file(path)) {
    files.train = stat_file(path);
    return files;
  }
  auto train = find_split_file(path, {"train"});
  if (!train)
    throw Error(spec.text() + ": folder " + path.string() +
                " has no train.jsonl or train.json (expected train and optionally test files, or give one file)");
  files.train = stat_file(*train);
  if (auto eval = find_split_file(path, {"test", "eval", "validation"})) files.eval = stat_file(*eval);
  return files;
}

RawDataset read_dataset(const DatasetSpec& spec, const ReadOptions& options) {
  RawDataset ds;
  ds.spec = spec;
  ds.files = find_dataset_files(spec);
  const Adapter& adapter = find_adapter(spec.schema);
  read_split(ds.files.train.path, adapter, options, ds.train, ds.report);
  if (ds.files.eval) {
    ds.eval.emplace();
    read_split(ds.files.eval->path, adapter, options, *ds.eval, ds.report);
  }
  return ds;
}

}  // namespace troupe::data

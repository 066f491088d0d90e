#pragma once
/// A dataset on local files, named `SCHEMA=PATH`, read into Samples through its adapter.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <troupe/data/sample.hpp>

namespace troupe::data {

/// `Dahoas/rm-static=/data/rm-static`: the schema picks the adapter; the path is a
/// folder with `train.json[l]` (and optionally `test.json[l]`, `eval.json[l]` or
/// `validation.json[l]`) or one file (train only).
struct DatasetSpec {
  std::string schema;
  std::filesystem::path path;
  std::string text() const { return schema + "=" + path.string(); }
};

/// Parses `SCHEMA=PATH`; throws troupe::Error naming `flag` when malformed or when the
/// schema is unknown (listing the known ones).
DatasetSpec parse_dataset_spec(const std::string& text, const std::string& flag = "--data_path");

/// A file a dataset reads, with what the cache key needs to notice a change.
struct SourceFile {
  std::filesystem::path path;
  uintmax_t size = 0;
  int64_t mtime_ns = 0;
};

/// The train file and, when there is one, the eval file of a dataset; throws
/// troupe::Error when the path is missing or a folder holds no train file.
struct DatasetFiles {
  SourceFile train;
  std::optional<SourceFile> eval;
};
DatasetFiles find_dataset_files(const DatasetSpec& spec);

struct ReadOptions {
  /// Per-sample errors (malformed row, missing or wrongly typed field) are counted
  /// and the sample skipped, instead of failing the read.
  bool skip_bad_samples = false;
};

/// What reading found: rows, samples kept, rows the adapter declined, bad rows.
struct ReadReport {
  int64_t rows = 0;
  int64_t samples = 0;
  int64_t declined = 0;
  int64_t bad = 0;
  std::vector<std::string> bad_examples;  ///< the first few bad rows' messages
};

struct RawDataset {
  DatasetSpec spec;
  DatasetFiles files;
  std::vector<Sample> train;
  std::optional<std::vector<Sample>> eval;  ///< absent: split 9:1 from train later
  ReadReport report;
};

/// Reads a dataset through its schema's adapter. Errors name the file, line and field
/// and what was expected.
RawDataset read_dataset(const DatasetSpec& spec, const ReadOptions& options = {});

}  // namespace troupe::data

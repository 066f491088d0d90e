#pragma once
/// Scalars as TensorBoard event files, written without TensorFlow or protobuf: the
/// TFRecord framing and the few Event fields scalars need are encoded by hand.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace troupe::engine {

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of TFRecord.
uint32_t crc32c(std::string_view bytes);

/// The masked form TFRecord stores: ((crc >> 15) | (crc << 17)) + 0xa282ead8, so that
/// a CRC of data that itself holds CRCs does not checksum to something trivial.
uint32_t masked_crc32c(std::string_view bytes);

/// Writes `<dir>/events.out.tfevents.<unix seconds>.<hostname>`, which `tensorboard
/// --logdir <dir>` reads as one run. Records are buffered; flush() (or destruction)
/// puts them on disk.
class TensorBoardWriter {
 public:
  /// Creates `dir` if missing and writes the file_version record TensorBoard expects
  /// first. Throws troupe::Error naming the file when it cannot be written.
  explicit TensorBoardWriter(const std::filesystem::path& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  /// One point of the scalar series `tag`, stamped with the current time.
  void add_scalar(const std::string& tag, float value, int64_t step);
  /// One point of the scalar series `tag` at `wall_time` (unix seconds).
  void add_scalar(const std::string& tag, float value, int64_t step, double wall_time);

  /// Tells TensorBoard to drop every point at `step` or later written before this one
  /// (a SessionLog START event, as PyTorch's SummaryWriter(purge_step) writes): a resumed
  /// run's redone steps then appear once.
  void purge_from(int64_t step);
  /// Writes buffered records to disk; throws troupe::Error naming the file on failure.
  void flush();

  const std::filesystem::path& path() const { return path_; }

 private:
  void write_record(const std::string& data);

  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace troupe::engine

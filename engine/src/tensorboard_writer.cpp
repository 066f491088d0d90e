#include <troupe/engine/tensorboard_writer.hpp>

#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <system_error>
#include <unistd.h>

#include <troupe/common/error.hpp>

namespace troupe::engine {
namespace {

constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    table[i] = crc;
  }
  return table;
}

constexpr auto kCrc32cTable = make_crc32c_table();

// Protobuf wire types and the field numbers of tensorflow/core/util/event.proto and
// tensorflow/core/framework/summary.proto that scalars use.
constexpr uint32_t kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;
constexpr uint32_t kEventWallTime = 1, kEventStep = 2, kEventFileVersion = 3, kEventSummary = 5, kEventSessionLog = 7;
constexpr uint32_t kSessionLogStatus = 1, kSessionStart = 1;
constexpr uint32_t kSummaryValue = 1;
constexpr uint32_t kValueTag = 1, kValueSimpleValue = 2;

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

/// Little-endian bytes of `v`, as protobuf's fixed types and TFRecord's header use.
template <typename T>
void put_little_endian(std::string& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

void put_key(std::string& out, uint32_t field, uint32_t wire_type) { put_varint(out, (field << 3) | wire_type); }

void put_double(std::string& out, uint32_t field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, kFixed64);
  put_little_endian(out, bits);
}

void put_float(std::string& out, uint32_t field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, kFixed32);
  put_little_endian(out, bits);
}

// Negative int64 values are sign-extended to ten varint bytes, as protobuf does.
void put_int64(std::string& out, uint32_t field, int64_t v) {
  put_key(out, field, kVarint);
  put_varint(out, static_cast<uint64_t>(v));
}

void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}

double unix_seconds_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

/// The name TensorBoard's loader looks for. Two writers started in the same second
/// in one directory get a numbered suffix rather than overwriting each other.
std::filesystem::path event_file_path(const std::filesystem::path& dir) {
  const auto seconds = static_cast<int64_t>(std::floor(unix_seconds_now()));
  const std::string base = "events.out.tfevents." + std::to_string(seconds) + "." + host_name();
  auto path = dir / base;
  for (int n = 1; std::filesystem::exists(path); ++n) path = dir / (base + "." + std::to_string(n));
  return path;
}

}  // namespace

uint32_t crc32c(std::string_view bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : bytes) crc = kCrc32cTable[(crc ^ c) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(std::string_view bytes) {
  const uint32_t crc = crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(dir.string() + ": cannot create TensorBoard log directory: " + ec.message());
  path_ = event_file_path(dir);
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) throw Error(path_.string() + ": cannot open TensorBoard event file for writing");
  std::string event;
  put_double(event, kEventWallTime, unix_seconds_now());
  put_bytes(event, kEventFileVersion, "brain.Event:2");
  write_record(event);
  flush();  // the file is a valid (empty) run from the start
}

TensorBoardWriter::~TensorBoardWriter() {
  try {
    flush();
  } catch (...) {
    // A destructor must not throw; the failure was already the caller's to see on flush().
  }
}

void TensorBoardWriter::add_scalar(const std::string& tag, float value, int64_t step) {
  add_scalar(tag, value, step, unix_seconds_now());
}

void TensorBoardWriter::add_scalar(const std::string& tag, float value, int64_t step, double wall_time) {
  std::string summary_value;
  put_bytes(summary_value, kValueTag, tag);
  put_float(summary_value, kValueSimpleValue, value);
  std::string summary;
  put_bytes(summary, kSummaryValue, summary_value);
  std::string event;
  put_double(event, kEventWallTime, wall_time);
  put_int64(event, kEventStep, step);
  put_bytes(event, kEventSummary, summary);
  write_record(event);
}

void TensorBoardWriter::purge_from(int64_t step) {
  std::string session_log;
  put_int64(session_log, kSessionLogStatus, kSessionStart);
  std::string event;
  put_double(event, kEventWallTime, unix_seconds_now());
  put_int64(event, kEventStep, step);
  put_bytes(event, kEventSessionLog, session_log);
  write_record(event);
  flush();
}

void TensorBoardWriter::flush() {
  out_.flush();
  if (!out_) throw Error(path_.string() + ": write failed (disk full?)");
}

// TFRecord: uint64 length, masked CRC of those 8 bytes, the data, masked CRC of the data.
void TensorBoardWriter::write_record(const std::string& data) {
  std::string header;
  put_little_endian(header, static_cast<uint64_t>(data.size()));
  std::string record = header;
  put_little_endian(record, masked_crc32c(header));
  record += data;
  put_little_endian(record, masked_crc32c(data));
  out_.write(record.data(), static_cast<std::streamsize>(record.size()));
  if (!out_) throw Error(path_.string() + ": write failed (disk full?)");
}

}  // namespace troupe::engine

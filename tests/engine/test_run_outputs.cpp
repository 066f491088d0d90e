// Training-run outputs: the metrics log, TensorBoard event files, the progress
// reporter and the HTML report.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>
#include <troupe/engine/html_report.hpp>
#include <troupe/engine/metrics_log.hpp>
#include <troupe/engine/progress.hpp>
#include <troupe/engine/tensorboard_writer.hpp>

using namespace troupe;
using namespace troupe::engine;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::path(TROUPE_TEST_TMP_DIR) / "run_outputs" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

template <typename T>
T read_little_endian(const std::string& bytes, size_t at) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
  return v;
}

/// The data of each TFRecord in `bytes`, checking both masked CRCs on the way.
std::vector<std::string> read_tfrecords(const std::string& bytes) {
  std::vector<std::string> records;
  size_t at = 0;
  while (at < bytes.size()) {
    REQUIRE(at + 12 <= bytes.size());
    const auto length = read_little_endian<uint64_t>(bytes, at);
    REQUIRE(read_little_endian<uint32_t>(bytes, at + 8) == masked_crc32c(std::string_view(bytes).substr(at, 8)));
    REQUIRE(at + 12 + length + 4 <= bytes.size());
    std::string data = bytes.substr(at + 12, length);
    REQUIRE(read_little_endian<uint32_t>(bytes, at + 12 + length) == masked_crc32c(data));
    records.push_back(std::move(data));
    at += 12 + length + 4;
  }
  return records;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

}  // namespace

TEST_CASE("metrics log: JSON lines round-trip, NaN as null, append on resume", "[engine][run_outputs]") {
  const auto path = fresh_dir("metrics") / "sub" / "metrics.jsonl";  // the directory is created
  {
    MetricsLog log(path, /*append=*/false);
    log.log("train", 1, {{"loss", 2.5}, {"lr", 1e-4}});
    log.log("train", 2, {{"loss", std::numeric_limits<double>::quiet_NaN()}, {"kl", INFINITY}});
    CHECK_THROWS_AS(log.log("train", 3, {{"step", 1.0}}), Error);
  }
  auto rows = read_metrics_log(path);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0]["phase"] == "train");
  CHECK(rows[0]["step"] == 1);
  CHECK(rows[0]["loss"].get<double>() == 2.5);
  CHECK(rows[0]["lr"].get<double>() == 1e-4);
  CHECK(rows[0]["time"].get<double>() > 1.6e9);
  CHECK(rows[1]["loss"].is_null());
  CHECK(rows[1]["kl"].is_null());
  // The fixed fields lead each line, so the file reads well with `head`.
  CHECK(read_file(path).rfind("{\"phase\":\"train\",\"step\":1,\"time\":", 0) == 0);

  {
    MetricsLog resumed(path, /*append=*/true);
    resumed.log("eval", 3, {{"ppl", 12.0}});
  }
  rows = read_metrics_log(path);
  REQUIRE(rows.size() == 3);
  CHECK(rows[2]["phase"] == "eval");
  CHECK(rows[2]["ppl"].get<double>() == 12.0);

  // A run that died mid-line: readers skip the torn line, and resuming cuts it off.
  { std::ofstream(path, std::ios::app) << "{\"phase\":\"train\",\"st"; }
  CHECK(read_metrics_log(path).size() == 3);
  { MetricsLog(path, true).log("train", 4, {{"loss", 1.0}}); }
  rows = read_metrics_log(path);
  REQUIRE(rows.size() == 4);
  CHECK(rows[3]["step"] == 4);

  // A malformed line in the middle names the file and line.
  {
    std::ofstream out(path, std::ios::app);
    out << "not json\n{\"phase\":\"train\",\"step\":5}\n";
  }
  CHECK_THROWS_WITH(read_metrics_log(path), Catch::Contains("metrics.jsonl:5"));

  { MetricsLog restarted(path, /*append=*/false); }
  CHECK(read_metrics_log(path).empty());
  CHECK_THROWS_AS(read_metrics_log(path.parent_path() / "missing.jsonl"), Error);
}

TEST_CASE("tensorboard: CRC32C check value and TFRecord framing", "[engine][run_outputs]") {
  CHECK(crc32c("123456789") == 0xE3069283u);
  CHECK(crc32c("") == 0u);
  const uint32_t crc = crc32c("123456789");
  CHECK(masked_crc32c("123456789") == ((crc >> 15) | (crc << 17)) + 0xa282ead8u);

  const auto dir = fresh_dir("tensorboard_framing") / "run";  // created by the writer
  fs::path file;
  {
    TensorBoardWriter writer(dir);
    file = writer.path();
    writer.add_scalar("train/loss", 0.5f, 3, 1700000000.25);
    writer.add_scalar("train/loss", 0.25f, -1);
  }
  CHECK(file.parent_path() == dir);
  CHECK(file.filename().string().rfind("events.out.tfevents.", 0) == 0);
  const auto records = read_tfrecords(read_file(file));
  REQUIRE(records.size() == 3);
  CHECK(records[0].find("brain.Event:2") != std::string::npos);

  // Event{wall_time=1700000000.25, step=3, summary{value{tag, simple_value=0.5}}}, byte for byte.
  std::string want;
  const double wall = 1700000000.25;
  const float value = 0.5f;
  char bytes[8];
  want += '\x09';
  std::memcpy(bytes, &wall, 8);
  want.append(bytes, 8);
  want += "\x10\x03";
  want += "\x2a\x13\x0a\x11\x0a\x0atrain/loss\x15";
  std::memcpy(bytes, &value, 4);
  want.append(bytes, 4);
  CHECK(records[1] == want);
  // A negative step is a ten-byte varint, as protobuf writes int64.
  CHECK(records[2].substr(9, 11) == std::string("\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11));

  // A second writer in the same second does not overwrite the first.
  TensorBoardWriter again(dir);
  CHECK(again.path() != file);
  CHECK(fs::exists(file));
}

TEST_CASE("progress: plain lines off a terminal, a carriage-return bar on one", "[engine][run_outputs]") {
  SECTION("non-interactive, every step") {
    std::ostringstream out;
    ProgressReporter progress("step1", 4, out, /*interactive=*/false);
    progress.set_interval_seconds(0);
    for (int64_t step = 1; step <= 4; ++step) progress.update(step, 2.0 / static_cast<double>(step), 100);
    progress.finish();
    const auto text = out.str();
    CHECK(text.find('\r') == std::string::npos);
    CHECK(count(text, "\n") == 4);
    CHECK_THAT(text, Catch::StartsWith("step1 1/4 loss 2.000 ") && Catch::Contains(" tok/s ETA "));
    CHECK_THAT(text, Catch::Contains("step1 4/4 loss 0.500 ") && Catch::EndsWith("ETA 00:00:00\n"));
  }
  SECTION("non-interactive, default interval: the first and the last step") {
    std::ostringstream out;
    ProgressReporter progress("step2", 5, out, /*interactive=*/false);
    CHECK_FALSE(progress.interactive());
    for (int64_t step = 1; step <= 5; ++step) progress.update(step, 1.0, 10);
    const auto text = out.str();
    CHECK(count(text, "\n") == 2);
    CHECK_THAT(text, Catch::StartsWith("step2 1/5 ") && Catch::Contains("step2 5/5 "));
  }
  SECTION("interactive") {
    std::ostringstream out;
    ProgressReporter progress("step1", 400, out, /*interactive=*/true);
    progress.update(120, 2.314, 1830);
    const auto text = out.str();
    CHECK_THAT(text, Catch::StartsWith("\rstep1 [######..............] 120/400 loss 2.314 "));
    CHECK(text.find('\n') == std::string::npos);
    progress.update(400, 1.0, 1830);  // the last step is always drawn
    CHECK_THAT(out.str(), Catch::Contains("\rstep1 [####################] 400/400 loss 1.000 "));
    progress.finish();
    progress.finish();
    CHECK(count(out.str(), "\n") == 1);
  }
  SECTION("a std::ostringstream is never a terminal") {
    std::ostringstream out;
    CHECK_FALSE(ProgressReporter("x", 1, out).interactive());
    CHECK_THROWS_AS(ProgressReporter("x", -1, out), Error);
  }
}

TEST_CASE("html report: escaped text, tables and inline SVG charts", "[engine][run_outputs]") {
  const auto path = fresh_dir("html") / "report.html";
  HtmlReport report;
  report.title = "Run <opt-125m> & \"friends\"";
  report.summary_rows = {{"model", "facebook/opt-125m"}, {"steps", "<400>"}};
  report.table_header = {"phase", "loss", "ppl"};
  report.table_rows = {{"eval", "2.31", "10.1"}, {"train", "2.20", "9.0"}};

  std::vector<nlohmann::json> rows = {
      {{"phase", "train"}, {"step", 1}, {"loss", 3.0}, {"lr", 1e-4}},
      {{"phase", "eval"}, {"step", 1}, {"loss", 9.0}},
      {{"phase", "train"}, {"step", 2}, {"loss", nullptr}},
      {{"phase", "train"}, {"step", 3}, {"loss", 2.0}},
      {{"phase", "train"}, {"step", 4}, {"loss", 1.5}, {"lr", 5e-5}},
  };
  Chart loss = chart_from_metrics(rows, "train", {"loss", "lr"}, "Training <loss>");
  REQUIRE(loss.series.size() == 2);
  REQUIRE(loss.series[0].points.size() == 4);
  CHECK(loss.series[0].points[0] == std::pair<double, double>(1, 3.0));
  CHECK(std::isnan(loss.series[0].points[1].second));
  CHECK(loss.series[1].points.size() == 2);
  CHECK(loss.x_label == "step");
  report.charts.push_back(loss);
  report.charts.push_back({"empty", "x", "y", {{"nothing", {{NAN, 1.0}}}}});
  write_html_report(path, report);

  const auto html = read_file(path);
  CHECK_THAT(html, Catch::StartsWith("<!DOCTYPE html>"));
  CHECK_THAT(html, Catch::Contains("<title>Run &lt;opt-125m&gt; &amp; &quot;friends&quot;</title>"));
  CHECK_THAT(html, Catch::Contains("<h1>Run &lt;opt-125m&gt; &amp; &quot;friends&quot;</h1>"));
  CHECK(html.find("<opt-125m>") == std::string::npos);
  CHECK_THAT(html, Catch::Contains("<td>model</td><td>facebook/opt-125m</td>"));
  CHECK_THAT(html, Catch::Contains("<td>steps</td><td>&lt;400&gt;</td>"));
  CHECK_THAT(html, Catch::Contains("<th>phase</th><th>loss</th><th>ppl</th>"));
  CHECK_THAT(html, Catch::Contains("<td>eval</td><td>2.31</td><td>10.1</td>"));
  CHECK(count(html, "<svg") == 2);
  CHECK_THAT(html, Catch::Contains("Training &lt;loss&gt;"));
  CHECK_THAT(html, Catch::Contains("no data"));
  // The NaN at step 2 splits the loss line: a lone point, then a line; lr is one more line.
  CHECK(count(html, "<polyline") == 2);
  CHECK(count(html, "<circle") == 1);
  CHECK(html.find("nan") == std::string::npos);
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("http://") == html.find("http://www.w3.org/2000/svg"));
  CHECK(std::distance(fs::directory_iterator(path.parent_path()), fs::directory_iterator()) == 1);  // no temporary left

  rows.push_back({{"phase", "train"}, {"step", "five"}, {"loss", 1.0}});
  CHECK_THROWS_WITH(chart_from_metrics(rows, "train", {"loss"}, "t"), Catch::Contains("row 6") && Catch::Contains("'step'"));
}

// Hidden: run by ctest before tests/reference/read_tensorboard.py, which reads the
// directory with TensorBoard's own loader and checks these exact values.
TEST_CASE("write a TensorBoard event file of known scalars", "[.tensorboard_export]") {
  const fs::path dir = TROUPE_TEST_TMP_DIR "/tensorboard";
  fs::remove_all(dir);  // stale files from an earlier run would add events
  TensorBoardWriter writer(dir);
  for (int64_t step = 0; step < 10; ++step)
    writer.add_scalar("train/loss", static_cast<float>(1.0 / static_cast<double>(step + 1)), step,
                      1700000000.0 + static_cast<double>(step));
  const float ppl[] = {12.5f, 6.25f, 3.125f};
  for (int64_t i = 0; i < 3; ++i) writer.add_scalar("eval/ppl", ppl[i], i * 4, 1700000100.5 + static_cast<double>(i));
  writer.flush();
  CHECK(fs::exists(writer.path()));
}

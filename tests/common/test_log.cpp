/// troupe's log: levels by name, what each level lets through, the prefix of a worker
/// process's lines, and text as std::ostream writes it.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>

#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>

namespace troupe {
namespace {

/// What `body` writes to stderr (file descriptor 2, where the log goes).
std::string stderr_of(const std::function<void()>& body) {
  const auto path = std::filesystem::path(TROUPE_TEST_TMP_DIR) / "common" / "stderr.txt";
  std::filesystem::create_directories(path.parent_path());
  std::fflush(stderr);
  const int file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(file >= 0);
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(file, STDERR_FILENO);
  ::close(file);
  body();
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// Puts back the level and prefix a test changed.
struct KeepLogSettings {
  log::Level level = log::level();
  std::string prefix = log::prefix();
  ~KeepLogSettings() {
    log::set_level(level);
    log::set_prefix(prefix);
  }
};

}  // namespace

TEST_CASE("log: levels are named as --log_level takes them; another name is refused naming the flag", "[log]") {
  for (const auto name : {"trace", "debug", "info", "warn", "error", "off"})
    CHECK(log::level_name(log::parse_level(name)) == name);
  CHECK_THROWS_WITH(log::parse_level("loud"),
                    "--log_level loud: not a log level (expected trace, debug, info, warn, error or off)");
  CHECK_THROWS_AS(log::parse_level("INFO", "TROUPE_LOG_LEVEL"), Error);
  CHECK_THROWS_WITH(log::parse_level("", "TROUPE_LOG_LEVEL"), Catch::StartsWith("TROUPE_LOG_LEVEL : not a log level"));
  KeepLogSettings keep;
  CHECK_THROWS(log::set_level("verbose"));
  CHECK(log::level() == keep.level);  // a refused name changes nothing
}

TEST_CASE("log: a level lets through its own lines and those above it", "[log]") {
  KeepLogSettings keep;
  log::set_prefix("");
  log::set_level("warn");
  CHECK_FALSE(log::enabled(log::Level::info));
  CHECK(log::enabled(log::Level::warn));
  CHECK(log::enabled(log::Level::error));
  CHECK(stderr_of([] {
          log::debug("debug");
          log::info("info");
          log::warn("warn ", 3, " ", 0.5, " ", 1e-5, " ", std::string("and a string"));
          log::error("error");
        }) == "warn 3 0.5 1e-05 and a string\nerror\n");
  log::set_level(log::Level::debug);
  CHECK(stderr_of([] {
          log::trace("trace");
          log::debug("debug");
        }) == "debug\n");
  log::set_level(log::Level::off);
  CHECK_FALSE(log::enabled(log::Level::off));
  CHECK(stderr_of([] { log::error("error"); }).empty());
}

TEST_CASE("log: a prefix leads every line of a message; a message's trailing newline is dropped", "[log]") {
  KeepLogSettings keep;
  log::set_level(log::Level::info);
  log::set_prefix("actor 1/2");
  CHECK(stderr_of([] { log::info("first\nsecond\n"); }) == "[actor 1/2] first\n[actor 1/2] second\n");
  log::set_prefix("50% %v");  // taken as it is, not as spdlog's pattern
  CHECK(stderr_of([] { log::info("x"); }) == "[50% %v] x\n");
  log::set_prefix("");
  CHECK(stderr_of([] { log::info("plain"); }) == "plain\n");
}

}  // namespace troupe

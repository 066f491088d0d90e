#include <troupe/common/log.hpp>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>

#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <troupe/common/error.hpp>

namespace troupe::log {
namespace {

constexpr Level kLevels[] = {Level::trace, Level::debug, Level::info, Level::warn, Level::error, Level::off};

spdlog::level::level_enum spdlog_level(Level level) {
  switch (level) {
    case Level::trace: return spdlog::level::trace;
    case Level::debug: return spdlog::level::debug;
    case Level::info: return spdlog::level::info;
    case Level::warn: return spdlog::level::warn;
    case Level::error: return spdlog::level::err;
    case Level::off: break;
  }
  return spdlog::level::off;
}

/// The message alone, after the prefix if there is one: no time or level, so that a
/// line reads as it did before troupe logged through spdlog (and tests can grep it).
std::string pattern(const std::string& prefix) {
  if (prefix.empty()) return "%v";
  std::string escaped;
  for (const char c : prefix) escaped += c == '%' ? std::string("%%") : std::string(1, c);
  return "[" + escaped + "] %v";
}

/// The process's one logger, made on first use (not registered with spdlog's global
/// registry, which other libraries in the process may use).
struct Logger {
  std::shared_ptr<spdlog::logger> sink;
  std::atomic<Level> level{Level::info};
  std::mutex prefix_mutex;
  std::string prefix;

  Logger() : sink(std::make_shared<spdlog::logger>("troupe", std::make_shared<spdlog::sinks::stderr_sink_mt>())) {
    sink->set_pattern(pattern(""));
    std::string bad_environment;
    if (const char* text = std::getenv(kLevelVariable); text && *text) {
      try {
        level = parse_level(text, kLevelVariable);
      } catch (const Error& e) {
        bad_environment = e.what();
      }
    }
    sink->set_level(spdlog_level(level));
    if (!bad_environment.empty()) sink->warn("{}; ignored", bad_environment);
  }
};

Logger& logger() {
  // Never destroyed: threads that outlive main() (CAF's, a rank watcher) may still log.
  static Logger* instance = new Logger();
  return *instance;
}

}  // namespace

Level parse_level(std::string_view name, std::string_view flag) {
  for (const Level level : kLevels)
    if (name == level_name(level)) return level;
  throw Error(std::string(flag) + " " + std::string(name) + ": not a log level (expected trace, debug, info, warn, error or off)");
}

std::string_view level_name(Level level) {
  switch (level) {
    case Level::trace: return "trace";
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
    case Level::off: break;
  }
  return "off";
}

void set_level(Level level) {
  auto& l = logger();
  l.level = level;
  l.sink->set_level(spdlog_level(level));
}

void set_level(std::string_view name, std::string_view flag) { set_level(parse_level(name, flag)); }

Level level() { return logger().level; }

bool enabled(Level level) { return level != Level::off && level >= logger().level.load(); }

void set_prefix(const std::string& prefix) {
  auto& l = logger();
  std::lock_guard lock(l.prefix_mutex);
  l.prefix = prefix;
  l.sink->set_pattern(pattern(prefix));
}

std::string prefix() {
  auto& l = logger();
  std::lock_guard lock(l.prefix_mutex);
  return l.prefix;
}

void write(Level level, std::string_view text) {
  if (!enabled(level)) return;
  auto& sink = *logger().sink;
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  while (true) {
    const auto end = text.find('\n');
    sink.log(spdlog_level(level), spdlog::string_view_t(text.data(), end == std::string_view::npos ? text.size() : end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
}

}  // namespace troupe::log

#pragma once
/// troupe's log: one logger (spdlog, kept out of this header) that writes whole lines to
/// stderr, filtered by a level and, in a process troupe started itself (a step-3 worker,
/// a data-parallel rank), led by a prefix naming its role and rank: "[actor 1/2] ...".
///
///   log::info("step3: resuming after cycle ", cycle, " from ", dir.string());
///
/// The parts are streamed as std::ostream would (so numbers read as they always did),
/// and only when the level is on. A message with several lines gives several log lines,
/// each with the prefix.
#include <sstream>
#include <string>
#include <string_view>

namespace troupe::log {

enum class Level { trace, debug, info, warn, error, off };

/// The environment variable a process reads its level from when nothing set one (the
/// default is info). Processes troupe starts (workers, ranks) get the starter's level
/// through it.
inline constexpr const char* kLevelVariable = "TROUPE_LOG_LEVEL";

/// "trace", "debug", "info", "warn", "error" or "off"; anything else throws troupe::Error
/// naming `flag` (the flag or variable the text came from) and the levels there are.
Level parse_level(std::string_view name, std::string_view flag = "--log_level");
std::string_view level_name(Level level);

void set_level(Level level);
/// parse_level(name, flag), then set_level.
void set_level(std::string_view name, std::string_view flag = "--log_level");
Level level();
/// Whether a line at `level` is written.
bool enabled(Level level);

/// Every later line starts with "[prefix] " (none when empty): set by a worker process or
/// rank, so that its lines say whose they are where several processes share a terminal.
void set_prefix(const std::string& prefix);
std::string prefix();

/// Writes `text` at `level`, one log line per line of it (a trailing newline is dropped).
void write(Level level, std::string_view text);

template <class... Parts>
void print(Level level, const Parts&... parts) {
  if (!enabled(level)) return;
  std::ostringstream text;
  (text << ... << parts);
  write(level, text.str());
}

template <class... Parts>
void trace(const Parts&... parts) { print(Level::trace, parts...); }
template <class... Parts>
void debug(const Parts&... parts) { print(Level::debug, parts...); }
template <class... Parts>
void info(const Parts&... parts) { print(Level::info, parts...); }
template <class... Parts>
void warn(const Parts&... parts) { print(Level::warn, parts...); }
template <class... Parts>
void error(const Parts&... parts) { print(Level::error, parts...); }

}  // namespace troupe::log

/// Rewards from an HTTP endpoint: one POST per batch.
#include "remote_reward_function.hpp"

#include <httplib.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <thread>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>

namespace troupe::actors {
namespace {

using nlohmann::json;

/// Debian's cpp-httplib is built with OpenSSL; a build against one without it refuses https.
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
constexpr bool kHttpsSupported = true;
#else
constexpr bool kHttpsSupported = false;
#endif

std::string start_of(const std::string& text, size_t limit = 200) {
  return text.size() <= limit ? text : text.substr(0, limit) + "...";
}

/// Python's json module writes NaN, Infinity and -Infinity, which are not JSON: as
/// strings they parse, and the row that has one is then named as not finite.
std::string quote_python_non_finite(const std::string& body) {
  static const char* const literals[] = {"-Infinity", "Infinity", "NaN"};
  std::string out;
  out.reserve(body.size());
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < body.size()) out += body[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    bool replaced = false;
    for (const char* literal : literals) {
      const std::string word(literal);
      if (body.compare(i, word.size(), word) == 0) {
        out += '"' + word + '"';
        i += word.size() - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += c;
  }
  return out;
}

/// A score as a double; NaN or +-inf for the non-finite literals (quoted above).
double score_value(const json& value, const std::string& where) {
  if (value.is_number()) return value.get<double>();
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (text == "Infinity") return std::numeric_limits<double>::infinity();
    if (text == "-Infinity") return -std::numeric_limits<double>::infinity();
  }
  throw Error(where + " is " + start_of(value.dump(), 40) + ", not a number");
}

std::string seconds_text(double seconds) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", seconds);
  return text;
}

std::string describe(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection: return "cannot connect (connection refused, or the host is unreachable)";
    case httplib::Error::ConnectionTimeout: return "cannot connect: no connection within the timeout";
    case httplib::Error::Read: return "no complete answer (the server closed the connection, or it timed out)";
    case httplib::Error::Write: return "sending the request failed";
    case httplib::Error::SSLConnection: return "the TLS handshake failed (is it an https server?)";
    case httplib::Error::SSLServerVerification: return "the server's TLS certificate was not accepted";
    default: return "request failed (" + httplib::to_string(error) + ")";
  }
}

}  // namespace

std::string RewardUrl::origin() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  return scheme + "://" + (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

RewardUrl parse_reward_url(const std::string& url) {
  auto bad = [&](const std::string& why) { return Error("--reward_url \"" + url + "\": " + why); };
  RewardUrl parts;
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) throw bad("expected http://HOST[:PORT][/PATH]");
  parts.scheme = url.substr(0, scheme_end);
  for (char& c : parts.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (parts.scheme == "https" && !kHttpsSupported)
    throw bad("https is not supported: this build's cpp-httplib has no TLS (use http://)");
  if (parts.scheme != "http" && parts.scheme != "https") throw bad("the scheme must be http or https");
  std::string rest = url.substr(scheme_end + 3);
  const auto path_start = rest.find_first_of("/?");
  parts.path = path_start == std::string::npos ? "/" : rest.substr(path_start);
  if (parts.path.front() == '?') parts.path.insert(0, "/");
  std::string authority = rest.substr(0, path_start);
  if (authority.find('@') != std::string::npos) throw bad("user names and passwords in the URL are not supported");
  std::string port_text;
  if (!authority.empty() && authority.front() == '[') {  // [IPv6]:port
    const auto close = authority.find(']');
    if (close == std::string::npos) throw bad("an IPv6 address needs its closing ]");
    parts.host = authority.substr(1, close - 1);
    const auto after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') throw bad("unexpected \"" + after + "\" after the address");
    if (!after.empty()) port_text = after.substr(1);
    if (after == ":") throw bad("the port is empty");
  } else {
    const auto colon = authority.find(':');
    parts.host = authority.substr(0, colon);
    if (colon != std::string::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) throw bad("the port is empty");
    }
  }
  if (parts.host.empty()) throw bad("no host");
  for (char c : parts.host)
    if (std::isspace(static_cast<unsigned char>(c))) throw bad("the host has a space in it");
  if (port_text.empty()) {
    parts.port = parts.scheme == "https" ? 443 : 80;
  } else {
    if (port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos)
      throw bad("the port \"" + port_text + "\" is not a number from 1 to 65535");
    parts.port = std::stoi(port_text);
    if (parts.port < 1 || parts.port > 65535) throw bad("the port " + port_text + " is not from 1 to 65535");
  }
  return parts;
}

RemoteRewardFunction::RemoteRewardFunction(const std::string& url, RemoteRewardOptions options)
    : url_(url), parts_(parse_reward_url(url)), options_(options) {
  if (!(options_.timeout_seconds > 0) || !std::isfinite(options_.timeout_seconds))
    throw Error("--reward_timeout " + seconds_text(options_.timeout_seconds) + ": must be a positive number of seconds");
  if (options_.connection_retries < 0) throw Error("RemoteRewardFunction: connection_retries must be >= 0");
}

double RemoteRewardFunction::score(const std::string& prompt, const std::string& response) const {
  return score_rows({prompt}, {response}).at(0);
}

std::vector<double> RemoteRewardFunction::score_rows(const std::vector<std::string>& prompts,
                                                     const std::vector<std::string>& responses) const {
  const std::string where = "reward server " + url_;
  json request{{"prompts", prompts}, {"responses", responses}, {"queries", json::array()}};
  for (size_t i = 0; i < prompts.size(); ++i) request["queries"].push_back(prompts[i] + responses[i]);
  // Generated text may end inside a multi-byte character: such bytes go as U+FFFD.
  const auto body = request.dump(-1, ' ', false, json::error_handler_t::replace);

  const auto timeout = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::duration<double>(options_.timeout_seconds));
  httplib::Client client(parts_.origin());
  client.set_connection_timeout(timeout);
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);

  httplib::Result result{nullptr, httplib::Error::Unknown};
  std::chrono::steady_clock::duration waited{};
  auto delay = options_.retry_delay;
  int tries = 0;
  for (;; delay *= 2) {
    ++tries;
    const auto sent = std::chrono::steady_clock::now();
    result = client.Post(parts_.path, body, "application/json");
    waited = std::chrono::steady_clock::now() - sent;
    // Only a request that never reached the server is repeated (it may still be starting).
    const bool not_connected = !result && result.error() == httplib::Error::Connection;
    if (!not_connected || tries > options_.connection_retries) break;
    std::this_thread::sleep_for(delay);
  }
  if (!result) {
    if (result.error() == httplib::Error::Read && waited + std::chrono::milliseconds(50) >= timeout)
      throw Error(where + ": no answer within " + seconds_text(options_.timeout_seconds) + " s (--reward_timeout)");
    throw Error(where + ": " + describe(result.error()) +
                (tries > 1 ? " (tried " + std::to_string(tries) + " times)" : ""));
  }
  if (result->status != 200)
    throw Error(where + ": HTTP status " + std::to_string(result->status) + "; the body starts: " +
                start_of(result->body));

  json answer;
  try {
    answer = json::parse(quote_python_non_finite(result->body));
  } catch (const json::exception& e) {
    throw Error(where + ": the answer is not valid JSON (" + e.what() + "); it starts: " + start_of(result->body));
  }
  const char* key = answer.is_object() && answer.contains("rewards") ? "rewards" : "scores";
  if (!answer.is_object() || !answer.contains(key) || !answer[key].is_array())
    throw Error(where + ": expected a JSON object with a \"rewards\" (or \"scores\") list; got: " +
                start_of(result->body));
  const auto& values = answer[key];
  if (values.size() != prompts.size())
    throw Error(where + ": " + std::to_string(values.size()) + " " + key + " for a batch of " +
                std::to_string(prompts.size()) + " rows");
  std::vector<double> scores;
  scores.reserve(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const auto row = "\"" + std::string(key) + "\"[" + std::to_string(i) + "]";
    const double value = score_value(values[i], where + ": " + row);
    if (!std::isfinite(value))
      throw Error(where + ": " + row + " is " + std::to_string(value) + ", not a finite number (row " + std::to_string(i) +
                  " of the batch)");
    scores.push_back(value);
  }
  return scores;
}

}  // namespace troupe::actors

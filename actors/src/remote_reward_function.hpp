#pragma once
/// Rewards from an HTTP endpoint (`--reward_url`), as OpenRLHF's remote reward models:
/// one POST per scoring batch with the decoded texts, one score per row back.
#include <chrono>
#include <string>
#include <vector>

#include <troupe/rl/reward_function.hpp>

namespace troupe::actors {

/// The parts of a reward server's URL: `http://HOST[:PORT][/PATH]` (https when the
/// HTTP client was built with TLS).
struct RewardUrl {
  std::string scheme;  ///< "http" or "https"
  std::string host;    ///< a name, an IPv4 address, or an IPv6 address without brackets
  int port = 0;        ///< 80 / 443 when the URL names none
  std::string path;    ///< "/" when the URL names none; the query string stays on it

  /// scheme://host:port, what the HTTP client connects to.
  std::string origin() const;
};

/// Parses `url`; throws troupe::Error saying what is wrong with it (another scheme,
/// https without TLS support in this build, no host, a bad port). Checks syntax only.
RewardUrl parse_reward_url(const std::string& url);

struct RemoteRewardOptions {
  /// Seconds to connect, to send, and to wait for each part of the answer
  /// (`--reward_timeout`).
  double timeout_seconds = 60;
  /// Further tries when the server cannot be connected to (refused, unreachable); a
  /// request that reached the server is never repeated, so a batch is never scored twice.
  int connection_retries = 2;
  /// Wait before the first retry; doubles for each further one.
  std::chrono::milliseconds retry_delay{500};
};

/// POSTs `{"prompts": [...], "responses": [...], "queries": [prompt + response, ...]}`
/// (JSON, UTF-8) to the URL per batch and reads `{"rewards": [number, ...]}` (or
/// `"scores"`), one per row in order. Every failure is a troupe::Error naming the URL:
/// no connection, a timeout, an HTTP status other than 200 (with the start of the body),
/// malformed JSON, another number of scores, or a score that is not a finite number
/// (naming the row; a Python server's NaN and Infinity literals are read as such).
/// Safe to call from several threads: each batch opens its own connection.
class RemoteRewardFunction : public rl::RewardFunction {
 public:
  /// Checks the URL's syntax now; whether the server answers shows at the first batch.
  explicit RemoteRewardFunction(const std::string& url, RemoteRewardOptions options = {});

  /// A batch of one row.
  double score(const std::string& prompt, const std::string& response) const override;
  const std::string& url() const { return url_; }

 protected:
  std::vector<double> score_rows(const std::vector<std::string>& prompts,
                                 const std::vector<std::string>& responses) const override;

 private:
  std::string url_;
  RewardUrl parts_;
  RemoteRewardOptions options_;
};

}  // namespace troupe::actors

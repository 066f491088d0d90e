/// The remote reward function (--reward_url) against an in-process HTTP server: the
/// scores, one request per batch, and every way a server can fail, each named.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <troupe/actors/batch_keys.hpp>
#include "remote_reward_function.hpp"
#include "step3_role_specs.hpp"
#include <troupe/actors/step3_trainer.hpp>
#include <troupe/common/error.hpp>
#include <troupe/models/tokenizer.hpp>

using namespace troupe;
using actors::RemoteRewardFunction;
using actors::RemoteRewardOptions;
using nlohmann::json;

namespace {

/// An HTTP server on a free port of 127.0.0.1 in a thread of this process. POST /length
/// scores each response by its length in bytes; the other paths fail in one way each.
class RewardServer {
 public:
  RewardServer() {
    server_.Post("/length", [this](const httplib::Request& request, httplib::Response& response) {
      const auto body = record(request);
      json rewards = json::array();
      for (const auto& text : body.at("responses")) rewards.push_back(text.get<std::string>().size());
      response.set_content(json{{"rewards", rewards}}.dump(), "application/json");
    });
    server_.Post("/scores", [this](const httplib::Request& request, httplib::Response& response) {
      const auto rows = record(request).at("prompts").size();
      response.set_content(json{{"scores", std::vector<double>(rows, 0.5)}}.dump(), "application/json");
    });
    server_.Post("/status500", [](const httplib::Request&, httplib::Response& response) {
      response.status = 500;
      response.set_content("model not loaded" + std::string(400, '!'), "text/plain");
    });
    server_.Post("/garbage", [](const httplib::Request&, httplib::Response& response) {
      response.set_content("{\"rewards\": [1, 2", "application/json");
    });
    server_.Post("/no_rewards", [](const httplib::Request&, httplib::Response& response) {
      response.set_content("{\"reward\": [1, 2]}", "application/json");
    });
    server_.Post("/one_short", [this](const httplib::Request& request, httplib::Response& response) {
      const auto rows = record(request).at("prompts").size();
      response.set_content(json{{"rewards", std::vector<double>(rows - 1, 1.0)}}.dump(), "application/json");
    });
    // What Python's json.dumps writes for float("nan"): not JSON, but named as a NaN.
    server_.Post("/nan", [](const httplib::Request&, httplib::Response& response) {
      response.set_content("{\"rewards\": [1.0, NaN, 3.0]}", "application/json");
    });
    server_.Post("/text", [](const httplib::Request&, httplib::Response& response) {
      response.set_content("{\"rewards\": [1.0, \"good\", 3.0]}", "application/json");
    });
    server_.Post("/slow", [](const httplib::Request&, httplib::Response& response) {
      std::this_thread::sleep_for(std::chrono::seconds(3));
      response.set_content("{\"rewards\": [1.0]}", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~RewardServer() {
    // stop() only ends a server that is already running.
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    server_.stop();
    thread_.join();
  }

  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  std::vector<json> requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }

 private:
  json record(const httplib::Request& request) {
    auto body = json::parse(request.body);
    std::lock_guard<std::mutex> lock(mutex_);
    requests_.push_back(body);
    return body;
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<json> requests_;
};

/// A port of 127.0.0.1 nothing listens on: one the system just handed out and took back.
int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(address);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), size) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

const std::vector<std::string> kPrompts{"Human: hi\n\nAssistant:", "Human: 2+2?\n\nAssistant:", "Human: é?\n\nAssistant:"};
const std::vector<std::string> kResponses{" hello", " 4", " ça va bien"};

RemoteRewardOptions quick(double timeout_seconds = 5) {
  RemoteRewardOptions options;
  options.timeout_seconds = timeout_seconds;
  options.retry_delay = std::chrono::milliseconds(20);
  return options;
}

}  // namespace

TEST_CASE("remote reward: one POST per batch, with prompts, responses and queries; a score per row back",
          "[actors][reward_url]") {
  RewardServer server;
  RemoteRewardFunction remote(server.url("/length"), quick());
  const auto scores = remote.score_batch(kPrompts, kResponses);  // (B,)
  REQUIRE(scores.sizes() == torch::IntArrayRef{3});
  CHECK(scores.scalar_type() == torch::kFloat);
  CHECK(scores[0].item<float>() == 6);
  CHECK(scores[1].item<float>() == 2);
  CHECK(scores[2].item<float>() == 12);  // bytes of UTF-8: ç is two
  const auto requests = server.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].at("prompts") == json(kPrompts));
  CHECK(requests[0].at("responses") == json(kResponses));
  CHECK(requests[0].at("queries") == json({kPrompts[0] + kResponses[0], kPrompts[1] + kResponses[1],
                                           kPrompts[2] + kResponses[2]}));
  // score() of one row is a batch of one.
  CHECK(remote.score("p", " four") == 5);
  CHECK(server.requests().size() == 2);
  // "scores" in place of "rewards" is read too.
  RemoteRewardFunction scores_key(server.url("/scores"), quick());
  CHECK(torch::equal(scores_key.score_batch(kPrompts, kResponses), torch::full({3}, 0.5f)));
}

TEST_CASE("remote reward: text that is not UTF-8 is sent with replacement characters", "[actors][reward_url]") {
  RewardServer server;
  RemoteRewardFunction remote(server.url("/length"), quick());
  const std::string cut = std::string("caf\xc3", 4);  // an answer cut inside a two-byte character
  const auto scores = remote.score_batch({"p"}, {cut});
  CHECK(scores[0].item<float>() == 6);  // "caf" and U+FFFD (3 bytes)
}

TEST_CASE("remote reward: every failure is an error naming the URL and what went wrong", "[actors][reward_url]") {
  RewardServer server;
  auto failure = [&](const std::string& path, RemoteRewardOptions options = quick()) {
    RemoteRewardFunction remote(server.url(path), options);
    try {
      remote.score_batch(kPrompts, kResponses);
    } catch (const Error& e) {
      CHECK_THAT(e.what(), Catch::Contains(server.url(path)));
      return std::string(e.what());
    }
    FAIL("no error from " << path);
    return std::string();
  };
  SECTION("an HTTP status other than 200, with the start of the body") {
    const auto what = failure("/status500");
    CHECK_THAT(what, Catch::Contains("HTTP status 500") && Catch::Contains("model not loaded!!!"));
    CHECK(what.find(std::string(200, '!')) == std::string::npos);  // only the first 200 bytes
  }
  SECTION("an unknown path is a 404") { CHECK_THAT(failure("/nowhere"), Catch::Contains("HTTP status 404")); }
  SECTION("malformed JSON") {
    CHECK_THAT(failure("/garbage"), Catch::Contains("not valid JSON") && Catch::Contains("{\"rewards\": [1, 2"));
  }
  SECTION("JSON without rewards or scores") {
    CHECK_THAT(failure("/no_rewards"), Catch::Contains("\"rewards\" (or \"scores\") list"));
  }
  SECTION("another number of scores than rows") {
    CHECK_THAT(failure("/one_short"), Catch::Contains("2 rewards for a batch of 3 rows"));
  }
  SECTION("a NaN, naming the row") {
    CHECK_THAT(failure("/nan"), Catch::Contains("\"rewards\"[1] is nan, not a finite number (row 1"));
  }
  SECTION("a score that is not a number, naming the row") {
    CHECK_THAT(failure("/text"), Catch::Contains("\"rewards\"[1] is \"good\", not a number"));
  }
  SECTION("no answer within the timeout") {
    const auto start = std::chrono::steady_clock::now();
    CHECK_THAT(failure("/slow", quick(1)), Catch::Contains("no answer within 1 s (--reward_timeout)"));
    const auto waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(waited >= 0.9);
    CHECK(waited < 2.5);  // not the server's 3 s, and not retried
  }
  SECTION("https to a server that speaks plain HTTP fails its handshake") {
    const auto url = "https://127.0.0.1:" + server.url("").substr(std::string("http://127.0.0.1:").size()) + "/length";
    RemoteRewardFunction remote(url, quick());
    CHECK_THROWS_WITH(remote.score_batch(kPrompts, kResponses), Catch::Contains(url) && Catch::Contains("TLS"));
  }
}

TEST_CASE("remote reward: a closed port is retried twice, then named as unreachable", "[actors][reward_url]") {
  const auto url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/score";
  RemoteRewardFunction remote(url, quick());
  CHECK_THROWS_WITH(remote.score_batch(kPrompts, kResponses),
                    Catch::Contains(url) && Catch::Contains("cannot connect") && Catch::Contains("tried 3 times"));
  auto options = quick();
  options.connection_retries = 0;
  RemoteRewardFunction once(url, options);
  try {
    once.score_batch(kPrompts, kResponses);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("cannot connect"));
    CHECK_THAT(e.what(), !Catch::Contains("tried"));
  }
}

TEST_CASE("remote reward: a server that starts during the retries is reached", "[actors][reward_url]") {
  const int port = closed_port();
  httplib::Server late;
  late.Post("/score", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("{\"rewards\": [7, 8, 9]}", "application/json");
  });
  std::thread starter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    late.listen("127.0.0.1", port);
  });
  auto options = quick();
  options.retry_delay = std::chrono::milliseconds(400);  // the second try comes after the start
  RemoteRewardFunction remote("http://127.0.0.1:" + std::to_string(port) + "/score", options);
  const auto scores = remote.score_batch(kPrompts, kResponses);
  CHECK(torch::equal(scores, torch::tensor({7.f, 8.f, 9.f})));
  while (!late.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  late.stop();
  starter.join();
}

TEST_CASE("remote reward: the URL's syntax is checked when it is given", "[actors][reward_url]") {
  const auto parts = actors::parse_reward_url("http://127.0.0.1:8000/v1/score?model=a");
  CHECK(parts.scheme == "http");
  CHECK(parts.host == "127.0.0.1");
  CHECK(parts.port == 8000);
  CHECK(parts.path == "/v1/score?model=a");
  CHECK(parts.origin() == "http://127.0.0.1:8000");
  const auto bare = actors::parse_reward_url("HTTP://reward-server");
  CHECK(bare.port == 80);
  CHECK(bare.path == "/");
  const auto ipv6 = actors::parse_reward_url("http://[::1]:9000/get_reward");
  CHECK(ipv6.host == "::1");
  CHECK(ipv6.origin() == "http://[::1]:9000");
  CHECK(actors::parse_reward_url("https://example.org/score").port == 443);  // Debian's cpp-httplib has TLS
  CHECK_THROWS_WITH(actors::parse_reward_url("127.0.0.1:8000/score"), Catch::Contains("expected http://HOST"));
  CHECK_THROWS_WITH(actors::parse_reward_url("ftp://host/score"), Catch::Contains("scheme must be http or https"));
  CHECK_THROWS_WITH(actors::parse_reward_url("http:///score"), Catch::Contains("no host"));
  CHECK_THROWS_WITH(actors::parse_reward_url("http://host:/score"), Catch::Contains("the port is empty"));
  CHECK_THROWS_WITH(actors::parse_reward_url("http://host:99999"), Catch::Contains("not from 1 to 65535"));
  CHECK_THROWS_WITH(actors::parse_reward_url("http://host:8o"), Catch::Contains("is not a number"));
  CHECK_THROWS_WITH(actors::parse_reward_url("http://user:pw@host"), Catch::Contains("passwords"));
  CHECK_THROWS_WITH(actors::parse_reward_url("http://[::1:80"), Catch::Contains("closing ]"));
  CHECK_THROWS_WITH(RemoteRewardFunction("http://host", quick(0)), Catch::Contains("--reward_timeout 0"));
}

TEST_CASE("remote reward: the step-3 reward role spec carries the URL and timeout to the role it builds",
          "[actors][reward_url]") {
  RewardServer server;
  actors::Step3Config config;
  config.actor_model = std::filesystem::path(TROUPE_FIXTURES_DIR) / "models" / "gpt2";  // its tokenizer
  config.reward_url = server.url("/length");
  config.reward_timeout = 7.5;
  const auto spec = actors::reward_role_spec(config);
  CHECK(spec.options.at("reward_url") == config.reward_url);
  CHECK(spec.options.at("reward_timeout") == "7.5");
  CHECK(spec.options.count("model") == 0);
  actors::ProcessRoles here;
  auto role = actors::step3_role_factories().at("step3_reward")(spec, here);
  CHECK_THAT(role->describe(), Catch::Contains(config.reward_url));

  // Two rows of prompt + answer, the prompts left padded, the answers right padded.
  auto tokenizer = models::load_tokenizer(config.actor_model);
  const auto prompt = tokenizer->encode("Hello there"), answer = tokenizer->encode(" friend");
  const int64_t P = static_cast<int64_t>(prompt.size()) + 1, A = static_cast<int64_t>(answer.size()) + 1;
  auto sequences = torch::zeros({2, P + A}, torch::kLong);  // (B, T)
  auto mask = torch::zeros({2, P + A}, torch::kLong);       // (B, T)
  for (int64_t b = 0; b < 2; ++b) {
    for (size_t i = 0; i < prompt.size(); ++i) sequences[b][1 + static_cast<int64_t>(i)] = prompt[i];
    for (size_t i = 0; i < answer.size(); ++i) sequences[b][P + static_cast<int64_t>(i)] = answer[i];
  }
  mask.slice(1, 1, P + static_cast<int64_t>(answer.size())).fill_(1);
  const auto scored = role->score({{actors::keys::sequences, sequences},
                                   {actors::keys::attention_mask, mask},
                                   {actors::keys::prompt_length, torch::full({2}, P, torch::kLong)}});
  const auto& reward = scored.at(actors::keys::reward_score);  // (B,)
  CHECK(torch::equal(reward, torch::full({2}, static_cast<float>(std::string(" friend").size()))));
  const auto requests = server.requests();
  REQUIRE(requests.size() == 1);  // both rows in one request
  CHECK(requests[0].at("prompts") == json({"Hello there", "Hello there"}));
  CHECK(requests[0].at("responses") == json({" friend", " friend"}));
}

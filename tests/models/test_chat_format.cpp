// Chat formats: rendering, the templates troupe writes and recognises, and the export
// that tests/reference/check_chat_template.py renders with transformers.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/models/chat_format.hpp>
#include <troupe/models/text_stream.hpp>
#include <troupe/models/tokenizer.hpp>

#include "model_fixtures.hpp"

using namespace troupe;
namespace fs = std::filesystem;

namespace {

std::vector<std::vector<models::ChatMessage>> conversations() {
  return {
      {{"user", "What is 2 plus 3?"}},
      {{"user", "hello there"}, {"assistant", "Hi! How can I help?"}, {"user", "Tell me a joke.\nA short one."}},
      {{"system", "You are terse."},
       {"user", "Name a colour."},
       {"assistant", "Blue."},
       {"user", "Another?"},
       {"assistant", "Red."},
       {"user", "  spaces  and ünïcödé  "}},
      {{"user", ""}},
  };
}

void copy_tokenizer(const fs::path& from, const fs::path& to) {
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
    if (fs::exists(from / name)) fs::copy_file(from / name, to / name, fs::copy_options::overwrite_existing);
}

}  // namespace

TEST_CASE("the troupe format renders the training prompts' turns", "[models][chat_format]") {
  const auto format = models::ChatFormat::Troupe;
  CHECK(models::render_chat(format, {{"user", "hi"}}) == "\n\nHuman: hi\n\nAssistant:");
  CHECK(models::render_chat(format, {{"user", "hi"}, {"assistant", "hello"}, {"user", "bye"}}) ==
        "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: bye\n\nAssistant:");
  CHECK(models::render_chat(format, {{"user", "hi"}}, false) == "\n\nHuman: hi");
  CHECK(models::render_chat(models::ChatFormat::DeepSpeedChat, {{"user", "hi"}, {"assistant", "yo"}, {"user", "ok"}}) ==
        " Human: hi\n Assistant: yo\n\n Human: ok\n Assistant: ");
  CHECK_THROWS_WITH(models::render_chat(format, {{"user", "a"}, {"tool", "b"}}), Catch::Contains("messages[1].role"));
}

TEST_CASE("troupe recognises the templates it writes and refuses others by naming --chat_format",
          "[models][chat_format]") {
  for (auto format : {models::ChatFormat::Troupe, models::ChatFormat::DeepSpeedChat})
    CHECK(models::recognize_chat_template(models::chat_template(format)) == format);
  CHECK_FALSE(models::recognize_chat_template("{{ messages }}"));

  const auto dir = test::scratch_dir("chat_format_resolve");
  CHECK(models::resolve_chat_format(dir, std::nullopt) == models::ChatFormat::Troupe);  // no tokenizer_config.json
  std::ofstream(dir / "tokenizer_config.json") << R"({"eos_token": "</s>", "chat_template": "{{ bos_token }}{{ x }}"})";
  CHECK_THROWS_WITH(models::resolve_chat_format(dir, std::nullopt), Catch::Contains("--chat_format"));
  CHECK(models::resolve_chat_format(dir, std::string("deepspeed_chat")) == models::ChatFormat::DeepSpeedChat);
  CHECK_THROWS_WITH(models::resolve_chat_format(dir, std::string("llama")), Catch::Contains("--chat_format"));

  models::write_chat_template(dir, models::ChatFormat::DeepSpeedChat);
  CHECK(models::resolve_chat_format(dir, std::nullopt) == models::ChatFormat::DeepSpeedChat);
  auto config = nlohmann::json::parse(std::ifstream(dir / "tokenizer_config.json"));
  CHECK(config["eos_token"] == "</s>");  // the other fields stay
}

TEST_CASE("a text stream hands out text that is never taken back", "[models][chat_format]") {
  std::shared_ptr<const models::Tokenizer> tokenizer = models::load_tokenizer(test::fixture_dir("opt"));
  const auto ids = tokenizer->encode(" Paris is nice.\n\nHuman: and Spain?", false);
  models::TextStream stream(tokenizer, {"Human:"}, /*trim=*/true);
  std::string streamed;
  for (auto id : ids) {
    streamed += stream.push(id);
    if (stream.stopped()) break;
  }
  streamed += stream.finish();
  CHECK(streamed == "Paris is nice.");
  CHECK(stream.text() == streamed);
  CHECK(stream.stopped());

  models::TextStream plain(tokenizer, {"zz"}, /*trim=*/false);
  std::string all;
  for (auto id : tokenizer->encode(" a z b zz c", false)) all += plain.push(id);
  all += plain.finish();
  CHECK(all == " a z b ");

  CHECK(models::complete_utf8_prefix("ab\xC3") == 2);
  CHECK(models::complete_utf8_prefix("ab\xE2\x82") == 2);
  CHECK(models::complete_utf8_prefix("ab\xE2\x82\xAC") == 5);
  CHECK(models::sanitize_utf8("a\xFF" "b") == "a\xEF\xBF\xBD" "b");
}

// Hidden: writes tokenizer directories with each template and the prompts troupe
// renders, for tests/reference/check_chat_template.py.
TEST_CASE("export chat templates for transformers", "[.chat_template_export]") {
  const auto root = fs::path(TROUPE_TEST_TMP_DIR) / "chat_templates";
  fs::remove_all(root);
  for (auto format : {models::ChatFormat::Troupe, models::ChatFormat::DeepSpeedChat}) {
    const auto dir = root / models::chat_format_name(format);
    fs::create_directories(dir);
    copy_tokenizer(test::fixture_dir("opt"), dir);
    models::write_chat_template(dir, format);
    nlohmann::json cases = nlohmann::json::array();
    for (const auto& messages : conversations()) {
      nlohmann::json m = nlohmann::json::array();
      for (const auto& message : messages) m.push_back({{"role", message.role}, {"content", message.content}});
      for (bool open : {true, false}) {
        // A conversation that ends with the user's turn, opened for the reply or not.
        cases.push_back({{"messages", m},
                         {"add_generation_prompt", open},
                         {"rendered", models::render_chat(format, messages, open)}});
      }
    }
    std::ofstream(dir / "troupe_cases.json") << cases.dump(2);
  }
  // A model trained by the CLI records its template the same way (engine/src/checkpoint.cpp).
  SUCCEED();
}

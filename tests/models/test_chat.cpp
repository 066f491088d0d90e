#include <catch2/catch.hpp>

#include <torch/torch.h>

#include <troupe/models/chat.hpp>
#include <troupe/models/pretrained.hpp>

#include "model_fixtures.hpp"

using namespace troupe;

namespace {

models::TextGenerator fixture_generator(int64_t max_new_tokens) {
  models::GenerationOptions options;
  options.max_new_tokens = max_new_tokens;
  std::shared_ptr<const models::Tokenizer> tokenizer = models::load_tokenizer(test::fixture_dir("opt"));
  return models::TextGenerator(models::load_pretrained(test::fixture_dir("opt")), tokenizer, options);
}

}  // namespace

TEST_CASE("a chat reply is cut at the next Human: turn", "[models][chat]") {
  CHECK(models::cut_reply(" Paris.\n Human: and Spain?") == "Paris.");
  CHECK(models::cut_reply("  4\n\n") == "4");
  CHECK(models::cut_reply("Human: hello") == "");
  CHECK(models::cut_reply("") == "");
  CHECK(models::cut_reply("no turn marker here ") == "no turn marker here");
}

TEST_CASE("chat keeps a running history in the training prompts' format and continues it greedily", "[models][chat]") {
  auto generator = fixture_generator(6);
  models::ChatSession chat(generator);
  auto first = chat.reply("hello there");
  const std::string first_prompt = "\n\nHuman: hello there\n\nAssistant:";
  CHECK(chat.history() == first_prompt + " " + first);
  // The reply is exactly the greedy continuation of the formatted prompt, cut at "Human:".
  auto direct = generator.complete({first_prompt}).front();
  CHECK(first == models::cut_reply(direct.text));

  auto second = chat.reply("and then?");
  CHECK(chat.history() == first_prompt + " " + first + "\n\nHuman: and then?\n\nAssistant: " + second);
  CHECK(chat.turns() == 2);

  chat.clear();
  CHECK(chat.history().empty());
  CHECK(chat.reply("hello there") == first);
}

TEST_CASE("a long chat keeps only the newest context that fits the model", "[models][chat]") {
  auto generator = fixture_generator(4);
  models::ChatSession chat(generator);
  std::string long_input;
  for (int i = 0; i < 400; ++i) long_input += "word ";
  CHECK_NOTHROW(chat.reply(long_input));
  CHECK_NOTHROW(chat.reply("still there?"));
}

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/models/bpe_trainer.hpp>
#include <troupe/models/tokenizer.hpp>

using troupe::models::BpeTrainerOptions;
using troupe::models::train_bpe_tokenizer;

namespace {

const std::filesystem::path fixtures = std::filesystem::path(TROUPE_FIXTURES_DIR) / "tokenizer";

/// The test strings of the reference fixtures: ASCII, accents, CJK, emoji, whitespace runs.
std::vector<std::string> case_texts() {
  std::ifstream in(fixtures / "cases.json");
  const auto all = nlohmann::json::parse(in);
  std::vector<std::string> texts;
  for (const auto& c : all.at("bpe")) texts.push_back(c.at("text").get<std::string>());
  REQUIRE(texts.size() > 20);
  return texts;
}

std::vector<std::string> corpus() {
  const std::vector<std::string> lines{
      "The actor generates answers; the critic estimates values; the reward model scores them.",
      "Supervised fine-tuning comes first, then the reward model, then PPO with a KL penalty.",
      "It's the model's answer, and they'll see whether it's right. We've trained it well.",
      "Numbers like 12345, 3.14159 and 2024-05-17 appear in text, and so do      spaces.",
      "Café, naïve, résumé: accents matter. 東京と北京。 Emoji too: 🤗 🚀.",
      "def step(batch):\n    loss = model(batch)\n    loss.backward()\n    return loss\n",
      "<s>Special tokens in training text</s> are cut out before counting words.<pad>",
  };
  std::vector<std::string> texts;
  for (int repeat = 0; repeat < 4; ++repeat) texts.insert(texts.end(), lines.begin(), lines.end());
  return texts;
}

BpeTrainerOptions options() {
  BpeTrainerOptions o;
  o.vocab_size = 400;
  o.min_frequency = 2;
  o.special_tokens = {"<s>", "<pad>", "</s>", "<unk>"};
  o.bos_token = "<s>";
  o.eos_token = "</s>";
  o.pad_token = "<pad>";
  o.unk_token = "<unk>";
  o.add_bos_token = true;
  return o;
}

std::string read(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("the BPE trainer learns merges, keeps special tokens first and round-trips text", "[tokenizer]") {
  auto tokenizer = train_bpe_tokenizer(corpus(), options());
  CHECK(tokenizer->vocab_size() == 400);
  CHECK(tokenizer->token_to_id("<s>") == 0);
  CHECK(tokenizer->token_to_id("<unk>") == 3);
  CHECK(tokenizer->token_to_id("!") == 4);  // the byte alphabet follows, by code point
  CHECK(tokenizer->bos_token_id() == 0);
  CHECK(tokenizer->eos_token_id() == 2);
  CHECK(tokenizer->pad_token_id() == 1);
  const std::string text = "the reward model's answer";
  const auto ids = tokenizer->encode(text);
  CHECK(ids.size() < text.size() / 2);  // merges learned from the corpus apply
  CHECK(tokenizer->encode(text, true).front() == 0);
  for (const auto& t : case_texts()) {
    INFO(t);
    CHECK(tokenizer->decode(tokenizer->encode(t)) == t);
  }
  CHECK(tokenizer->encode("a</s>b") == std::vector<int64_t>{*tokenizer->token_to_id("a"), 2, *tokenizer->token_to_id("b")});
}

TEST_CASE("BPE training is deterministic and min_frequency stops it early", "[tokenizer]") {
  const auto root = std::filesystem::path(TROUPE_TEST_TMP_DIR) / "tokenizer";
  train_bpe_tokenizer(corpus(), options())->save(root / "trained_a");
  train_bpe_tokenizer(corpus(), options())->save(root / "trained_b");
  CHECK(read(root / "trained_a" / "tokenizer.json") == read(root / "trained_b" / "tokenizer.json"));

  auto o = options();
  o.vocab_size = 100000;
  o.min_frequency = 1000;
  CHECK(train_bpe_tokenizer(corpus(), o)->vocab_size() == 260);
  o.vocab_size = 10;
  CHECK_THROWS_AS(train_bpe_tokenizer(corpus(), o), troupe::Error);
  o = options();
  o.bos_token = "<bos>";
  CHECK_THROWS_WITH(train_bpe_tokenizer(corpus(), o), Catch::Matchers::Contains("<bos>"));
}

namespace {

/// Saves `tokenizer` into TROUPE_TEST_TMP_DIR/name with troupe_cases.json: our ids.
void export_for_hugging_face(const troupe::models::Tokenizer& tokenizer, const std::string& name) {
  const auto dir = std::filesystem::path(TROUPE_TEST_TMP_DIR) / name;
  tokenizer.save(dir);
  nlohmann::json cases = nlohmann::json::array();
  for (const auto& text : case_texts()) {
    const auto ids = tokenizer.encode(text);
    cases.push_back({{"text", text}, {"ids", ids}, {"ids_special", tokenizer.encode(text, true)},
                     {"decoded", tokenizer.decode(ids)}});
  }
  auto id = [](std::optional<int64_t> value) { return value ? nlohmann::json(*value) : nlohmann::json(); };
  const nlohmann::json out = {{"cases", cases}, {"bos_token_id", id(tokenizer.bos_token_id())},
                              {"eos_token_id", id(tokenizer.eos_token_id())}, {"pad_token_id", id(tokenizer.pad_token_id())}};
  std::ofstream(dir / "troupe_cases.json") << out.dump(1);
  REQUIRE(std::filesystem::exists(dir / "tokenizer.json"));
}

}  // namespace

// Hidden from the default run: ctest runs it before check_trained_tokenizer.py, which
// checks that Hugging Face loads these files and encodes the strings to these ids.
TEST_CASE("export tokenizers troupe trained or saved, with our ids, for the Hugging Face check",
          "[.][tokenizer_export]") {
  auto trained = train_bpe_tokenizer(corpus(), options());
  CHECK(trained->bos_token_id() == 0);
  export_for_hugging_face(*trained, "trained_bpe");
  // Converted from vocab.json + merges.txt (OPT-like add_bos_token) to tokenizer.json.
  export_for_hugging_face(*troupe::models::load_tokenizer(fixtures / "bpe_vocab_merges"), "saved_vocab_merges");
  export_for_hugging_face(*troupe::models::load_tokenizer(fixtures / "bpe_llama3"), "saved_llama3");
}

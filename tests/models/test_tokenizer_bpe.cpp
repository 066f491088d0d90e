#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/models/bpe_tokenizer.hpp>
#include <troupe/models/tokenizer.hpp>

using Catch::Matchers::Contains;
using troupe::models::load_tokenizer;

namespace {

const std::filesystem::path fixtures = std::filesystem::path(TROUPE_FIXTURES_DIR) / "tokenizer";

/// An empty-enough scratch folder: the tokenizer files a test may leave are removed one
/// by one (libtorch exports a std::filesystem::remove_all that crashes when linked here).
std::filesystem::path scratch(const std::string& name) {
  auto dir = std::filesystem::path(TROUPE_TEST_TMP_DIR) / "tokenizer" / name;
  std::filesystem::create_directories(dir);
  for (const char* file : {"tokenizer.json", "vocab.json", "merges.txt", "tokenizer.model", "tokenizer_config.json",
                           "special_tokens_map.json", "added_tokens.json"}) {
    std::filesystem::remove(dir / file);
  }
  return dir;
}

void write(const std::filesystem::path& file, const std::string& text) {
  std::ofstream(file, std::ios::binary) << text;
}

std::string read(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("invalid UTF-8 encodes as bytes and decodes back to the same bytes", "[tokenizer]") {
  for (const char* name : {"bpe", "bpe_prefix", "bpe_sequence", "bpe_llama3", "bpe_vocab_merges"}) {
    auto tokenizer = load_tokenizer(fixtures / name);
    for (const std::string& text : {std::string("\xff\xfe"), std::string("abc\xe6\x97"), std::string("\xe6\x97"),
                                   std::string("x\xc3"), std::string("\xed\xa0\x80 surrogate"),
                                   std::string("\xc0\xaf overlong"), std::string("ok \xf4\x90\x80\x80 too big"),
                                   std::string("nul\0byte", 8), std::string("Hello</s>\xff world")}) {
      INFO(name << ": " << text);
      const auto ids = tokenizer->encode(text);
      CHECK_FALSE(ids.empty());
      // add_prefix_space puts a space before every piece between added tokens.
      const bool prefixed = std::string(name) == "bpe_prefix";
      const auto expected = prefixed ? " " + (text.find("</s>") != std::string::npos ? "Hello</s> \xff world" : text) : text;
      CHECK(tokenizer->decode(ids) == expected);
    }
  }
}

TEST_CASE("random bytes round-trip through every byte-level BPE", "[tokenizer]") {
  // Bytes biased to UTF-8 lead and continuation bytes, whitespace and "</s>"; no
  // 'm', 'z' or 'N', so <mask> (which strips spaces), xyzzy and "New York" never form.
  const std::string alphabet = "</s> \t\n\r'abc09\xc3\xa9\xe6\x97\xa5\xf0\x9f\xa4\x97\xff\x80\xc0";
  uint64_t state = 12345;
  auto next = [&]() { return (state = state * 6364136223846793005ULL + 1442695040888963407ULL) >> 33; };
  for (const char* name : {"bpe", "bpe_sequence", "bpe_llama3", "bpe_vocab_merges"}) {
    auto tokenizer = load_tokenizer(fixtures / name);
    for (int i = 0; i < 300; ++i) {
      std::string text;
      const auto length = next() % 40;
      for (uint64_t j = 0; j < length; ++j) text += alphabet[next() % alphabet.size()];
      INFO(name << ": " << text);
      REQUIRE(tokenizer->decode(tokenizer->encode(text)) == text);
    }
  }
}

TEST_CASE("decode(encode(x)) == x for text without added tokens", "[tokenizer]") {
  auto tokenizer = load_tokenizer(fixtures / "bpe");
  const std::string text = "Any text:  spaces\t\ttabs\n\nnew lines, ünïcödé, 東京, 🤗, and digits 1234567890.";
  CHECK(tokenizer->decode(tokenizer->encode(text)) == text);
  CHECK(tokenizer->decode(tokenizer->encode(text, true), true) == text);
}

TEST_CASE("save() writes files that load to the same tokenizer", "[tokenizer]") {
  for (const char* name : {"bpe", "bpe_vocab_merges", "spm"}) {
    auto original = load_tokenizer(fixtures / name);
    const auto dir = scratch(std::string("saved_") + name);
    original->save(dir);
    auto reloaded = load_tokenizer(dir);
    const std::string text = "Hello</s>world, it's a <pad> test with New York and 東京 🤗";
    INFO(name);
    CHECK(reloaded->encode(text) == original->encode(text));
    CHECK(reloaded->encode(text, true) == original->encode(text, true));
    CHECK(reloaded->bos_token_id() == original->bos_token_id());
    CHECK(reloaded->eos_token_id() == original->eos_token_id());
    CHECK(reloaded->pad_token_id() == original->pad_token_id());
    CHECK(reloaded->vocab_size() == original->vocab_size());
  }
}

TEST_CASE("save() keeps the other fields of tokenizer_config.json", "[tokenizer]") {
  const auto dir = scratch("chat_template");
  std::filesystem::copy_file(fixtures / "bpe" / "tokenizer.json", dir / "tokenizer.json");
  write(dir / "tokenizer_config.json", R"({"eos_token": "</s>", "chat_template": "{{ messages }}",
                                          "model_max_length": 2048, "add_bos_token": true})");
  const auto saved = scratch("chat_template_saved");
  load_tokenizer(dir)->save(saved);
  const auto config = nlohmann::json::parse(read(saved / "tokenizer_config.json"));
  CHECK(config.at("chat_template") == "{{ messages }}");
  CHECK(config.at("model_max_length") == 2048);
  CHECK(config.at("eos_token") == "</s>");
  CHECK(config.at("tokenizer_class") == "PreTrainedTokenizerFast");
  CHECK_FALSE(config.contains("add_bos_token"));
  CHECK(config.at("added_tokens_decoder").at("500").at("content") == "<mask>");
}

TEST_CASE("load_tokenizer prefers tokenizer.json, then vocab.json + merges.txt, then tokenizer.model", "[tokenizer]") {
  const auto dir = scratch("precedence");
  for (const char* file : {"vocab.json", "merges.txt"}) {
    std::filesystem::copy_file(fixtures / "bpe_vocab_merges" / file, dir / file);
  }
  std::filesystem::copy_file(fixtures / "spm" / "tokenizer.model", dir / "tokenizer.model");
  CHECK(dynamic_cast<troupe::models::BpeTokenizer*>(load_tokenizer(dir).get()) != nullptr);
  std::filesystem::remove(dir / "vocab.json");
  CHECK(load_tokenizer(dir)->vocab_size() == 500);  // SentencePiece now
  // A SentencePiece-style tokenizer.json (Llama 2) falls back to tokenizer.model.
  write(dir / "tokenizer.json", R"({"model": {"type": "Unigram", "vocab": []}, "pre_tokenizer": null})");
  CHECK(load_tokenizer(dir)->id_to_token(1) == "<s>");
}

TEST_CASE("tokenizer errors name the directory, the file and the field", "[tokenizer]") {
  const auto dir = scratch("errors");
  CHECK_THROWS_AS(load_tokenizer(dir), troupe::Error);
  CHECK_THROWS_WITH(load_tokenizer(dir), Contains(dir.string()) && Contains("tokenizer.json") &&
                                             Contains("merges.txt") && Contains("tokenizer.model"));

  write(dir / "tokenizer.json", "{\"model\": {\"type\": \"BPE\", ");
  CHECK_THROWS_WITH(load_tokenizer(dir), Contains("tokenizer.json") && Contains("malformed JSON"));

  const std::string wordpiece = R"({"model": {"type": "WordPiece", "vocab": {"a": 0}}, "pre_tokenizer": null})";
  write(dir / "tokenizer.json", wordpiece);
  CHECK_THROWS_WITH(load_tokenizer(dir), Contains("tokenizer.json") && Contains("model.type") && Contains("WordPiece"));

  auto spec = read(fixtures / "bpe" / "tokenizer.json");
  const auto byte_level = spec.find("\"type\": \"ByteLevel\"");
  REQUIRE(byte_level != std::string::npos);
  write(dir / "tokenizer.json", spec.substr(0, byte_level) + "\"type\": \"Metaspace\"" + spec.substr(byte_level + 19));
  CHECK_THROWS_WITH(load_tokenizer(dir), Contains("pre_tokenizer") && Contains("Metaspace"));

  write(dir / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]},
                                    "pre_tokenizer": {"type": "ByteLevel"}})");
  CHECK_THROWS_WITH(load_tokenizer(dir), Contains("model.merges[0]") && Contains("'ab'"));

  write(dir / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": ["a"], "merges": []},
                                    "pre_tokenizer": {"type": "ByteLevel"}})");
  CHECK_THROWS_WITH(load_tokenizer(dir), Contains("model.vocab"));

  std::filesystem::remove(dir / "tokenizer.json");
  write(dir / "vocab.json", R"({"a": 0, "b": 1, "ab": 2})");
  write(dir / "merges.txt", "#version: 0.2\na b\n");
  write(dir / "tokenizer_config.json", R"({"bos_token": )");
  CHECK_THROWS_WITH(load_tokenizer(dir), Contains("tokenizer_config.json") && Contains("malformed JSON"));
  write(dir / "tokenizer_config.json", R"({"bos_token": 7})");
  CHECK_THROWS_WITH(load_tokenizer(dir), Contains("tokenizer_config.json") && Contains("bos_token"));
  std::filesystem::remove(dir / "tokenizer_config.json");
  write(dir / "merges.txt", "#version: 0.2\na b c\n");
  CHECK_THROWS_WITH(load_tokenizer(dir), Contains("merges.txt:2"));

  write(dir / "merges.txt", "");
  write(dir / "vocab.json", "[");
  CHECK_THROWS_WITH(load_tokenizer(dir), Contains("vocab.json") && Contains("malformed JSON"));
}

TEST_CASE("GPT-2 files without config get GPT-2's <|endoftext|> defaults", "[tokenizer]") {
  const auto dir = scratch("gpt2_defaults");
  write(dir / "vocab.json", R"({"h": 0, "i": 1, "hi": 2, "<|endoftext|>": 3})");
  write(dir / "merges.txt", "#version: 0.2\nh i\n");
  auto tokenizer = load_tokenizer(dir);
  CHECK(tokenizer->eos_token_id() == 3);
  CHECK(tokenizer->bos_token_id() == 3);
  CHECK(tokenizer->pad_token_id() == std::nullopt);
  CHECK(tokenizer->encode("hi<|endoftext|>hih") == std::vector<int64_t>{2, 3, 2, 0});

  const auto json_dir = scratch("gpt2_defaults_json");
  tokenizer->save(json_dir);
  std::filesystem::remove(json_dir / "tokenizer_config.json");
  std::filesystem::remove(json_dir / "special_tokens_map.json");
  auto from_json = load_tokenizer(json_dir);
  CHECK(from_json->eos_token_id() == 3);
  CHECK(from_json->encode("hi<|endoftext|>hih") == std::vector<int64_t>{2, 3, 2, 0});
}

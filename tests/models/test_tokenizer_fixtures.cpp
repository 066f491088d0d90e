#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include <troupe/models/tokenizer.hpp>

namespace {

const std::filesystem::path fixtures = std::filesystem::path(TROUPE_FIXTURES_DIR) / "tokenizer";

nlohmann::json cases() {
  std::ifstream in(fixtures / "cases.json");
  return nlohmann::json::parse(in);
}

/// Every case of `name` in cases.json against the tokenizer loaded from fixtures/name.
void check_against_reference(const std::string& name) {
  auto tokenizer = troupe::models::load_tokenizer(fixtures / name);
  const auto all = cases();
  REQUIRE(all.at(name).size() > 20);
  for (const auto& c : all.at(name)) {
    const auto text = c.at("text").get<std::string>();
    INFO(name << ": " << text);
    const auto ids = c.at("ids").get<std::vector<int64_t>>();
    const auto ids_special = c.at("ids_special").get<std::vector<int64_t>>();
    CHECK(tokenizer->encode(text) == ids);
    CHECK(tokenizer->encode(text, /*add_special_tokens=*/true) == ids_special);
    CHECK(tokenizer->decode(ids) == c.at("decoded").get<std::string>());
    CHECK(tokenizer->decode(ids_special, /*skip_special_tokens=*/true) == c.at("decoded_skip_special").get<std::string>());
  }
}

}  // namespace

TEST_CASE("byte-level BPE from tokenizer.json matches Hugging Face tokenizers", "[tokenizer]") {
  check_against_reference("bpe");
}

TEST_CASE("add_prefix_space, NFKC, ignore_merges, RobertaProcessing and \"a b\" merges match Hugging Face",
          "[tokenizer]") {
  check_against_reference("bpe_prefix");
}

TEST_CASE("Sequence pre-tokenizer (Split + ByteLevel) and post-processor match Hugging Face", "[tokenizer]") {
  check_against_reference("bpe_sequence");
}

TEST_CASE("Llama 3's Split pattern with ignore_merges and a \"<s> $A\" template matches Hugging Face",
          "[tokenizer]") {
  check_against_reference("bpe_llama3");
}

TEST_CASE("GPT-2 style vocab.json + merges.txt matches transformers' GPT2Tokenizer", "[tokenizer]") {
  check_against_reference("bpe_vocab_merges");
}

TEST_CASE("SentencePiece tokenizer.model matches the sentencepiece library", "[tokenizer]") {
  check_against_reference("spm");
}

TEST_CASE("special token ids come from the tokenizer files", "[tokenizer]") {
  const auto all = cases();
  auto bpe = troupe::models::load_tokenizer(fixtures / "bpe");
  CHECK(bpe->bos_token_id() == 2);  // OPT-like: bos and eos are both </s>
  CHECK(bpe->eos_token_id() == 2);
  CHECK(bpe->pad_token_id() == 1);
  CHECK(bpe->vocab_size() == 503);
  CHECK(bpe->token_to_id("<mask>") == 500);
  CHECK(bpe->id_to_token(501) == "xyzzy");
  CHECK(bpe->token_to_id("no such token") == std::nullopt);

  auto merges = troupe::models::load_tokenizer(fixtures / "bpe_vocab_merges");
  CHECK(merges->bos_token_id() == 2);
  CHECK(merges->pad_token_id() == 1);
  CHECK(merges->token_to_id("<|sep|>") == 500);

  auto spm = troupe::models::load_tokenizer(fixtures / "spm");
  const auto& ids = all.at("spm_ids");
  CHECK(spm->bos_token_id() == ids.at("bos").get<int64_t>());
  CHECK(spm->eos_token_id() == ids.at("eos").get<int64_t>());
  CHECK(spm->pad_token_id() == ids.at("pad").get<int64_t>());
  CHECK(spm->vocab_size() == ids.at("vocab_size").get<int64_t>());
  CHECK(spm->id_to_token(*spm->bos_token_id()) == "<s>");
}

#include <troupe/models/bpe_tokenizer.hpp>

#include <troupe/common/files.hpp>

#include "tokenizer/bpe_tokenizer_impl.hpp"
#include "tokenizer/json_fields.hpp"
#include "tokenizer/tokenizer_config.hpp"
#include "tokenizer/tokenizer_json.hpp"

namespace troupe::models {

namespace tokenizer {

std::unique_ptr<BpeTokenizer> make_bpe_tokenizer(nlohmann::json spec, const std::string& file,
                                                 std::map<std::string, std::string> special_names,
                                                 std::vector<std::string> additional_special_tokens,
                                                 nlohmann::json config) {
  auto impl = std::make_unique<BpeTokenizer::Impl>();
  impl->pipeline = parse_tokenizer_json(spec, file);
  impl->spec = std::move(spec);
  impl->special_names = std::move(special_names);
  impl->additional_special_tokens = std::move(additional_special_tokens);
  impl->config = std::move(config);
  if (impl->pipeline.added.token_to_id(gpt2_end_of_text) || impl->pipeline.model->token_to_id(gpt2_end_of_text)) {
    for (const char* key : {"bos_token", "eos_token", "unk_token"}) impl->special_names.emplace(key, gpt2_end_of_text);
  }
  return std::make_unique<BpeTokenizer>(std::move(impl));
}

}  // namespace tokenizer

BpeTokenizer::BpeTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpeTokenizer::~BpeTokenizer() = default;

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tokenizer_json(const std::filesystem::path& file) {
  auto spec = tokenizer::read_json_file(file);
  auto config = tokenizer::read_tokenizer_config(file.parent_path());
  return tokenizer::make_bpe_tokenizer(std::move(spec), file.string(), std::move(config.special_names),
                                       std::move(config.additional_special_tokens), std::move(config.raw));
}

std::vector<int64_t> BpeTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  return impl_->pipeline.encode(text, add_special_tokens);
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  return impl_->pipeline.decode(ids, skip_special_tokens);
}

int64_t BpeTokenizer::vocab_size() const {
  return std::max(impl_->pipeline.model->id_bound(), impl_->pipeline.added.id_bound());
}

std::optional<int64_t> BpeTokenizer::token_to_id(std::string_view token) const {
  const std::string key(token);
  if (auto id = impl_->pipeline.added.token_to_id(key)) return *id;
  if (auto id = impl_->pipeline.model->token_to_id(key)) return *id;
  return std::nullopt;
}

std::string BpeTokenizer::id_to_token(int64_t id) const {
  const auto* token = impl_->pipeline.id_to_token(id);
  return token ? *token : std::string();
}

std::optional<int64_t> BpeTokenizer::named_token_id(const char* key) const {
  auto it = impl_->special_names.find(key);
  if (it == impl_->special_names.end()) return std::nullopt;
  return token_to_id(it->second);
}

std::optional<int64_t> BpeTokenizer::bos_token_id() const { return named_token_id("bos_token"); }
std::optional<int64_t> BpeTokenizer::eos_token_id() const { return named_token_id("eos_token"); }
std::optional<int64_t> BpeTokenizer::pad_token_id() const { return named_token_id("pad_token"); }
std::optional<int64_t> BpeTokenizer::unk_token_id() const { return named_token_id("unk_token"); }

void BpeTokenizer::save(const std::filesystem::path& dir) const {
  std::filesystem::create_directories(dir);
  using nlohmann::json;
  const auto dump = [](const json& value) { return value.dump(2, ' ', false, json::error_handler_t::replace) + "\n"; };
  write_file_atomically(dir / "tokenizer.json", dump(impl_->spec));

  json names = json::object();
  for (const auto& [key, content] : impl_->special_names) names[key] = content;
  if (!impl_->additional_special_tokens.empty()) names["additional_special_tokens"] = impl_->additional_special_tokens;

  // PreTrainedTokenizerFast runs tokenizer.json as it is; the config adds the names and
  // keeps what else the loaded one had (chat_template, model_max_length, ...). Flags
  // that other classes turn into a post-processor would apply twice, so they go.
  json config = impl_->config.is_object() ? impl_->config : json::object();
  for (const char* key : {"add_bos_token", "add_eos_token", "add_prefix_space", "auto_map", "tokenizer_file"}) {
    config.erase(key);
  }
  for (const auto& [key, content] : names.items()) config[key] = content;
  config["tokenizer_class"] = "PreTrainedTokenizerFast";
  if (!config.contains("clean_up_tokenization_spaces")) config["clean_up_tokenization_spaces"] = false;
  json decoder = json::object();
  for (const auto& token : impl_->pipeline.added.tokens()) {
    decoder[std::to_string(token.id)] = {{"content", token.content}, {"lstrip", token.lstrip},
                                         {"normalized", token.normalized}, {"rstrip", token.rstrip},
                                         {"single_word", token.single_word}, {"special", token.special}};
  }
  config["added_tokens_decoder"] = decoder;
  write_file_atomically(dir / "tokenizer_config.json", dump(config));
  write_file_atomically(dir / "special_tokens_map.json", dump(names));
}

}  // namespace troupe::models

#include "sentencepiece_tokenizer.hpp"

#include <map>

#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>

#include "tokenizer/tokenizer_config.hpp"

namespace troupe::models {

struct SentencePieceTokenizer::Impl {
  sentencepiece::SentencePieceProcessor processor;
  std::string serialized;  // the model file's bytes, written back by save()
  std::string where;
  std::optional<int64_t> bos, eos, pad;
  bool add_bos = true;
  bool add_eos = false;
  std::map<std::string, std::string> special_names;
};

SentencePieceTokenizer::SentencePieceTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_file(const std::filesystem::path& model_file) {
  auto impl = std::make_unique<Impl>();
  impl->where = model_file.string();
  impl->serialized = read_file(model_file);
  const auto status = impl->processor.LoadFromSerializedProto(impl->serialized);
  if (!status.ok()) throw Error(impl->where + ": not a SentencePiece model: " + status.ToString());
  auto& sp = impl->processor;
  auto own_id = [](int id) { return id >= 0 ? std::optional<int64_t>(id) : std::nullopt; };
  impl->bos = own_id(sp.bos_id());
  impl->eos = own_id(sp.eos_id());
  impl->pad = own_id(sp.pad_id());

  auto config = tokenizer::read_tokenizer_config(model_file.parent_path());
  auto named = [&](const char* key, std::optional<int64_t>& id) {
    if (auto content = config.name(key)) {
      const int found = sp.PieceToId(*content);
      if (found != sp.unk_id() || *content == sp.IdToPiece(sp.unk_id())) id = found;
    }
  };
  named("bos_token", impl->bos);
  named("eos_token", impl->eos);
  named("pad_token", impl->pad);
  impl->add_bos = config.add_bos_token.value_or(true);
  impl->add_eos = config.add_eos_token.value_or(false);
  for (const auto& [key, id] : {std::pair<const char*, std::optional<int64_t>>{"bos_token", impl->bos},
                                {"eos_token", impl->eos}, {"pad_token", impl->pad}}) {
    if (id) impl->special_names[key] = sp.IdToPiece(static_cast<int>(*id));
  }
  if (sp.unk_id() >= 0) impl->special_names["unk_token"] = sp.IdToPiece(sp.unk_id());
  return std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer(std::move(impl)));
}

std::vector<int64_t> SentencePieceTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int> pieces;
  const auto status = impl_->processor.Encode(text, &pieces);
  if (!status.ok()) throw Error(impl_->where + ": encode failed: " + status.ToString());
  std::vector<int64_t> ids;
  ids.reserve(pieces.size() + 2);
  if (add_special_tokens && impl_->add_bos && impl_->bos) ids.push_back(*impl_->bos);
  ids.insert(ids.end(), pieces.begin(), pieces.end());
  if (add_special_tokens && impl_->add_eos && impl_->eos) ids.push_back(*impl_->eos);
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  const auto& sp = impl_->processor;
  std::vector<int> pieces;
  pieces.reserve(ids.size());
  for (int64_t id : ids) {
    if (id < 0 || id >= sp.GetPieceSize()) continue;  // as Hugging Face: unknown ids vanish
    const int piece = static_cast<int>(id);
    if (skip_special_tokens && (sp.IsControl(piece) || sp.IsUnknown(piece) || id == impl_->bos ||
                                id == impl_->eos || id == impl_->pad)) {
      continue;
    }
    pieces.push_back(piece);
  }
  std::string text;
  const auto status = sp.Decode(pieces, &text);
  if (!status.ok()) throw Error(impl_->where + ": decode failed: " + status.ToString());
  return text;
}

int64_t SentencePieceTokenizer::vocab_size() const { return impl_->processor.GetPieceSize(); }

std::optional<int64_t> SentencePieceTokenizer::token_to_id(std::string_view token) const {
  const auto& sp = impl_->processor;
  const int id = sp.PieceToId(token);
  if (id == sp.unk_id() && token != sp.IdToPiece(id)) return std::nullopt;
  return id;
}

std::string SentencePieceTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  return impl_->processor.IdToPiece(static_cast<int>(id));
}

std::optional<int64_t> SentencePieceTokenizer::bos_token_id() const { return impl_->bos; }
std::optional<int64_t> SentencePieceTokenizer::eos_token_id() const { return impl_->eos; }
std::optional<int64_t> SentencePieceTokenizer::pad_token_id() const { return impl_->pad; }

void SentencePieceTokenizer::save(const std::filesystem::path& dir) const {
  std::filesystem::create_directories(dir);
  write_file_atomically(dir / "tokenizer.model", impl_->serialized);
  nlohmann::json names = nlohmann::json::object();
  for (const auto& [key, content] : impl_->special_names) names[key] = content;
  nlohmann::json config = names;
  config["tokenizer_class"] = "LlamaTokenizer";
  config["add_bos_token"] = impl_->add_bos;
  config["add_eos_token"] = impl_->add_eos;
  config["clean_up_tokenization_spaces"] = false;
  config["legacy"] = true;
  write_file_atomically(dir / "tokenizer_config.json", config.dump(2) + "\n");
  write_file_atomically(dir / "special_tokens_map.json", names.dump(2) + "\n");
}

}  // namespace troupe::models

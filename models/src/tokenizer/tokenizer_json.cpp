#include "tokenizer/tokenizer_json.hpp"

#include "tokenizer/errors.hpp"
#include "tokenizer/json_fields.hpp"

namespace troupe::models::tokenizer {
namespace {

using nlohmann::json;

[[noreturn]] void unsupported(const JsonPlace& place, const std::string& value, const std::string& supported) {
  throw UnsupportedTokenizer(place.file + ": field '" + place.path + "': unsupported '" + value +
                             "' (troupe supports " + supported + ")");
}

std::string type_of(const json& object, const JsonPlace& place) {
  if (!object.is_object()) place.fail("expected an object");
  return get_string(object, "type", place);
}

void parse_normalizer(const json& spec, const JsonPlace& place, Normalizer& normalizer) {
  if (spec.is_null()) return;
  const std::string type = type_of(spec, place);
  if (type == "Sequence") {
    const auto* list = find_field(spec, "normalizers");
    if (!list || !list->is_array()) (place / "normalizers").fail("expected an array");
    for (size_t i = 0; i < list->size(); ++i) parse_normalizer((*list)[i], (place / "normalizers").at(i), normalizer);
  } else if (type == "NFC") {
    normalizer.add(NormalForm::nfc);
  } else if (type == "NFKC") {
    normalizer.add(NormalForm::nfkc);
  } else if (type == "NFD") {
    normalizer.add(NormalForm::nfd);
  } else if (type == "NFKD") {
    normalizer.add(NormalForm::nfkd);
  } else {
    unsupported(place / "type", type, "null, NFC, NFKC, NFD, NFKD, Sequence");
  }
}

void parse_pre_tokenizer(const json& spec, const JsonPlace& place, std::vector<PreTokenizerStage>& stages) {
  const std::string type = type_of(spec, place);
  if (type == "Sequence") {
    const auto* list = find_field(spec, "pretokenizers");
    if (!list || !list->is_array()) (place / "pretokenizers").fail("expected an array");
    for (size_t i = 0; i < list->size(); ++i) {
      parse_pre_tokenizer((*list)[i], (place / "pretokenizers").at(i), stages);
    }
    return;
  }
  if (!stages.empty() && stages.back().kind == PreTokenizerStage::Kind::byte_level) {
    unsupported(place / "type", type + " after ByteLevel", "ByteLevel last in a Sequence");
  }
  if (type == "ByteLevel") {
    PreTokenizerStage stage;
    stage.add_prefix_space = get_bool(spec, "add_prefix_space", true, place);
    stage.use_regex = get_bool(spec, "use_regex", true, place);
    stages.push_back(stage);
  } else if (type == "Split") {
    const auto* pattern = find_field(spec, "pattern");
    const auto* regex = pattern ? find_field(*pattern, "Regex") : nullptr;
    const std::string text = regex && regex->is_string() ? regex->get<std::string>() : "";
    if (text != gpt2_split_pattern && text != llama3_split_pattern) {
      unsupported(place / "pattern", pattern ? pattern->dump() : "null", "the GPT-2 and Llama 3 patterns");
    }
    const auto behavior = get_optional_string(spec, "behavior", place).value_or("Isolated");
    if (behavior != "Isolated") unsupported(place / "behavior", behavior, "Isolated");
    if (get_bool(spec, "invert", false, place)) unsupported(place / "invert", "true", "false");
    const auto kind = text == gpt2_split_pattern ? PreTokenizerStage::Kind::split_gpt2 : PreTokenizerStage::Kind::split_llama3;
    stages.push_back({kind, false, true});
  } else {
    unsupported(place / "type", type, "ByteLevel, Split (GPT-2 or Llama 3 pattern), Sequence");
  }
}

std::vector<std::pair<std::string, std::string>> parse_merges(const json& list, const JsonPlace& place) {
  if (!list.is_array()) place.fail("expected an array");
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& item = list[i];
    if (item.is_string()) {
      // The old form "a b": exactly one space, as `tokenizers` requires.
      const auto& text = item.get_ref<const std::string&>();
      const auto space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        place.at(i).fail("expected \"a b\" with one space, got \"" + text + "\"");
      }
      merges.emplace_back(text.substr(0, space), text.substr(space + 1));
    } else if (item.is_array() && item.size() == 2 && item[0].is_string() && item[1].is_string()) {
      merges.emplace_back(item[0].get<std::string>(), item[1].get<std::string>());
    } else {
      place.at(i).fail("expected \"a b\" or [a, b]");
    }
  }
  return merges;
}

std::unique_ptr<BpeModel> parse_model(const json& spec, const JsonPlace& place) {
  if (!spec.is_object()) place.fail("expected an object");
  // Files from old `tokenizers` versions carry no type; vocab plus merges means BPE.
  const auto type = get_optional_string(spec, "type", place).value_or(spec.contains("merges") ? "BPE" : "");
  if (type != "BPE") unsupported(place / "type", type.empty() ? "(none)" : type, "BPE");
  const auto* dropout = find_field(spec, "dropout");
  if (dropout && !(dropout->is_number() && dropout->get<double>() == 0.0)) {
    unsupported(place / "dropout", dropout->dump(), "null (encoding is deterministic)");
  }
  const auto* vocab_spec = find_field(spec, "vocab");
  if (!vocab_spec || !vocab_spec->is_object()) (place / "vocab").fail("expected an object of token: id");
  std::unordered_map<std::string, int32_t> vocab;
  vocab.reserve(vocab_spec->size());
  for (const auto& [token, id] : vocab_spec->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      (place / "vocab").fail("id of '" + token + "' is not a non-negative integer");
    }
    vocab.emplace(token, id.get<int32_t>());
  }
  const auto* merges_spec = find_field(spec, "merges");
  auto merges = merges_spec ? parse_merges(*merges_spec, place / "merges")
                            : std::vector<std::pair<std::string, std::string>>{};
  BpeModelOptions options;
  options.unk_token = get_optional_string(spec, "unk_token", place);
  options.continuing_subword_prefix = get_optional_string(spec, "continuing_subword_prefix", place);
  options.end_of_word_suffix = get_optional_string(spec, "end_of_word_suffix", place);
  options.fuse_unk = get_bool(spec, "fuse_unk", false, place);
  options.byte_fallback = get_bool(spec, "byte_fallback", false, place);
  options.ignore_merges = get_bool(spec, "ignore_merges", false, place);
  return std::make_unique<BpeModel>(std::move(vocab), merges, std::move(options), place.file);
}

/// A ["token", id] pair of RobertaProcessing / BertProcessing.
TemplatePiece parse_token_pair(const json& spec, const JsonPlace& place) {
  if (!spec.is_array() || spec.size() != 2 || !spec[1].is_number_integer()) place.fail("expected [token, id]");
  return {false, {spec[1].get<int64_t>()}};
}

void parse_post_processor(const json& spec, const JsonPlace& place, std::vector<Template>& templates) {
  if (spec.is_null()) return;
  const std::string type = type_of(spec, place);
  if (type == "Sequence") {
    const auto* list = find_field(spec, "processors");
    if (!list || !list->is_array()) (place / "processors").fail("expected an array");
    for (size_t i = 0; i < list->size(); ++i) parse_post_processor((*list)[i], (place / "processors").at(i), templates);
  } else if (type == "ByteLevel") {
    return;  // it only trims offsets
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    const auto* cls = find_field(spec, "cls");
    const auto* sep = find_field(spec, "sep");
    if (!cls) (place / "cls").fail("missing");
    if (!sep) (place / "sep").fail("missing");
    templates.push_back({parse_token_pair(*cls, place / "cls"), {true, {}}, parse_token_pair(*sep, place / "sep")});
  } else if (type == "TemplateProcessing") {
    const auto* single = find_field(spec, "single");
    if (!single || !single->is_array()) (place / "single").fail("expected an array");
    const auto* specials = find_field(spec, "special_tokens");
    Template pieces;
    for (size_t i = 0; i < single->size(); ++i) {
      const auto& item = (*single)[i];
      const auto item_place = (place / "single").at(i);
      if (const auto* sequence = find_field(item, "Sequence")) {
        const auto id = get_string(*sequence, "id", item_place / "Sequence");
        if (id != "A") unsupported(item_place / "Sequence.id", id, "A in the single template");
        pieces.push_back({true, {}});
      } else if (const auto* special = find_field(item, "SpecialToken")) {
        const auto name = get_string(*special, "id", item_place / "SpecialToken");
        const auto* entry = specials ? find_field(*specials, name) : nullptr;
        const auto* ids = entry ? find_field(*entry, "ids") : nullptr;
        if (!ids || !ids->is_array()) (place / "special_tokens" / name / "ids").fail("missing for the template");
        TemplatePiece piece;
        for (const auto& id : *ids) {
          if (!id.is_number_integer()) (place / "special_tokens" / name / "ids").fail("expected integers");
          piece.ids.push_back(id.get<int64_t>());
        }
        pieces.push_back(std::move(piece));
      } else {
        item_place.fail("expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
      }
    }
    templates.push_back(std::move(pieces));
  } else {
    unsupported(place / "type", type, "ByteLevel, TemplateProcessing, RobertaProcessing, BertProcessing, Sequence");
  }
}

bool parse_decoder(const json& spec, const JsonPlace& place) {
  if (spec.is_null()) return false;
  const std::string type = type_of(spec, place);
  if (type == "ByteLevel") return true;
  if (type == "Sequence") {
    const auto* list = find_field(spec, "decoders");
    if (list && list->is_array() && list->size() == 1) return parse_decoder((*list)[0], (place / "decoders").at(0));
  }
  unsupported(place / "type", type, "null, ByteLevel");
}

AddedVocabulary parse_added_tokens(const json& list, const JsonPlace& place, const Normalizer& normalizer) {
  if (list.is_null()) return {};
  if (!list.is_array()) place.fail("expected an array");
  std::vector<AddedToken> tokens;
  std::vector<std::string> normalized;
  for (size_t i = 0; i < list.size(); ++i) {
    const auto item_place = place.at(i);
    const auto& item = list[i];
    if (!item.is_object()) item_place.fail("expected an object");
    AddedToken token;
    const auto id = get_int(item, "id", item_place);
    if (id < 0 || id > INT32_MAX) (item_place / "id").fail("out of range");
    token.id = static_cast<int32_t>(id);
    token.content = get_string(item, "content", item_place);
    token.special = get_bool(item, "special", false, item_place);
    token.lstrip = get_bool(item, "lstrip", false, item_place);
    token.rstrip = get_bool(item, "rstrip", false, item_place);
    token.single_word = get_bool(item, "single_word", false, item_place);
    token.normalized = get_bool(item, "normalized", !token.special, item_place);
    normalized.push_back(token.normalized && !normalizer.empty() ? normalizer.apply(token.content) : token.content);
    tokens.push_back(std::move(token));
  }
  return AddedVocabulary(std::move(tokens), normalized);
}

}  // namespace

BpePipeline parse_tokenizer_json(const json& spec, const std::string& file) {
  const JsonPlace root{file, ""};
  if (!spec.is_object()) throw Error(file + ": expected a JSON object at the top level");
  BpePipeline pipeline;
  static const json null_value;
  auto field = [&](const char* key) -> const json& {
    const auto* value = find_field(spec, key);
    return value ? *value : null_value;
  };
  if (!spec.contains("model")) (root / "model").fail("missing");
  pipeline.model = parse_model(spec.at("model"), root / "model");
  parse_normalizer(field("normalizer"), root / "normalizer", pipeline.normalizer);
  const auto& pre_tokenizer = field("pre_tokenizer");
  if (pre_tokenizer.is_null()) unsupported(root / "pre_tokenizer", "null", "ByteLevel (byte-level BPE)");
  parse_pre_tokenizer(pre_tokenizer, root / "pre_tokenizer", pipeline.pre_tokenizer);
  if (pipeline.pre_tokenizer.empty() || pipeline.pre_tokenizer.back().kind != PreTokenizerStage::Kind::byte_level) {
    unsupported(root / "pre_tokenizer", pre_tokenizer.dump().substr(0, 80), "a ByteLevel pre-tokenizer (byte-level BPE)");
  }
  parse_post_processor(field("post_processor"), root / "post_processor", pipeline.post_processors);
  pipeline.byte_level_decoder = parse_decoder(field("decoder"), root / "decoder");
  pipeline.added = parse_added_tokens(field("added_tokens"), root / "added_tokens", pipeline.normalizer);
  return pipeline;
}

}  // namespace troupe::models::tokenizer

namespace troupe::models::tokenizer {

nlohmann::json make_byte_level(bool add_prefix_space) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"trim_offsets", true}, {"use_regex", true}};
}

nlohmann::json make_post_processor(const std::optional<std::pair<std::string, int64_t>>& bos,
                                   const std::optional<std::pair<std::string, int64_t>>& eos) {
  using nlohmann::json;
  if (!bos && !eos) return {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  json specials = json::object();
  auto frame = [&](const std::string& sequence, int type_id) {
    json items = json::array();
    if (bos) items.push_back({{"SpecialToken", {{"id", bos->first}, {"type_id", type_id}}}});
    items.push_back({{"Sequence", {{"id", sequence}, {"type_id", type_id}}}});
    if (eos) items.push_back({{"SpecialToken", {{"id", eos->first}, {"type_id", type_id}}}});
    return items;
  };
  for (const auto& token : {bos, eos}) {
    if (token) specials[token->first] = {{"id", token->first}, {"ids", {token->second}}, {"tokens", {token->first}}};
  }
  json pair = frame("A", 0);
  for (auto& item : frame("B", 1)) pair.push_back(item);
  return {{"type", "TemplateProcessing"}, {"single", frame("A", 0)}, {"pair", pair}, {"special_tokens", specials}};
}

}  // namespace troupe::models::tokenizer

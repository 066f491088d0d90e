/// The built-in adapters, one per dataset schema of REFERENCE.md, and their registry.
#include <troupe/data/adapters.hpp>

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>

#include <nlohmann/json.hpp>

namespace troupe::data {
namespace {

using nlohmann::json;

std::string type_name(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_array()) return "an array";
  return "an object";
}

/// The value at a dotted path ("question.full_text"), or nullptr when absent.
const json* find_field(const json& row, const std::string& path) {
  const json* at = &row;
  size_t start = 0;
  while (true) {
    const auto dot = path.find('.', start);
    const auto key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!at->is_object()) return nullptr;
    auto it = at->find(key);
    if (it == at->end()) return nullptr;
    at = &*it;
    if (dot == std::string::npos) return at;
    start = dot + 1;
  }
}

std::string required_string(const json& row, const std::string& field) {
  const json* v = find_field(row, field);
  if (!v) throw SampleError("field '" + field + "': missing (expected a string)");
  if (!v->is_string()) throw SampleError("field '" + field + "': expected a string, got " + type_name(*v));
  return v->get<std::string>();
}

/// Absent and null both mean "not given" (the local schema lets any field be absent).
std::optional<std::string> optional_string(const json& row, const std::string& field) {
  const json* v = find_field(row, field);
  if (!v || v->is_null()) return std::nullopt;
  if (!v->is_string()) throw SampleError("field '" + field + "': expected a string or null, got " + type_name(*v));
  return v->get<std::string>();
}

double required_number(const json& row, const std::string& field) {
  const json* v = find_field(row, field);
  if (!v) throw SampleError("field '" + field + "': missing (expected a number)");
  if (!v->is_number()) throw SampleError("field '" + field + "': expected a number, got " + type_name(*v));
  return v->get<double>();
}

/// Dahoas/rm-static and Dahoas/full-hh-rlhf: the prompt already holds the formatted
/// conversation ending in "\n\nAssistant:"; chosen/rejected are the responses.
std::optional<Sample> hh_adapter(const json& row) {
  return Sample{required_string(row, "prompt"), required_string(row, "chosen"), required_string(row, "rejected")};
}

/// Dahoas/synthetic-instruct-gptj-pairwise: a bare instruction and bare answers.
std::optional<Sample> synthetic_gptj_adapter(const json& row) {
  return Sample{format_prompt(required_string(row, "prompt")), " " + required_string(row, "chosen"),
                " " + required_string(row, "rejected")};
}

/// yitingxie/rlhf-reward-datasets: the prompt ends before the assistant's turn and the
/// responses start with it ("\n\nAssistant: ..."); the turn marker moves to the prompt
/// so that prompt + chosen is the dataset's own prompt + chosen text.
std::optional<Sample> yitingxie_adapter(const json& row) {
  const std::string marker = "Assistant:";
  const auto prompt = required_string(row, "prompt");
  const auto chosen = required_string(row, "chosen");
  const auto rejected = required_string(row, "rejected");
  const auto at = chosen.find(marker);
  if (at == std::string::npos) throw SampleError("field 'chosen': expected text starting with the \"Assistant:\" turn");
  const auto r_at = rejected.find(marker);
  if (r_at == std::string::npos) throw SampleError("field 'rejected': expected text starting with the \"Assistant:\" turn");
  return Sample{prompt + chosen.substr(0, at + marker.size()), chosen.substr(at + marker.size()),
                rejected.substr(r_at + marker.size())};
}

/// openai/webgpt_comparisons: two answers with scores; the higher score is chosen.
/// A tie gives no preference: the row still serves step 1 (answer_0) and step 3, but
/// has no rejected answer, so step 2 skips it.
std::optional<Sample> webgpt_adapter(const json& row) {
  const auto question = required_string(row, "question.full_text");
  const auto a0 = strip_citations(required_string(row, "answer_0"));
  const auto a1 = strip_citations(required_string(row, "answer_1"));
  const double s0 = required_number(row, "score_0");
  const double s1 = required_number(row, "score_1");
  Sample s;
  s.prompt = format_prompt(question);
  if (s0 == s1) {
    s.chosen = " " + a0;
  } else {
    s.chosen = " " + (s0 > s1 ? a0 : a1);
    s.rejected = " " + (s0 > s1 ? a1 : a0);
  }
  return s;
}

/// stanfordnlp/SHP: a post (`history`) and two human replies; labels 1 = A preferred.
std::optional<Sample> shp_adapter(const json& row) {
  const auto history = required_string(row, "history");
  const auto a = required_string(row, "human_ref_A");
  const auto b = required_string(row, "human_ref_B");
  const json* label = find_field(row, "labels");
  if (!label) throw SampleError("field 'labels': missing (expected 0 or 1)");
  if (!label->is_number_integer() || (label->get<int64_t>() != 0 && label->get<int64_t>() != 1))
    throw SampleError("field 'labels': expected 0 or 1, got " + label->dump());
  const bool a_preferred = label->get<int64_t>() == 1;
  return Sample{format_prompt(history), " " + (a_preferred ? a : b), " " + (a_preferred ? b : a)};
}

/// A local JSON/JSONL file: prompt, chosen, rejected used as written; any may be absent.
std::optional<Sample> local_adapter(const json& row) {
  Sample s{optional_string(row, "prompt"), optional_string(row, "chosen"), optional_string(row, "rejected")};
  if (!s.prompt && !s.chosen && !s.rejected)
    throw SampleError("fields 'prompt', 'chosen', 'rejected': all missing (expected at least one string)");
  return s;
}

struct Registry {
  std::mutex mutex;
  std::map<std::string, Adapter> adapters{
      {"Dahoas/rm-static", hh_adapter},
      {"Dahoas/full-hh-rlhf", hh_adapter},
      {"Dahoas/synthetic-instruct-gptj-pairwise", synthetic_gptj_adapter},
      {"yitingxie/rlhf-reward-datasets", yitingxie_adapter},
      {"openai/webgpt_comparisons", webgpt_adapter},
      {"stanfordnlp/SHP", shp_adapter},
      {"local/jsonfile", local_adapter},
  };
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

const Adapter& find_adapter(const std::string& schema) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.adapters.find(schema);
  if (it == r.adapters.end()) {
    std::string known;
    for (const auto& [name, _] : r.adapters) known += (known.empty() ? "" : ", ") + name;
    throw Error("unknown dataset schema '" + schema + "' (known: " + known + ")");
  }
  return it->second;
}

void register_adapter(const std::string& schema, Adapter adapter) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.adapters[schema] = std::move(adapter);
}

std::vector<std::string> known_schemas() {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& [name, _] : r.adapters) names.push_back(name);
  return names;
}

std::string format_prompt(const std::string& question) { return "\n\nHuman: " + question + "\n\nAssistant:"; }

std::string strip_citations(const std::string& text) {
  // A citation is "[" digits (separated by ", " or "-") "]"; consecutive ones and one
  // space before the first go with it.
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  auto citation_end = [&](size_t at) -> size_t {
    if (at >= text.size() || text[at] != '[') return 0;
    size_t j = at + 1;
    bool digit = false;
    while (j < text.size() && (std::isdigit(static_cast<unsigned char>(text[j])) || text[j] == ',' ||
                               text[j] == ' ' || text[j] == '-')) {
      digit = digit || std::isdigit(static_cast<unsigned char>(text[j]));
      ++j;
    }
    return (digit && j < text.size() && text[j] == ']') ? j + 1 : 0;
  };
  while (i < text.size()) {
    size_t start = i;
    if (text[i] == ' ' && citation_end(i + 1)) start = i + 1;
    size_t end = citation_end(start);
    if (!end) {
      out += text[i++];
      continue;
    }
    while (size_t next = citation_end(end)) end = next;
    i = end;
  }
  return out;
}

}  // namespace troupe::data

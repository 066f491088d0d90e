#include "serve_api.hpp"

namespace troupe::apps::serve {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

ApiError bad(const std::string& param, const std::string& message) {
  return ApiError(400, message, "invalid_request_error", param);
}

/// A JSON type in words, for messages such as "expected a string, got an array".
std::string type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a number";
    default: return "an integer";
  }
}

double number_field(const json& v, const std::string& name, double low, double high) {
  if (!v.is_number()) throw bad(name, name + " must be a number, got " + type_name(v));
  const double x = v.get<double>();
  if (!(x >= low && x <= high))
    throw bad(name, name + " must be in [" + dump(json(low)) + ", " + dump(json(high)) + "], got " + dump(v));
  return x;
}

int64_t integer_field(const json& v, const std::string& name) {
  if (!v.is_number_integer()) throw bad(name, name + " must be an integer, got " + type_name(v));
  return v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : v.get<int64_t>();
}

std::string string_field(const json& v, const std::string& name) {
  if (!v.is_string()) throw bad(name, name + " must be a string, got " + type_name(v));
  return v.get<std::string>();
}

/// A message's content: a string, or an array of {"type": "text", "text": ...} parts.
std::string content_of(const json& v, const std::string& name) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  if (!v.is_array()) throw bad(name, name + " must be a string or an array of text parts, got " + type_name(v));
  std::string text;
  for (size_t i = 0; i < v.size(); ++i) {
    const auto part = name + "[" + std::to_string(i) + "]";
    if (!v[i].is_object() || v[i].value("type", json()) != "text" || !v[i].contains("text"))
      throw bad(part, part + " must be {\"type\": \"text\", \"text\": ...}; only text parts are supported");
    text += string_field(v[i]["text"], part + ".text");
  }
  return text;
}

std::vector<models::ChatMessage> messages_of(const json& v) {
  if (!v.is_array()) throw bad("messages", "messages must be an array, got " + type_name(v));
  if (v.empty()) throw bad("messages", "messages must not be empty");
  std::vector<models::ChatMessage> out;
  for (size_t i = 0; i < v.size(); ++i) {
    const auto name = "messages[" + std::to_string(i) + "]";
    if (!v[i].is_object()) throw bad(name, name + " must be an object, got " + type_name(v[i]));
    if (!v[i].contains("role")) throw bad(name + ".role", name + ".role is required");
    auto role = string_field(v[i]["role"], name + ".role");
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant")
      throw bad(name + ".role", name + ".role must be system, user or assistant, got \"" + role + "\"");
    if (!v[i].contains("content")) throw bad(name + ".content", name + ".content is required");
    out.push_back({role, content_of(v[i]["content"], name + ".content")});
  }
  return out;
}

void prompt_of(const json& v, ApiRequest& r) {
  if (v.is_string()) {
    r.prompt = v.get<std::string>();
    return;
  }
  if (v.is_array() && v.size() == 1 && v[0].is_string()) {
    r.prompt = v[0].get<std::string>();
    return;
  }
  if (v.is_array() && !v.empty() && v[0].is_number_integer()) {
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_number_integer() || v[i].get<int64_t>() < 0)
        throw bad("prompt", "prompt[" + std::to_string(i) + "] must be a token id (a non-negative integer)");
      r.prompt_ids.push_back(v[i].get<int64_t>());
    }
    return;
  }
  throw bad("prompt", "prompt must be a string, an array of one string, or an array of token ids; got " + type_name(v));
}

ojson usage(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

ojson base(const CompletionInfo& info, const char* object) {
  return {{"id", info.id}, {"object", object}, {"created", info.created}, {"model", info.model}};
}

ojson reason_or_null(const std::optional<std::string>& reason) { return reason ? ojson(*reason) : ojson(nullptr); }

}  // namespace

ojson ApiError::body() const {
  return {{"error",
           {{"message", what()},
            {"type", type},
            {"param", param ? ojson(*param) : ojson(nullptr)},
            {"code", code ? ojson(*code) : ojson(nullptr)}}}};
}

std::string dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }
std::string dump(const ojson& value) { return value.dump(-1, ' ', false, ojson::error_handler_t::replace); }

ApiRequest parse_request(Endpoint endpoint, const std::string& body, int64_t max_tokens_limit) {
  json doc;
  try {
    doc = json::parse(body);
  } catch (const json::exception& e) {  // a syntax error, or a number out of range (1e999)
    throw ApiError(400, std::string("the body is not valid JSON: ") + e.what());
  }
  if (!doc.is_object()) throw ApiError(400, "the body must be a JSON object, got " + type_name(doc));
  ApiRequest r;
  r.endpoint = endpoint;
  auto field = [&](const char* name) -> const json* {
    auto it = doc.find(name);
    return it == doc.end() || it->is_null() ? nullptr : &*it;
  };
  if (auto v = field("model")) r.model = string_field(*v, "model");
  if (endpoint == Endpoint::ChatCompletions) {
    auto v = field("messages");
    if (!v) throw bad("messages", "messages is required");
    r.messages = messages_of(*v);
  } else {
    auto v = field("prompt");
    if (!v) throw bad("prompt", "prompt is required");
    prompt_of(*v, r);
  }
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    if (auto v = field(name)) {
      const auto n = integer_field(*v, name);
      if (n < 1 || n > max_tokens_limit)
        throw bad(name, std::string(name) + " must be in [1, " + std::to_string(max_tokens_limit) + "], got " +
                            std::to_string(n));
      r.max_tokens = n;
    }
  }
  if (auto v = field("temperature")) r.temperature = number_field(*v, "temperature", 0.0, 2.0);
  if (auto v = field("top_p")) {
    r.top_p = number_field(*v, "top_p", 0.0, 1.0);
    if (r.top_p <= 0.0) throw bad("top_p", "top_p must be in (0, 1], got " + dump(*v));
  }
  if (auto v = field("top_k")) {
    r.top_k = integer_field(*v, "top_k");
    if (r.top_k == -1) r.top_k = 0;  // vLLM's "off"
    if (r.top_k < 0) throw bad("top_k", "top_k must be >= 0 (or -1 for off), got " + std::to_string(r.top_k));
  }
  if (auto v = field("stop")) {
    if (v->is_string()) {
      r.stop.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      if (v->size() > 16) throw bad("stop", "stop takes at most 16 strings");
      for (size_t i = 0; i < v->size(); ++i) r.stop.push_back(string_field((*v)[i], "stop[" + std::to_string(i) + "]"));
    } else {
      throw bad("stop", "stop must be a string or an array of strings, got " + type_name(*v));
    }
  }
  if (auto v = field("seed")) r.seed = static_cast<uint64_t>(integer_field(*v, "seed"));
  if (auto v = field("stream")) {
    if (!v->is_boolean()) throw bad("stream", "stream must be a boolean, got " + type_name(*v));
    r.stream = v->get<bool>();
  }
  if (auto v = field("stream_options")) {
    if (!v->is_object()) throw bad("stream_options", "stream_options must be an object, got " + type_name(*v));
    if (auto it = v->find("include_usage"); it != v->end() && !it->is_null()) {
      if (!it->is_boolean())
        throw bad("stream_options.include_usage", "stream_options.include_usage must be a boolean, got " + type_name(*it));
      r.include_usage = it->get<bool>();
    }
  }
  if (auto v = field("ignore_eos")) {
    if (!v->is_boolean()) throw bad("ignore_eos", "ignore_eos must be a boolean, got " + type_name(*v));
    r.ignore_eos = v->get<bool>();
  }
  if (auto v = field("n")) {
    if (integer_field(*v, "n") != 1) throw bad("n", "n must be 1: one choice per request");
  }
  return r;
}

std::string finish_reason_name(bool length) { return length ? "length" : "stop"; }

ojson chat_completion(const CompletionInfo& info, const std::string& text, const std::string& finish_reason,
                     int64_t prompt_tokens, int64_t completion_tokens) {
  auto out = base(info, "chat.completion");
  out["choices"] = ojson::array({{{"index", 0},
                                 {"message", {{"role", "assistant"}, {"content", text}}},
                                 {"logprobs", nullptr},
                                 {"finish_reason", finish_reason}}});
  out["usage"] = usage(prompt_tokens, completion_tokens);
  return out;
}

ojson text_completion(const CompletionInfo& info, const std::string& text, const std::string& finish_reason,
                     int64_t prompt_tokens, int64_t completion_tokens) {
  auto out = base(info, "text_completion");
  out["choices"] =
      ojson::array({{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish_reason}}});
  out["usage"] = usage(prompt_tokens, completion_tokens);
  return out;
}

ojson chat_chunk(const CompletionInfo& info, const std::optional<std::string>& text, bool first,
                const std::optional<std::string>& finish_reason) {
  auto out = base(info, "chat.completion.chunk");
  ojson delta = ojson::object();
  if (first) delta["role"] = "assistant";
  if (text) delta["content"] = *text;
  out["choices"] = ojson::array(
      {{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", reason_or_null(finish_reason)}}});
  return out;
}

ojson text_chunk(const CompletionInfo& info, const std::string& text, const std::optional<std::string>& finish_reason) {
  auto out = base(info, "text_completion");
  out["choices"] = ojson::array(
      {{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", reason_or_null(finish_reason)}}});
  return out;
}

ojson usage_chunk(const CompletionInfo& info, bool chat, int64_t prompt_tokens, int64_t completion_tokens) {
  auto out = base(info, chat ? "chat.completion.chunk" : "text_completion");
  out["choices"] = ojson::array();
  out["usage"] = usage(prompt_tokens, completion_tokens);
  return out;
}

}  // namespace troupe::apps::serve

#include <troupe/models/chat_format.hpp>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>

namespace troupe::models {
namespace {

/// Every piece of text sits in a Jinja string literal (real newlines in them), never
/// between tags, so transformers' trim_blocks / lstrip_blocks cannot change it.
const char* const kTroupeTemplate =
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}{{ '\n\nHuman: ' + message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{{ '\n\nAssistant: ' + message['content'] }}"
    "{% else %}{{ raise_exception('roles are system, user and assistant') }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '\n\nAssistant:' }}{% endif %}";

const char* const kDeepSpeedChatTemplate =
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}{{ ' Human: ' + message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{{ '\n Assistant: ' + message['content'] + '\n\n' }}"
    "{% else %}{{ raise_exception('roles are system, user and assistant') }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '\n Assistant: ' }}{% endif %}";

}  // namespace

ChatFormat chat_format_from_name(const std::string& name, const std::string& where) {
  if (name == "troupe") return ChatFormat::Troupe;
  if (name == "deepspeed_chat") return ChatFormat::DeepSpeedChat;
  throw Error(where + ": unknown chat format \"" + name + "\"; known: troupe, deepspeed_chat");
}

std::string chat_format_name(ChatFormat format) {
  return format == ChatFormat::Troupe ? "troupe" : "deepspeed_chat";
}

std::string chat_template(ChatFormat format) {
  return format == ChatFormat::Troupe ? kTroupeTemplate : kDeepSpeedChatTemplate;
}

std::optional<ChatFormat> recognize_chat_template(const std::string& text) {
  for (auto format : {ChatFormat::Troupe, ChatFormat::DeepSpeedChat})
    if (text == chat_template(format)) return format;
  return std::nullopt;
}

std::string render_chat(ChatFormat format, const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  const bool troupe = format == ChatFormat::Troupe;
  std::string out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (m.role == "system") {
      out += m.content;
    } else if (m.role == "user") {
      out += (troupe ? "\n\nHuman: " : " Human: ") + m.content;
    } else if (m.role == "assistant") {
      out += troupe ? "\n\nAssistant: " + m.content : "\n Assistant: " + m.content + "\n\n";
    } else {
      throw Error("messages[" + std::to_string(i) + "].role: \"" + m.role +
                  "\" is not one of system, user, assistant");
    }
  }
  if (add_generation_prompt) out += troupe ? "\n\nAssistant:" : "\n Assistant: ";
  return out;
}

std::string chat_turn_marker(ChatFormat) { return "Human:"; }

std::optional<std::string> read_chat_template(const std::filesystem::path& dir) {
  const auto file = dir / "tokenizer_config.json";
  std::ifstream in(file);
  if (!in) return std::nullopt;
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(file.string() + ": not valid JSON: " + e.what());
  }
  if (!config.is_object() || !config.contains("chat_template") || config["chat_template"].is_null()) return std::nullopt;
  const auto& t = config["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array()) {
    for (const auto& named : t)
      if (named.is_object() && named.value("name", "") == "default" && named.contains("template") &&
          named["template"].is_string())
        return named["template"].get<std::string>();
    return std::string("(a list of named templates without a \"default\")");
  }
  throw Error(file.string() + ": chat_template must be a string or a list of named templates");
}

ChatFormat resolve_chat_format(const std::filesystem::path& dir, const std::optional<std::string>& override_name) {
  if (override_name) return chat_format_from_name(*override_name, "--chat_format");
  const auto text = read_chat_template(dir);
  if (!text) return ChatFormat::Troupe;
  if (auto format = recognize_chat_template(*text)) return *format;
  throw Error((dir / "tokenizer_config.json").string() +
              ": its chat_template is not one troupe renders (troupe does not evaluate Jinja); pass "
              "--chat_format troupe or --chat_format deepspeed_chat to choose the prompt format");
}

void write_chat_template(const std::filesystem::path& dir, ChatFormat format) {
  const auto file = dir / "tokenizer_config.json";
  nlohmann::ordered_json config = nlohmann::ordered_json::object();
  if (std::ifstream in(file); in) {
    try {
      config = nlohmann::ordered_json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw Error(file.string() + ": not valid JSON: " + e.what());
    }
    if (!config.is_object()) throw Error(file.string() + ": expected a JSON object");
  }
  config["chat_template"] = chat_template(format);
  write_file_atomically(file, config.dump(2) + "\n");
}

}  // namespace troupe::models

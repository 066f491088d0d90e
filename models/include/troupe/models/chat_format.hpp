#pragma once
/// The prompt formats troupe renders conversations in, and the `chat_template` each is
/// recorded as in a model's `tokenizer_config.json`. troupe does not evaluate Jinja: it
/// recognises the templates it writes and renders those formats itself, so what
/// `troupe chat` and `troupe serve` feed the model is exactly what transformers'
/// `apply_chat_template` renders from the same file.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace troupe::models {

enum class ChatFormat {
  /// "\n\nHuman: {msg}\n\nAssistant: {reply}": the training prompts' format (steps 1-3).
  Troupe,
  /// " Human: {msg}\n Assistant: {reply}\n\n": DeepSpeed-Chat's chat script.
  DeepSpeedChat,
};

struct ChatMessage {
  std::string role;  ///< "system", "user" or "assistant"
  std::string content;
};

/// "troupe" or "deepspeed_chat"; throws troupe::Error naming `where` otherwise.
ChatFormat chat_format_from_name(const std::string& name, const std::string& where);
std::string chat_format_name(ChatFormat format);

/// The Jinja `chat_template` troupe writes for `format`.
std::string chat_template(ChatFormat format);

/// The format `chat_template` stands for, when it is one troupe writes.
std::optional<ChatFormat> recognize_chat_template(const std::string& chat_template);

/// The prompt for `messages` (a system message's content comes first as it is), with
/// the assistant's turn opened when `add_generation_prompt`. Throws troupe::Error naming
/// `messages[i].role` for another role.
std::string render_chat(ChatFormat format, const std::vector<ChatMessage>& messages, bool add_generation_prompt = true);

/// Where a reply ends: the model starting the next human turn.
std::string chat_turn_marker(ChatFormat format);

/// The `chat_template` of a model directory's `tokenizer_config.json`: a string, or the
/// "default" one of a list; none when the file or the field is absent.
std::optional<std::string> read_chat_template(const std::filesystem::path& dir);

/// The format to render with: `override_name` when given (`--chat_format`), else the
/// directory's template when troupe knows it, else (no template) troupe's. An unknown
/// template throws troupe::Error naming the directory and `--chat_format`.
ChatFormat resolve_chat_format(const std::filesystem::path& dir, const std::optional<std::string>& override_name);

/// Records `format` as the `chat_template` of `dir/tokenizer_config.json`, keeping its
/// other fields (creating the file when absent).
void write_chat_template(const std::filesystem::path& dir, ChatFormat format);

}  // namespace troupe::models

#pragma once
/// A multi-turn conversation in a chat format (chat_format.hpp; troupe's by default,
/// the training prompts' "\n\nHuman: {input}\n\nAssistant:"): each turn renders the
/// whole conversation with the assistant's turn opened, the model continues it, and the
/// reply is cut where the model starts the next "Human:" turn.
#include <string>
#include <vector>

#include <troupe/models/chat_format.hpp>
#include <troupe/models/text_generator.hpp>

namespace troupe::models {

class ChatSession {
 public:
  explicit ChatSession(TextGenerator generator, ChatFormat format = ChatFormat::Troupe);

  /// The model's reply to `user_input`; the exchange joins the history.
  std::string reply(const std::string& user_input);
  /// Forgets the conversation.
  void clear();

  /// The conversation so far, rendered in the chat format.
  std::string history() const { return render_chat(format_, messages_, /*add_generation_prompt=*/false); }
  const std::vector<ChatMessage>& messages() const { return messages_; }
  int turns() const { return turns_; }
  ChatFormat format() const { return format_; }
  /// The prompt the last reply continued (before any cut to fit the context).
  const std::string& last_prompt() const { return last_prompt_; }

 private:
  /// Keeps the newest history tokens that leave room for the reply in the model's context.
  std::vector<int64_t> fit_context(std::vector<int64_t> ids) const;

  TextGenerator generator_;
  ChatFormat format_;
  std::vector<ChatMessage> messages_;
  std::string last_prompt_;
  int turns_ = 0;
};

/// The reply part of a generated continuation: up to the next "Human:" turn, without
/// the whitespace around it.
std::string cut_reply(const std::string& continuation);

}  // namespace troupe::models

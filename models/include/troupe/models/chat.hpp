#pragma once
/// A multi-turn conversation in DeepSpeed-Chat's chat format: each turn appends
/// "\n\nHuman: {input}\n\nAssistant:" (the training prompts' format) to the running history, the model continues it, and
/// the reply is cut where the model starts the next "Human:" turn.
#include <string>

#include <troupe/models/text_generator.hpp>

namespace troupe::models {

class ChatSession {
 public:
  explicit ChatSession(TextGenerator generator);

  /// The model's reply to `user_input`; the exchange joins the history.
  std::string reply(const std::string& user_input);
  /// Forgets the conversation.
  void clear();

  const std::string& history() const { return history_; }
  int turns() const { return turns_; }

 private:
  /// Keeps the newest history tokens that leave room for the reply in the model's context.
  std::vector<int64_t> fit_context(std::vector<int64_t> ids) const;

  TextGenerator generator_;
  std::string history_;
  int turns_ = 0;
};

/// The reply part of a generated continuation: up to the next "Human:" turn, without
/// the whitespace around it.
std::string cut_reply(const std::string& continuation);

}  // namespace troupe::models

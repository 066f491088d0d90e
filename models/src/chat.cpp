#include <troupe/models/chat.hpp>

#include <algorithm>

namespace troupe::models {

std::string cut_reply(const std::string& continuation) {
  auto reply = continuation.substr(0, continuation.find("Human:"));
  const auto first = reply.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  const auto last = reply.find_last_not_of(" \t\r\n");
  return reply.substr(first, last - first + 1);
}

ChatSession::ChatSession(TextGenerator generator, ChatFormat format) : generator_(std::move(generator)), format_(format) {}

void ChatSession::clear() {
  messages_.clear();
  last_prompt_.clear();
  turns_ = 0;
}

std::vector<int64_t> ChatSession::fit_context(std::vector<int64_t> ids) const {
  const auto context = generator_.model().config().max_position_embeddings;
  const auto room = context - generator_.options().max_new_tokens;
  if (context > 0 && room > 0 && static_cast<int64_t>(ids.size()) > room)
    ids.erase(ids.begin(), ids.end() - room);  // the oldest turns fall out first
  return ids;
}

std::string ChatSession::reply(const std::string& user_input) {
  // The format the model was trained in (troupe's: the prompts of steps 1-3), rendered
  // as its tokenizer_config.json's chat_template renders it.
  messages_.push_back({"user", user_input});
  const auto prompt = render_chat(format_, messages_);
  last_prompt_ = prompt;
  auto ids = fit_context(generator_.tokenizer().encode(prompt, /*add_special_tokens=*/true));
  auto completion = generator_.complete_ids({ids}).front();
  auto answer = cut_reply(completion.text);
  messages_.push_back({"assistant", answer});
  ++turns_;
  return answer;
}

}  // namespace troupe::models

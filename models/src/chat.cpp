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

ChatSession::ChatSession(TextGenerator generator) : generator_(std::move(generator)) {}

void ChatSession::clear() {
  history_.clear();
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
  // The format the prompts of steps 1-3 have (DeepSpeed-Chat's datasets), so the model
  // sees the turns as it was trained on them.
  const auto prompt = history_ + "\n\nHuman: " + user_input + "\n\nAssistant:";
  auto ids = fit_context(generator_.tokenizer().encode(prompt, /*add_special_tokens=*/true));
  auto completion = generator_.complete_ids({ids}).front();
  auto answer = cut_reply(completion.text);
  history_ = prompt + " " + answer;
  ++turns_;
  return answer;
}

}  // namespace troupe::models

#include <troupe/models/text_stream.hpp>

#include <algorithm>

#include <nlohmann/json.hpp>

namespace troupe::models {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/// Length of the longest suffix of `text` that is a proper prefix of one of `stop`.
size_t stop_prefix_tail(const std::string& text, const std::vector<std::string>& stop) {
  size_t longest = 0;
  for (const auto& s : stop) {
    for (size_t n = std::min(s.size() - 1, text.size()); n > longest; --n) {
      if (text.compare(text.size() - n, n, s, 0, n) == 0) {
        longest = n;
        break;
      }
    }
  }
  return longest;
}

}  // namespace

std::string sanitize_utf8(const std::string& text) {
  const auto dumped = nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return nlohmann::json::parse(dumped).get<std::string>();
}

size_t complete_utf8_prefix(const std::string& text) {
  // Look back at most 3 bytes for the lead byte of an unfinished character.
  const size_t n = text.size();
  for (size_t back = 1; back <= std::min<size_t>(3, n); ++back) {
    const auto c = static_cast<unsigned char>(text[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: keep looking for its lead
    size_t need = 0;
    if ((c & 0xE0) == 0xC0) need = 2;
    else if ((c & 0xF0) == 0xE0) need = 3;
    else if ((c & 0xF8) == 0xF0) need = 4;
    return need > back ? n - back : n;  // unfinished: cut before its lead byte
  }
  return n;
}

TextStream::TextStream(std::shared_ptr<const Tokenizer> tokenizer, std::vector<std::string> stop, bool trim)
    : tokenizer_(std::move(tokenizer)), trim_(trim) {
  for (auto& s : stop)
    if (!s.empty()) stop_.push_back(std::move(s));
}

std::string TextStream::visible(bool final) {
  size_t end = stopped_ ? stop_at_ : (final ? decoded_.size() : complete_utf8_prefix(decoded_));
  if (!stopped_ && !final) end -= stop_prefix_tail(decoded_.substr(0, end), stop_);
  size_t begin = 0;
  if (trim_) {
    while (begin < end && is_space(decoded_[begin])) ++begin;
    while (end > begin && is_space(decoded_[end - 1])) --end;
  }
  return sanitize_utf8(decoded_.substr(begin, end - begin));
}

std::string TextStream::advance_to(const std::string& text) {
  if (text.size() <= sent_.size() || text.compare(0, sent_.size(), sent_) != 0) return "";
  auto piece = text.substr(sent_.size());
  sent_ = text;
  return piece;
}

std::string TextStream::push(int64_t token) {
  if (stopped_) return "";
  ids_.push_back(token);
  decoded_ = tokenizer_->decode(ids_, /*skip_special_tokens=*/true);
  // The earliest stop string ends the text.
  size_t first = std::string::npos;
  for (const auto& s : stop_) {
    const auto at = decoded_.find(s);
    if (at != std::string::npos) first = std::min(first, at);
  }
  if (first != std::string::npos) {
    stopped_ = true;
    stop_at_ = first;
  }
  return advance_to(visible(/*final=*/false));
}

std::string TextStream::finish() { return advance_to(visible(/*final=*/true)); }

}  // namespace troupe::models

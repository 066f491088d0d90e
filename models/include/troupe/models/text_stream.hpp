#pragma once
/// Generated tokens to text as they come, for streaming: what push() hands out is never
/// taken back, so the pieces concatenate to the text a caller gets without streaming.
/// It holds back an unfinished UTF-8 character, a tail that may be the start of a stop
/// string, and (when trimming, for chat replies) whitespace that may be trailing.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <troupe/models/tokenizer.hpp>

namespace troupe::models {

class TextStream {
 public:
  /// `stop`: the text ends before the first of these (empty strings are ignored).
  /// `trim`: no leading or trailing whitespace (what cut_reply() does to a chat reply).
  TextStream(std::shared_ptr<const Tokenizer> tokenizer, std::vector<std::string> stop, bool trim);

  /// Adds a generated token; returns the text that became final (often empty). After a
  /// stop string appeared, stopped() is true and later tokens add nothing.
  std::string push(int64_t token);
  /// The rest of the text once generation has ended (the held-back tail).
  std::string finish();

  bool stopped() const { return stopped_; }
  /// Everything handed out so far (after finish(): the whole text).
  const std::string& text() const { return sent_; }
  /// The tokens pushed.
  const std::vector<int64_t>& ids() const { return ids_; }

 private:
  /// The text to show for the decoded tokens so far; `final` when nothing more comes.
  std::string visible(bool final);
  /// What `text` adds to what was sent (nothing when it does not extend it).
  std::string advance_to(const std::string& text);

  std::shared_ptr<const Tokenizer> tokenizer_;
  std::vector<std::string> stop_;
  bool trim_;
  std::vector<int64_t> ids_;
  std::string decoded_;
  std::string sent_;
  bool stopped_ = false;
  size_t stop_at_ = 0;
};

/// `text` with every invalid UTF-8 sequence replaced by U+FFFD (as nlohmann::json's
/// dump does with error_handler_t::replace, so JSON output of the same text agrees).
std::string sanitize_utf8(const std::string& text);

/// Length of the longest prefix of `text` that does not end inside a UTF-8 character
/// that more bytes could still complete.
size_t complete_utf8_prefix(const std::string& text);

}  // namespace troupe::models

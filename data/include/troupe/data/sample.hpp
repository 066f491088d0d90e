#pragma once
/// One preference sample in the common schema every dataset adapter produces.
#include <optional>
#include <string>

namespace troupe::data {

/// A prompt with a preferred (`chosen`) and a dispreferred (`rejected`) response; any
/// may be absent. `prompt` already carries the conversation format
/// ("\n\nHuman: ...\n\nAssistant:") and the responses start with their separator
/// (" ..."), so the training texts are plain concatenations: prompt + chosen.
struct Sample {
  std::optional<std::string> prompt;
  std::optional<std::string> chosen;
  std::optional<std::string> rejected;
};

/// Which fields a training step needs: step 1 chosen, step 2 chosen and rejected,
/// step 3 prompt.
inline bool usable_in_phase(const Sample& s, int phase) {
  switch (phase) {
    case 1: return s.chosen.has_value();
    case 2: return s.chosen.has_value() && s.rejected.has_value();
    case 3: return s.prompt.has_value();
    default: return false;
  }
}

}  // namespace troupe::data

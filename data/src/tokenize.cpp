/// Tokenization of phase samples with drop and cut counts.
#include <troupe/data/tokenize.hpp>

#include <limits>

#include <troupe/common/error.hpp>
#include <troupe/models/tokenizer.hpp>

namespace troupe::data {

const char* field_name(Field f) {
  switch (f) {
    case Field::prompt: return "prompt";
    case Field::chosen: return "chosen";
    case Field::rejected: return "rejected";
  }
  return "?";
}

std::vector<Field> phase_fields(int phase) {
  switch (phase) {
    case 1: return {Field::chosen};
    case 2: return {Field::chosen, Field::rejected};
    case 3: return {Field::prompt};
    default: throw Error("phase " + std::to_string(phase) + ": expected 1, 2 or 3");
  }
}

std::string joined_text(const std::optional<std::string>& prompt, const std::optional<std::string>& response) {
  return prompt.value_or("") + response.value_or("");
}

namespace {

std::vector<int32_t> narrow(const std::vector<int64_t>& ids) {
  std::vector<int32_t> out(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] > std::numeric_limits<int32_t>::max())
      throw Error("token id " + std::to_string(ids[i]) + " does not fit the cache's int32 tokens");
    out[i] = static_cast<int32_t>(ids[i]);
  }
  return out;
}

}  // namespace

TokenizedPhase tokenize_phase(const std::vector<Sample>& samples, int phase, const models::Tokenizer& tokenizer,
                              const LengthOptions& lengths) {
  TokenizedPhase out;
  out.phase = phase;
  phase_fields(phase);  // validates the phase
  if (lengths.max_seq_len <= 0 || lengths.max_prompt_seq_len <= 0)
    throw Error("max_seq_len and max_prompt_seq_len must be positive");
  std::optional<int64_t> eos;
  if (phase != 3) {
    eos = tokenizer.eos_token_id();
    if (!eos) throw Error("the tokenizer defines no EOS token (eos_token in tokenizer_config.json); steps 1 and 2 end each sequence with it");
  }
  auto& st = out.stats;
  st.samples = static_cast<int64_t>(samples.size());
  // A response sequence: prompt + response + EOS, cut at max_seq_len.
  auto sequence = [&](const Sample& s, const std::optional<std::string>& response, bool& cut) {
    auto ids = tokenizer.encode(joined_text(s.prompt, response), /*add_special_tokens=*/true);
    ids.push_back(*eos);
    out.full_lengths.push_back(static_cast<int64_t>(ids.size()));
    if (static_cast<int64_t>(ids.size()) > lengths.max_seq_len) {
      ids.resize(static_cast<size_t>(lengths.max_seq_len));
      cut = true;
    }
    return narrow(ids);
  };
  for (const auto& s : samples) {
    if (phase == 3) {
      if (!s.prompt) {
        ++st.no_prompt;
        continue;
      }
      auto ids = tokenizer.encode(*s.prompt, /*add_special_tokens=*/true);
      out.full_lengths.push_back(static_cast<int64_t>(ids.size()));
      if (static_cast<int64_t>(ids.size()) > lengths.max_prompt_seq_len) {
        ++st.prompt_too_long;
        continue;
      }
      out.fields[static_cast<int>(Field::prompt)].push_back(narrow(ids));
      ++st.kept;
      continue;
    }
    if (!s.chosen) {
      ++st.no_chosen;
      continue;
    }
    if (phase == 2 && !s.rejected) {
      ++st.no_rejected;
      continue;
    }
    bool cut = false;
    out.fields[static_cast<int>(Field::chosen)].push_back(sequence(s, s.chosen, cut));
    if (phase == 2) out.fields[static_cast<int>(Field::rejected)].push_back(sequence(s, s.rejected, cut));
    st.truncated += cut;
    ++st.kept;
  }
  return out;
}

}  // namespace troupe::data

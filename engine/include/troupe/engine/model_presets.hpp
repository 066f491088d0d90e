#pragma once
/// Named model shapes with random weights, for the demo and the benchmarks:
/// `--model_name_or_path preset:llama-tiny` (with `--tokenizer DIR` for the vocabulary).
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include <troupe/models/causal_lm.hpp>

namespace troupe::models {
class Tokenizer;
}

namespace troupe::engine {

/// "preset:NAME" -> NAME; anything else -> nullopt (a directory).
std::optional<std::string> preset_name(const std::string& model_name_or_path);

/// The known names: {opt,gpt2,llama}-{tiny,small} and opt-125m, opt-350m, opt-1.3b.
std::vector<std::string> preset_names();

/// The Hugging Face config.json of preset `name` for `tokenizer`'s vocabulary and
/// special tokens (bos, eos, pad). Throws troupe::Error listing the names when unknown.
nlohmann::json preset_config_json(const std::string& name, const models::Tokenizer& tokenizer);

/// A freshly initialised model of the preset (weights ~ N(0, 0.02) as transformers
/// initialises them), seeded by the caller's torch::manual_seed.
models::CausalLM make_preset_model(const std::string& name, const models::Tokenizer& tokenizer);

}  // namespace troupe::engine

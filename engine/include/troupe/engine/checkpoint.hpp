#pragma once
/// Training checkpoints: a Hugging Face model directory (config.json, safetensors,
/// tokenizer files) that transformers and `troupe chat` load, plus `training_state/`
/// with everything `--resume` needs to continue bit for bit (exact parameters with
/// LoRA adapters unfused, optimizer, schedule step, RNG, data position).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include <troupe/engine/train_engine.hpp>

namespace troupe::engine {

/// Where the data loop stands: the next micro-batch is batch `batch` of epoch `epoch`.
struct TrainingPosition {
  int64_t epoch = 0;
  int64_t batch = 0;
};

/// Copies the tokenizer files of a model directory (tokenizer.json, vocab.json,
/// merges.txt, tokenizer.model, tokenizer_config.json, special_tokens_map.json) that
/// exist into `to`.
void copy_tokenizer_files(const std::filesystem::path& from, const std::filesystem::path& to);

/// Writes `dir` as a Hugging Face directory of `model` (adapters folded in) with the
/// tokenizer files of `tokenizer_dir`; the whole directory is built under a temporary
/// name and renamed into place, replacing an older one only once complete.
void save_model_dir(models::CausalLMImpl& model, const std::filesystem::path& tokenizer_dir,
                    const std::filesystem::path& dir);

/// save_model_dir() plus training_state/: parameters.pt (exact, adapters apart),
/// optimizer.pt, rng.pt and state.json {global_step, micro_steps, epoch, batch, extra}.
void save_training_checkpoint(TrainEngine& engine, const std::filesystem::path& tokenizer_dir,
                              const std::filesystem::path& dir, const TrainingPosition& position,
                              const nlohmann::json& extra);

/// Whether `dir` holds a training checkpoint.
bool has_training_checkpoint(const std::filesystem::path& dir);

/// Restores parameters, optimizer, schedule, counters and the CPU RNG from `dir` into
/// an engine built with the same model and options; returns the data position (and
/// `extra` when given). Throws troupe::Error naming the file for a missing or
/// mismatching part.
TrainingPosition load_training_checkpoint(TrainEngine& engine, const std::filesystem::path& dir,
                                          nlohmann::json* extra = nullptr);

}  // namespace troupe::engine

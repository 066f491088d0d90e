#pragma once
/// Training checkpoints: a Hugging Face model directory (config.json, safetensors,
/// tokenizer files) that transformers and `troupe chat` load, plus `training_state/`
/// with everything `--resume` needs to continue bit for bit (exact parameters with
/// LoRA adapters unfused, optimizer, schedule step, RNG, data position). A LoRA run
/// over a frozen base checkpoints its adapters only, against the base on disk.
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
/// tokenizer files of `tokenizer_dir`, and a LoRA model over a frozen base also as the
/// PEFT adapter `dir`/adapter/ (peft_adapter.hpp); the whole directory is built under a
/// temporary name and renamed into place, replacing an older one only once complete.
void save_model_dir(models::CausalLMImpl& model, const std::filesystem::path& tokenizer_dir,
                    const std::filesystem::path& dir);

/// save_model_dir() plus training_state/: parameters.pt (exact, adapters apart),
/// optimizer.pt, rng.pt and state.json {global_step, micro_steps, epoch, batch, extra}.
/// An adapter checkpoint instead, for a model with frozen parameters loaded from a
/// Hugging Face directory (LoRA with --only_optimize_lora; CausalLMImpl::name_or_path):
/// no model files, parameters.pt with only what the base does not hold unchanged (the
/// adapters, a fresh value head), and state.json's base_model naming the base directory
/// with each weight file's size and XXH64 hash (base_model.hpp). An engine under ZeRO
/// stage 3 writes this rank's part: parameters.pt holds its master chunks, and no model
/// files (each rank calls it with its own `dir`).
void save_training_checkpoint(TrainEngine& engine, const std::filesystem::path& tokenizer_dir,
                              const std::filesystem::path& dir, const TrainingPosition& position,
                              const nlohmann::json& extra);

/// Whether `dir` holds a training checkpoint.
bool has_training_checkpoint(const std::filesystem::path& dir);

/// Restores parameters, optimizer, schedule, counters and the CPU RNG from `dir` into
/// an engine built with the same model and options; returns the data position (and
/// `extra` when given). An adapter checkpoint loads the frozen base from the directory
/// it names, after checking its files' sizes and hashes. Throws troupe::Error naming
/// the file for a missing or mismatching part (a base file missing or changed too).
TrainingPosition load_training_checkpoint(TrainEngine& engine, const std::filesystem::path& dir,
                                          nlohmann::json* extra = nullptr);

}  // namespace troupe::engine

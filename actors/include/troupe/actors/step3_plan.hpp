#pragma once
/// Step 3, first stage: what the run will do, decided before any model is loaded. The
/// algorithm, where the roles run, the tokenizer and prompts, and how many cycles.
#include <cstdint>
#include <memory>
#include <vector>

#include <troupe/actors/step3_placement.hpp>
#include <troupe/actors/step3_trainer.hpp>
#include <troupe/data/pipeline.hpp>
#include <troupe/data/sampler.hpp>
#include <troupe/models/generation.hpp>
#include <troupe/models/tokenizer.hpp>
#include <troupe/rl/algorithm.hpp>
#include <troupe/rl/reward_function.hpp>

namespace troupe::actors {

struct Step3Plan {
  std::shared_ptr<rl::Algorithm> algorithm;
  Step3Placement placement;  ///< every role in this process without --topology
  std::shared_ptr<const models::Tokenizer> tokenizer;
  int64_t pad_id = 0;
  models::GenerationOptions generation;  ///< the rollouts' options with the tokenizer's pad and EOS
  data::PhaseData prompts;               ///< train: rollout prompts, eval: held out
  std::shared_ptr<rl::RewardFunction> gold;  ///< grades held-out answers; null = none
  bool mixture = false;                      ///< pretraining loss mixed into the actor's
  data::SamplerOptions sampler;              ///< the prompts' shuffle (its epoch set per epoch)
  int64_t rows_per_cycle = 0;  ///< prompts per cycle, over all actor ranks
  int64_t total_cycles = 0;
  int64_t rows = 0;            ///< experience rows per cycle (prompts x samples per prompt)

  /// The prompt indices of every cycle of `epoch`, in order.
  std::vector<std::vector<int64_t>> cycle_batches(int64_t epoch) const;
  /// Optimizer steps a role with `ranks` data-parallel ranks takes over the run (its
  /// schedule's length); `mixture_steps` adds one per minibatch (the actor's).
  int64_t planned_updates(const Step3Config& config, int ranks, bool mixture_steps) const;
};

/// Throws troupe::Error when the reward has more than one source (--reward_url with
/// --reward_function or --reward_model_name_or_path), or the URL or timeout is malformed.
/// Only syntax: whether the endpoint answers shows at the first batch it scores.
void check_reward_source(const Step3Config& config);

/// Whether generation reads packed copies of the actor's weights (--inference_weights
/// packed) or the training weights themselves (training). Throws troupe::Error for
/// another value, and for training with --inference_dtype bf16: unpacked weights
/// compute in their own dtype.
bool packs_inference_weights(const Step3Config& config);

/// Checks the config and plans the run; throws troupe::Error naming the flag or file.
Step3Plan plan_step3(const Step3Config& config);

}  // namespace troupe::actors

#pragma once
/// Direct Preference Optimization (Rafailov et al. 2023) as DeepSpeed-Chat's
/// step2_dpo_finetuning runs it: the SFT model trains on step 2's chosen/rejected pairs
/// against a frozen reference copy of itself, with TRL's sigmoid loss and label smoothing.
#include <memory>

#include <torch/types.h>

#include <troupe/data/pipeline.hpp>
#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/engine/supervised_tasks.hpp>
#include <troupe/engine/training_loop.hpp>

namespace troupe::engine {

struct DpoOptions {
  double beta = 0.1;             ///< --beta: strength of the implicit KL to the reference
  double label_smoothing = 0.0;  ///< --label_smoothing: the chance a preference label is flipped, in [0, 0.5)
};

/// Throws troupe::Error naming --beta or --label_smoothing when out of range.
void check_dpo_options(const DpoOptions& options);

/// The positions whose next-token log-probs count (2B, T): attention_mask with each
/// pair's shared prompt prefix (the columns before the first one where the chosen and
/// rejected ids differ; none when they never differ) zeroed in both rows. input_ids and
/// attention_mask (2B, T) are B chosen rows then the B rejected rows of the same pairs.
torch::Tensor dpo_label_mask(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);

/// Per-sequence log-probs (N) fp32: sum over t of token_logprobs[:, t] * label_mask[:, t + 1],
/// from token_logprobs (N, T - 1) (column t scores token t + 1) and label_mask (N, T).
torch::Tensor dpo_sequence_log_probs(const torch::Tensor& token_logprobs, const torch::Tensor& label_mask);

/// The same from logits (N, T, V): log_softmax(logits[:, :-1]) gathered at input_ids[:, 1:]
/// (N, T), times label_mask[:, 1:], summed over T. Differentiable in the logits.
torch::Tensor dpo_sequence_log_probs(const torch::Tensor& logits, const torch::Tensor& input_ids,
                                     const torch::Tensor& label_mask);

struct DpoLoss {
  torch::Tensor loss;              ///< scalar, differentiable in the policy log-probs
  torch::Tensor chosen_rewards;    ///< (B) beta * (pi_chosen - ref_chosen), detached
  torch::Tensor rejected_rewards;  ///< (B) beta * (pi_rejected - ref_rejected), detached
};

/// logits = beta * ((pi_c - ref_c) - (pi_r - ref_r)); loss = mean over pairs of
/// -logsigmoid(logits) * (1 - ls) - logsigmoid(-logits) * ls. policy_log_probs and
/// reference_log_probs (2B) are B chosen sequences then the B rejected ones.
DpoLoss dpo_loss(const torch::Tensor& policy_log_probs, const torch::Tensor& reference_log_probs,
                 const DpoOptions& options);

/// Sums over the pairs of a DpoLoss, for means over many batches: "rewards/chosen",
/// "rewards/rejected", "rewards/accuracies" (chosen reward > rejected reward),
/// "rewards/margins" (chosen - rejected), each a sum over the B pairs.
MetricValues dpo_reward_sums(const DpoLoss& out);

/// DPO over step 2's phase data: the model (in training mode, with autograd) against
/// `reference`, the frozen starting model (a copy, or the model's own base with its LoRA
/// adapters off). Training logs the loss and TRL's rewards/chosen, rewards/rejected,
/// rewards/accuracies, rewards/margins (means over the batch's pairs); eval reports these
/// over the eval pairs plus "loss" (mean over the eval pairs).
PhaseTask make_dpo_task(const data::PhaseData& data, const SupervisedTaskOptions& options, const DpoOptions& dpo,
                        std::shared_ptr<ReferencePolicy> reference);

}  // namespace troupe::engine

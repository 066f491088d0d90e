#include <troupe/actors/experience_stage.hpp>

#include <torch/torch.h>

#include <troupe/actors/batch_keys.hpp>
#include <troupe/actors/experience_batch.hpp>
#include <troupe/rl/algorithm.hpp>
#include <troupe/rl/answer_filter.hpp>
#include <troupe/rl/experience_metrics.hpp>
#include <troupe/rl/masked_ops.hpp>
#include <troupe/rl/truncated_is.hpp>

namespace troupe::actors {

rl::Experience fetch_experience(TicketStore& store, const ExperienceTickets& tickets) {
  auto generated = fetch_all(store, tickets.sequences);
  const auto& sequences = generated.at(keys::sequences);  // (B, T)
  const int64_t prompt_length = generated.at(keys::prompt_length)[0].item<int64_t>();
  auto exp = rl::Experience::from_generation(sequences.slice(1, 0, prompt_length), sequences,
                                             generated.at(keys::attention_mask));
  exp.logprobs = fetch_all(store, tickets.logprobs).at(keys::logprobs);  // (B, T-1)
  const auto device = exp.logprobs.device();
  exp.ref_logprobs = fetch_all(store, tickets.ref_logprobs).at(keys::ref_logprobs).to(device);  // (B, T-1)
  if (!tickets.values.tickets.empty()) exp.values = fetch_all(store, tickets.values).at(keys::values).to(device);  // (B, T-1)
  const auto rewards = fetch_all(store, tickets.rewards);
  exp.reward_score = rewards.at(keys::reward_score).to(device);  // (B)
  if (rewards.count(keys::baseline_reward)) exp.baseline_reward = rewards.at(keys::baseline_reward).to(device);  // (B)
  if (generated.count(keys::rollout_logprobs))  // the rollout copy's own (--async_rollout)
    exp.set_extra(rl::kRolloutLogprobs, rl::Layout::Token, generated.at(keys::rollout_logprobs).to(device));  // (B, T-1)
  return exp;
}

void release_tickets(TicketStore& store, const ExperienceTickets& tickets) {
  for (const auto* list : {&tickets.prompts, &tickets.sequences, &tickets.logprobs, &tickets.ref_logprobs,
                           &tickets.values, &tickets.rewards})
    for (const auto& ticket : list->tickets) store.release(ticket);
}

void release_tickets(TicketStore& store, const std::vector<TicketList>& lists) {
  for (const auto& list : lists)
    for (const auto& ticket : list.tickets) store.release(ticket);
}

AlgorithmStage::AlgorithmStage(std::shared_ptr<rl::Algorithm> algorithm, std::shared_ptr<TicketStore> store)
    : algorithm_(std::move(algorithm)), store_(std::move(store)) {}

StageResult AlgorithmStage::run(const ExperienceTickets& experience, int64_t) {
  auto exp = fetch_experience(*store_, experience);
  auto kept = rl::drop_short_answers(exp);
  StageResult result;
  result.metrics["dropped_answers"] = static_cast<double>(exp.batch_size() - kept.batch_size());
  if (kept.batch_size() == 0) return result;  // nothing to train on this cycle
  if (kept.extras.count(rl::kRolloutLogprobs)) {
    // Rollouts of another copy of the policy: the old log-probs are the training actor's;
    // the gap to the sampler's is logged, and with a cap the loss weights correct for it.
    const auto rollout = kept.extras.at(rl::kRolloutLogprobs).second;  // (B, T-1)
    kept.extras.erase(rl::kRolloutLogprobs);  // training reads the weights, not these
    const auto mask = kept.action_mask.to(torch::kFloat32);  // (B, T-1)
    result.metrics["rollout_logprob_gap"] = rl::masked_mean((kept.logprobs - rollout).abs(), mask).item<double>();
    if (rollout_is_truncation_ > 0) {
      auto weights = rl::truncated_is_weights(kept.logprobs, rollout, rollout_is_truncation_);  // (B, T-1)
      result.metrics["tis_weight_mean"] = rl::masked_mean(weights, mask).item<double>();
      kept.set_extra(rl::kTruncatedIsWeights, rl::Layout::Token, weights);
    }
  }
  algorithm_->compute_advantages(kept);
  for (const auto& [name, value] : rl::experience_metrics(kept)) result.metrics[name] = value;
  result.training.push_back(TicketList{{store_->publish(to_tensor_batch(kept))}});
  return result;
}

}  // namespace troupe::actors

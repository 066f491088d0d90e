#include "step3_evaluation.hpp"

#include <cmath>

#include <torch/torch.h>

#include <troupe/actors/batch_keys.hpp>
#include <troupe/actors/experience_stage.hpp>
#include "step3_roles.hpp"
#include <troupe/data/collate.hpp>
#include <troupe/data/sampler.hpp>
#include <troupe/engine/progress.hpp>
#include <troupe/rl/experience_metrics.hpp>

#include <troupe/actors/role_request.hpp>

namespace troupe::actors {

Step3Evaluator::Step3Evaluator(const Step3Config& config, const Step3Plan& plan, Step3Runtime& runtime)
    : config_(config), plan_(plan), runtime_(runtime) {}

PolicyEvaluation Step3Evaluator::run(bool sampled) const {
  auto& hybrid = runtime_.hybrid();
  auto& store = *runtime_.store();
  const auto& roles = runtime_.roles();
  // Rank 0 evaluates alone, with its whole weights (ZeRO 0-2 keeps them whole): the
  // other ranks of a tensor-parallel generation group are not asked to join. Under ZeRO
  // stage 3 a rank holds chunks of the actor: its ranks generate and score together,
  // each its share of the prompts, with this evaluation's sampling.
  const bool actor_ranks_together = hybrid.zero3() != nullptr;
  const auto group = actor_ranks_together ? models::TensorParallelRank{} : hybrid.tensor_parallel();
  struct Alone {
    engine::HybridEngine& hybrid;
    models::TensorParallelRank group;
    ~Alone() {
      if (group.world > 1) hybrid.set_tensor_parallel(group);
    }
  } alone{hybrid, group};
  if (group.world > 1) hybrid.set_tensor_parallel({});

  PolicyEvaluation result;
  double reward_sum = 0, gold_sum = 0, kl_sum = 0, length_sum = 0;
  auto options = config_.generation;
  options.do_sample = sampled && config_.generation.do_sample;
  options.seed = config_.seed + 7919;
  if (config_.eval_prompts <= 0) return result;
  const auto& prompts = plan_.prompts.eval;
  const auto batches = data::sequential_batches(prompts.size(), config_.generation_batch_size, config_.eval_prompts);
  // A large model spends minutes here: a bar on a terminal, periodic lines in a log.
  engine::ProgressReporter progress(sampled ? "step3 eval (sampled)" : "step3 eval", static_cast<int64_t>(batches.size()));
  progress.set_value_name("reward");
  int64_t done = 0;
  for (const auto& indices : batches) {
    auto batch = data::make_step3_batch(prompts, indices, config_.data.lengths.max_prompt_seq_len, plan_.pad_id);
    ExperienceTickets tickets;
    if (actor_ranks_together) {
      const auto rows = batch.input_ids.size(0);
      const TicketList prompt_tickets{{store.publish(
          {{keys::input_ids, batch.input_ids},
           {keys::attention_mask, batch.attention_mask},
           {keys::do_sample, torch::full({rows}, options.do_sample ? 1 : 0, torch::kLong)},
           {keys::generation_seed, torch::full({rows}, static_cast<int64_t>(options.seed), torch::kLong)}})}};
      tickets.sequences =
          ask<TicketList>(runtime_.system(), roles.policy, "evaluation: actor.generate", generate_atom::value, prompt_tickets);
      release_tickets(store, std::vector<TicketList>{prompt_tickets});
      tickets.logprobs =
          ask<TicketList>(runtime_.system(), roles.policy, "evaluation: actor.score", score_atom::value, tickets.sequences);
    } else {
      auto out = hybrid.generate(batch.input_ids.to(config_.device), batch.attention_mask.to(config_.device), options);
      tickets.sequences = TicketList{{store.publish(
          {{keys::sequences, out.sequences},
           {keys::attention_mask, out.attention_mask},
           {keys::prompt_length, torch::full({out.sequences.size(0)}, out.prompt_length, torch::kLong)}})}};
      tickets.logprobs =
          TicketList{{store.publish({{keys::logprobs, hybrid.score_logprobs(out.sequences, out.attention_mask)}})}};
    }
    tickets.ref_logprobs =
        ask<TicketList>(runtime_.system(), roles.reference, "evaluation: reference.score", score_atom::value, tickets.sequences);
    tickets.rewards =
        ask<TicketList>(runtime_.system(), roles.reward, "evaluation: reward.score", score_atom::value, tickets.sequences);
    const auto exp = fetch_experience(store, tickets);
    release_tickets(store, tickets);

    auto metrics = rl::experience_metrics(exp);
    const double rows = static_cast<double>(indices.size());
    reward_sum += metrics["reward_score"] * rows;
    kl_sum += metrics["kl_per_answer"] * rows;
    length_sum += metrics["answer_length"] * rows;
    auto [prompt_texts, answers] = decode_rollouts(*plan_.tokenizer, exp.sequences, exp.attention_mask, exp.prompt_length());
    if (plan_.gold) gold_sum += plan_.gold->score_batch(prompt_texts, answers).sum().item<double>();
    for (size_t i = 0; i < prompt_texts.size() && result.examples.size() < 4; ++i)
      result.examples.emplace_back(prompt_texts[i], answers[i]);
    result.prompts += static_cast<int64_t>(indices.size());
    progress.update(++done, reward_sum / static_cast<double>(result.prompts), exp.attention_mask.sum().item<int64_t>());
  }
  progress.finish();
  if (result.prompts == 0) return result;
  const double n = static_cast<double>(result.prompts);
  result.reward_score = reward_sum / n;
  result.kl_per_answer = kl_sum / n;
  result.answer_length = length_sum / n;
  if (plan_.gold) result.gold_score = gold_sum / n;
  return result;
}

std::map<std::string, double> evaluation_metrics(const PolicyEvaluation& greedy, const PolicyEvaluation& sampled) {
  std::map<std::string, double> values{{"reward_score", greedy.reward_score},
                                       {"kl_per_answer", greedy.kl_per_answer},
                                       {"answer_length", greedy.answer_length},
                                       {"sampled_reward_score", sampled.reward_score},
                                       {"sampled_kl_per_answer", sampled.kl_per_answer}};
  if (!std::isnan(greedy.gold_score)) values["gold_score"] = greedy.gold_score;
  if (!std::isnan(sampled.gold_score)) values["sampled_gold_score"] = sampled.gold_score;
  return values;
}

}  // namespace troupe::actors

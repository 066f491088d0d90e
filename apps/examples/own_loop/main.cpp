/// An app that drives its own loop on troupe's role actors: best-of-n rejection
/// sampling fine-tuning (as in RAFT and ReST), not PPO. Each cycle:
///   1. the actor samples n answers to every prompt   (policy.generate)
///   2. the reward model scores them                  (reward.score)
///   3. the best answer of each prompt is kept
///   4. the actor and the reference score the kept    (policy.score, reference.score)
///   5. the actor fine-tunes on them with the SFT loss (policy.train)
/// The roles are spawned by Step3Runtime as `troupe train --step 3` spawns them, so a
/// --topology puts them in worker processes (this program, started as a worker).
///
///   troupe_example_own_loop --actor_model_name_or_path DIR --reward_model_name_or_path DIR
///       --data_path Dahoas/rm-static=DIR [--data_split 2,4,4] [--num_samples 4]
///       [--max_prompt_seq_len 32] [--max_answer_seq_len 16]
///       [--per_device_generation_batch_size 4] [--per_device_training_batch_size 8]
///       [--actor_learning_rate 1e-4] [--seed 1234] [--max_steps 0] [--output_dir DIR] [--topology FILE]
#include <iostream>
#include <map>
#include <string>

#include <torch/torch.h>

#include <troupe/actors/batch_keys.hpp>
#include <troupe/actors/experience_batch.hpp>
#include <troupe/actors/role_request.hpp>
#include <troupe/actors/step3_plan.hpp>
#include <troupe/actors/step3_runtime.hpp>
#include <troupe/actors/step3_worker.hpp>
#include <troupe/common/error.hpp>
#include <troupe/data/collate.hpp>
#include <troupe/data/dataset.hpp>
#include <troupe/data/split.hpp>
#include <troupe/rl/algorithm_registry.hpp>
#include <troupe/rl/masked_ops.hpp>

namespace {

using namespace troupe;
namespace keys = actors::keys;

/// The actor's loss on the kept answers: supervised fine-tuning, the mean negative
/// log-likelihood of the answer tokens. It needs no critic and no advantages.
class BestOfNSft : public rl::Algorithm {
 public:
  std::string name() const override { return "best_of_n_sft"; }
  rl::AlgorithmRoles roles() const override { return {false, true, rl::RewardSource::Any}; }
  void compute_advantages(rl::Experience& exp) override {
    exp.advantages = exp.action_mask.narrow(1, exp.start(), exp.answer_length()).to(torch::kFloat32);  // (B, A)
  }
  torch::Tensor policy_loss(const torch::Tensor& logprobs, const rl::Experience& exp) const override {
    const int64_t start = exp.start(), answer = exp.answer_length();
    return -rl::masked_mean(logprobs.narrow(1, start, answer), exp.action_mask.narrow(1, start, answer));
  }
};

/// Flags under the names `troupe train --step 3` gives them.
struct Flags {
  actors::Step3Config config;
  int64_t num_samples = 4;
};

Flags parse_flags(int argc, char** argv) {
  Flags flags;
  auto& c = flags.config;
  c.algorithm = "best_of_n_sft";
  c.data.lengths.max_prompt_seq_len = 32;
  c.generation.max_new_tokens = 16;
  c.generation.do_sample = true;
  c.generation_batch_size = 4;
  c.training_batch_size = 8;
  c.actor_train.optimizer.learning_rate = 1e-4;
  c.actor_train.schedule.warmup_steps = 0;
  c.eval_prompts = 0;
  c.output_dir = "own_loop_run";
  std::string data_split = "2,4,4";
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) throw Error(flag + " needs a value");
    const std::string value = argv[i + 1];
    auto number = [&] {
      try {
        return std::stod(value);
      } catch (const std::logic_error&) {
        throw Error(flag + " " + value + ": not a number");
      }
    };
    if (flag == "--actor_model_name_or_path") c.actor_model = value;
    else if (flag == "--reward_model_name_or_path") c.reward_model = value;
    else if (flag == "--data_path") c.data.data_path = {data::parse_dataset_spec(value)};
    else if (flag == "--data_split") data_split = value;
    else if (flag == "--num_samples") flags.num_samples = static_cast<int64_t>(number());
    else if (flag == "--max_prompt_seq_len") c.data.lengths.max_prompt_seq_len = static_cast<int64_t>(number());
    else if (flag == "--max_answer_seq_len") c.generation.max_new_tokens = static_cast<int64_t>(number());
    else if (flag == "--per_device_generation_batch_size") c.generation_batch_size = static_cast<int64_t>(number());
    else if (flag == "--per_device_training_batch_size") c.training_batch_size = static_cast<int64_t>(number());
    else if (flag == "--actor_learning_rate") c.actor_train.optimizer.learning_rate = number();
    else if (flag == "--seed") c.seed = static_cast<uint64_t>(number());
    else if (flag == "--max_steps") c.max_steps = static_cast<int64_t>(number());
    else if (flag == "--output_dir") c.output_dir = value;
    else if (flag == "--topology") c.topology = value;
    else throw Error("unknown flag " + flag);
  }
  if (c.actor_model.empty() || c.reward_model.empty() || c.data.data_path.empty())
    throw Error("--actor_model_name_or_path, --reward_model_name_or_path and --data_path are required");
  if (flags.num_samples < 1) throw Error("--num_samples must be at least 1");
  c.data.split.data_split = data::parse_data_split(data_split);
  c.data.split.seed = static_cast<uint32_t>(c.seed);
  c.data.tokenizer_dir = c.actor_model;
  c.data.cache_dir = c.output_dir / "data_cache";
  c.generation.seed = c.seed;
  return flags;
}

/// Row r of every tensor of `batch` for each r in `rows`.
actors::TensorBatch select_rows(const actors::TensorBatch& batch, const torch::Tensor& rows) {
  actors::TensorBatch out;
  for (const auto& [name, tensor] : batch) out[name] = tensor.index_select(0, rows);
  return out;
}

/// One cycle of best-of-n fine-tuning over `indices` of the prompts; returns its metrics.
std::map<std::string, double> best_of_n_cycle(actors::Step3Runtime& runtime, const actors::Step3Plan& plan,
                                              const actors::Step3Config& config, const std::vector<int64_t>& indices,
                                              int64_t n, int64_t step) {
  auto& system = runtime.system();
  auto& store = *runtime.store();
  const auto& roles = runtime.roles();
  auto prompts = data::make_step3_batch(plan.prompts.train, indices, config.data.lengths.max_prompt_seq_len, plan.pad_id);
  const int64_t p = prompts.input_ids.size(0);
  // 1. n samples per prompt: each prompt's row repeated n times, consecutive.
  auto prompt_ticket = store.publish({{keys::input_ids, prompts.input_ids.repeat_interleave(n, 0)},              // (P n, T0)
                                      {keys::attention_mask, prompts.attention_mask.repeat_interleave(n, 0)}});  // (P n, T0)
  auto sampled = actors::ask<actors::TicketList>(system, roles.policy, "policy.generate", actors::generate_atom::value,
                                                 actors::TicketList{{prompt_ticket}});
  // 2. Their rewards.
  auto rewards_ticket =
      actors::ask<actors::TicketList>(system, roles.reward, "reward.score", actors::score_atom::value, sampled);
  auto rewards = actors::fetch_all(store, rewards_ticket).at(keys::reward_score).view({p, n});  // (P, n)
  // 3. The best of each prompt's n.
  auto best = rewards.argmax(1) + torch::arange(p) * n;  // (P) row indices
  auto kept = store.publish(select_rows(actors::fetch_all(store, sampled), best));
  actors::TicketList kept_list{{kept}};
  // 4. Scores of the kept answers, as the experience needs them.
  actors::ExperienceTickets tickets;
  tickets.prompts = actors::TicketList{{prompt_ticket}};
  tickets.sequences = kept_list;
  tickets.logprobs = actors::ask<actors::TicketList>(system, roles.policy, "policy.score", actors::score_atom::value, kept_list);
  tickets.ref_logprobs =
      actors::ask<actors::TicketList>(system, roles.reference, "reference.score", actors::score_atom::value, kept_list);
  tickets.rewards = actors::TicketList{{store.publish({{keys::reward_score, rewards.amax(1)}})}};  // (P)
  auto exp = actors::fetch_experience(store, tickets);
  plan.algorithm->compute_advantages(exp);
  auto training = store.publish(actors::to_tensor_batch(exp));
  // 5. Fine-tune the actor on them.
  auto trained = actors::ask<actors::Metrics>(system, roles.policy, "policy.train", actors::train_atom::value,
                                              actors::TrainRequest{{actors::TicketList{{training}}}, step});

  actors::release_tickets(store, tickets);
  actors::release_tickets(store, std::vector<actors::TicketList>{sampled, rewards_ticket, {{training}}});
  auto metrics = trained.values;
  metrics["mean_reward"] = rewards.mean().item<double>();
  metrics["best_reward"] = rewards.amax(1).mean().item<double>();
  return metrics;
}

}  // namespace

int main(int argc, char** argv) {
  // Registered before a worker starts, so worker processes know the algorithm too.
  rl::AlgorithmRegistry::global().register_algorithm(
      "best_of_n_sft", [](const rl::AlgorithmOptions&) { return std::make_unique<BestOfNSft>(); });
  actors::run_step3_worker_if_asked(argc, argv);  // returns unless started as a worker
  try {
    auto flags = parse_flags(argc, argv);
    const auto& config = flags.config;
    torch::manual_seed(config.seed);
    const auto plan = actors::plan_step3(config);
    actors::Step3Runtime runtime(config, plan);
    std::cout << "own loop: " << runtime.placement() << "\n";
    int64_t step = 0;
    for (int64_t epoch = 0; epoch < config.epochs && step < plan.total_cycles; ++epoch)
      for (const auto& indices : plan.cycle_batches(epoch)) {
        if (step >= plan.total_cycles) break;
        auto metrics = best_of_n_cycle(runtime, plan, config, indices, flags.num_samples, step);
        ++step;
        std::cout << "cycle " << step << ": mean reward " << metrics["mean_reward"] << ", best of "
                  << flags.num_samples << " " << metrics["best_reward"] << ", sft loss " << metrics["actor_loss"]
                  << std::endl;
      }
    runtime.save(config.output_dir);
    std::cout << "own loop: " << step << " cycles; actor saved to " << (config.output_dir / "actor").string() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

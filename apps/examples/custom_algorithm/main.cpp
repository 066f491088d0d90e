/// An app that swaps PPO for its own RL algorithm and reward function, then runs step 3
/// on the actor runtime with them.
///
/// The algorithm is REINFORCE with a leave-one-out baseline, the idea of the built-in
/// `rloo`, written here as an app writes its own and registered as `leave_one_out`: four answers per
/// prompt, each answer's advantage is its reward minus the mean reward of the other
/// three, spread over its tokens; the policy loss is the clipped surrogate; no critic.
/// The reward function adds a brevity bonus to the demo task's gold score.
///
///   troupe_example_custom_algorithm --actor DIR --data DIR [--out DIR] [--cycles N] [--topology FILE]
///
/// With --topology (e.g. placement/examples/step3_reward_apart.json) the roles the file
/// separates run in worker processes, which are this program started as
/// `PROGRAM worker --join ...`: main() registers the algorithm and the reward first and
/// then lets run_step3_worker_if_asked() serve as the worker, so workers know them too.
///
/// DIR of --actor: a step-1 model (Hugging Face directory with tokenizer files);
/// DIR of --data: a folder with train.jsonl/test.jsonl in the Dahoas/rm-static schema
/// (`troupe data demo --out DIR` writes one).
#include <iostream>
#include <string>

#include <torch/torch.h>

#include <troupe/actors/step3_trainer.hpp>
#include <troupe/actors/step3_worker.hpp>
#include <troupe/data/demo_gold.hpp>
#include <troupe/rl/algorithm_registry.hpp>
#include <troupe/rl/loss_reduction.hpp>
#include <troupe/rl/ppo_losses.hpp>
#include <troupe/rl/reward_function.hpp>

namespace {

using namespace troupe;

class Rloo : public rl::Algorithm {
 public:
  Rloo(int64_t samples, double cliprange) : samples_(samples), cliprange_(cliprange) {}

  std::string name() const override { return "leave_one_out"; }
  // No critic; the reference is still scored so the KL is reported.
  rl::AlgorithmRoles roles() const override { return {false, true, rl::RewardSource::Any}; }
  int64_t samples_per_prompt() const override { return samples_; }

  void compute_advantages(rl::Experience& exp) override {
    // Rows come in consecutive groups of samples_ answers to one prompt. Answers the
    // trainer dropped (too short) can break a group, so groups are cut by row order and
    // a lone row gets no baseline.
    auto scores = exp.reward_score.to(torch::kFloat32);  // (B)
    const int64_t rows = scores.size(0);
    auto advantage = torch::zeros_like(scores);
    for (int64_t begin = 0; begin < rows; begin += samples_) {
      const int64_t n = std::min(samples_, rows - begin);
      auto group = scores.slice(0, begin, begin + n);
      auto baseline = n > 1 ? (group.sum() - group) / static_cast<double>(n - 1) : torch::zeros_like(group);
      advantage.slice(0, begin, begin + n).copy_(group - baseline);
    }
    const auto mask = exp.action_mask.narrow(1, exp.start(), exp.answer_length()).to(torch::kFloat32);  // (B, A)
    exp.advantages = advantage.unsqueeze(1) * mask;
  }

  torch::Tensor policy_loss(const torch::Tensor& logprobs, const rl::Experience& exp) const override {
    const int64_t start = exp.start(), answer = exp.answer_length();
    const auto mask = exp.action_mask.narrow(1, start, answer);  // (B, A)
    const auto per_token = rl::clipped_surrogate(logprobs.narrow(1, start, answer), exp.logprobs.narrow(1, start, answer),
                                                 exp.advantages, mask, cliprange_);  // (B, A)
    // The mean over the minibatch's action tokens, not over these rows' alone: on a
    // micro-batch of a minibatch (--max_tokens_per_microbatch) it is its share.
    return rl::minibatch_token_mean(per_token, mask, exp);
  }
  // Its loss divides by the minibatch's counts and adds up over rows.
  bool supports_micro_batches() const override { return true; }

 private:
  int64_t samples_;
  double cliprange_;
};

/// 1. Register the algorithm (its settings come through AlgorithmOptions, so a CLI can
///    pass them) and the reward function under names.
void register_extensions() {
  rl::AlgorithmRegistry::global().register_algorithm("leave_one_out", [](const rl::AlgorithmOptions& options) {
    return std::make_unique<Rloo>(options.get_int("samples", 4), options.get("cliprange", 0.2));
  });
  rl::RewardFunctionRegistry::global().register_reward_function(
      "gold_and_brief", [](const std::string& prompt, const std::string& response) {
        return troupe::data::gold_score(prompt, response) / 100.0 - 0.01 * static_cast<double>(response.size());
      });
}

}  // namespace

int main(int argc, char** argv) {
  register_extensions();
  actors::run_step3_worker_if_asked(argc, argv);  // returns unless started as a worker
  std::string actor, data_dir, out = "custom_algorithm_run", topology;
  int64_t cycles = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--actor") actor = value;
    else if (flag == "--data") data_dir = value;
    else if (flag == "--out") out = value;
    else if (flag == "--cycles") cycles = std::stoll(value);
    else if (flag == "--topology") topology = value;
    else {
      std::cerr << "unknown flag " << flag << "\n";
      return 2;
    }
  }
  if (actor.empty() || data_dir.empty()) {
    std::cerr << "usage: troupe_example_custom_algorithm --actor DIR --data DIR [--out DIR] [--cycles N] [--topology FILE]\n";
    return 2;
  }
  try {
    // 2. Run step 3 with them: the policy, reference and reward actors are spawned on
    //    the actor runtime and the controller drives the cycles.
    actors::Step3Config config;
    config.actor_model = actor;
    config.algorithm = "leave_one_out";
    config.algorithm_options.set("samples", 4);
    config.reward_function = "gold_and_brief";
    config.data.data_path = {data::parse_dataset_spec("Dahoas/rm-static=" + data_dir)};
    config.data.tokenizer_dir = actor;
    config.data.cache_dir = std::filesystem::path(out) / "data_cache";
    config.data.lengths.max_prompt_seq_len = 32;
    config.generation.max_new_tokens = 12;
    config.generation.do_sample = true;
    config.generation_batch_size = 4;
    config.training_batch_size = 8;
    config.max_steps = cycles;
    config.actor_train.optimizer.learning_rate = 1e-4;
    config.actor_train.schedule.warmup_steps = 0;
    config.eval_prompts = 8;
    config.output_dir = out;
    config.topology = topology;  // empty: every role in this process
    auto result = actors::run_step3(config);
    std::cout << "leave_one_out: " << result.cycles << " cycles; held-out reward " << result.before.reward_score << " -> "
              << result.after.reward_score << "; actor saved to " << out << "/actor\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

/// One full step-3 (PPO) iteration through troupe's API, without actors: generate with
/// the Hybrid Engine, make experience (actor and reference log-probs, critic values,
/// reward-model end scores), then train actor and critic one PPO minibatch epoch with
/// TrainEngines. Prints seconds per phase, tokens/s and peak RSS; driven by
/// bench/step3_vs_torch.py, which runs a transformers + PyTorch peer on the same weights
/// and prompts in the same run.
///
///   troupe_bench_step3 [--actor DIR] [--critic DIR] [--reward DIR] [--prompts FILE]
///                      [--batch 4] [--prompt 64] [--new 64] [--sample] [--seed 0]
///                      [--warmup 1] [--iters 1] [--threads 2] [--json FILE]
///                      [--op_profile ROWS] [--score_all_positions]
///                      [--dtype fp32|bf16] [--inference_dtype fp32|bf16]
///
/// --actor / --critic: Hugging Face directories (the critic's with v_head.weight); random
/// OPT-shaped models when absent (actor OPT-125m, critic hidden 512 x 6 layers). --reward
/// defaults to the critic's directory (DeepSpeed-Chat starts the critic from the reward
/// model). --prompts: a safetensors file with input_ids (B, P) and attention_mask (B, P)
/// (random full-length prompts of --batch x --prompt when absent). Every iteration makes
/// exactly --new tokens (no EOS stop), so each does the same work. --op_profile: the ROWS
/// operators (with input shapes) that took the most self time in the timed iterations.
/// --score_all_positions: the LM head runs for the prompt's positions too, as DeepSpeed-
/// Chat's and TRL's scoring does (troupe scores the answer's alone), to measure the gain.
/// --dtype bf16: as `troupe train --step 3 --dtype bf16`: every forward and backward under
/// bf16 autocast, fp32 masters and AdamW, the reference and reward keeping their linear
/// weights in bf16. --inference_dtype: the packed weights generation reads.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/engine/host_block_cache.hpp>
#include <troupe/engine/hybrid_engine.hpp>
#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/models/frozen_weights.hpp>
#include <troupe/models/inference_layout.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/safetensors.hpp>
#include <troupe/rl/experience.hpp>
#include <troupe/rl/ppo.hpp>

#include "bench_support.hpp"
#include "op_profile.hpp"

namespace {

using namespace troupe;

struct Args {
  int64_t batch = 4, prompt = 64, new_tokens = 64, warmup = 1, iters = 1, threads = 2, op_profile = 0;
  int64_t host_block_cache_mib = 0;  ///< > 0: engine::use_host_block_cache with this cap
  bool score_all_positions = false;
  torch::ScalarType dtype = torch::kFloat32, inference_dtype = torch::kFloat32;
  uint64_t seed = 0;
  bool sample = false;
  std::string actor, critic, reward, prompts, json;
};

Args parse(int argc, char** argv) {
  Args a;
  bench::for_each_flag(argc, argv, [&](const std::string& flag, const bench::FlagValue& value) {
    if (flag == "--actor") a.actor = value();
    else if (flag == "--critic") a.critic = value();
    else if (flag == "--reward") a.reward = value();
    else if (flag == "--prompts") a.prompts = value();
    else if (flag == "--batch") a.batch = std::stoll(value());
    else if (flag == "--prompt") a.prompt = std::stoll(value());
    else if (flag == "--new") a.new_tokens = std::stoll(value());
    else if (flag == "--sample") a.sample = true;
    else if (flag == "--seed") a.seed = std::stoull(value());
    else if (flag == "--warmup") a.warmup = std::stoll(value());
    else if (flag == "--iters") a.iters = std::stoll(value());
    else if (flag == "--threads") a.threads = std::stoll(value());
    else if (flag == "--json") a.json = value();
    else if (flag == "--op_profile") a.op_profile = std::stoll(value());
    else if (flag == "--host_block_cache_mib") a.host_block_cache_mib = std::stoll(value());
    else if (flag == "--score_all_positions") a.score_all_positions = true;
    else if (flag == "--dtype") a.dtype = engine::parse_compute_dtype(value(), "--dtype");
    else if (flag == "--inference_dtype") a.inference_dtype = models::inference_dtype_from_name(value(), "--inference_dtype");
    else throw Error("unknown flag " + flag);
  });

  if (a.iters < 1 || a.warmup < 0) throw Error("--iters must be >= 1 and --warmup >= 0");
  if (a.reward.empty()) a.reward = a.critic;
  return a;
}

/// A random OPT of the given width and depth (no download needed), dropout off.
models::Config opt_shape(int64_t hidden, int64_t layers, int64_t heads) {
  return models::parse_config({{"model_type", "opt"},
                               {"vocab_size", 50272},
                               {"hidden_size", hidden},
                               {"num_hidden_layers", layers},
                               {"num_attention_heads", heads},
                               {"ffn_dim", 4 * hidden},
                               {"max_position_embeddings", 2048},
                               {"word_embed_proj_dim", hidden},
                               {"do_layer_norm_before", true},
                               {"dropout", 0.0},
                               {"pad_token_id", 1},
                               {"eos_token_id", 2}},
                              "opt shape");
}

models::CausalLM load_or_make(const std::string& dir, bool value_head, int64_t hidden, int64_t layers,
                              int64_t heads) {
  if (!dir.empty()) {
    models::LoadOptions options;
    options.value_head = value_head;
    return models::load_pretrained(dir, options);
  }
  auto model = models::make_causal_lm(opt_shape(hidden, layers, heads));
  if (value_head) model->add_value_head();
  return model;
}

using bench::median;
using bench::peak_rss_bytes;
using bench::seconds_since;

engine::TrainOptions train_options(double learning_rate, torch::ScalarType dtype) {
  engine::TrainOptions o;
  o.compute_dtype = dtype;
  o.optimizer.learning_rate = learning_rate;
  o.optimizer.weight_decay = 0.0;
  o.schedule = {engine::ScheduleType::Constant, 0, 1};
  o.max_grad_norm = 1.0;
  return o;
}

template <typename T>
std::vector<T> to_vector(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU).contiguous();
  return std::vector<T>(c.data_ptr<T>(), c.data_ptr<T>() + c.numel());
}

/// What one iteration did: phase seconds and the numbers both sides must agree on.
struct Iteration {
  double generate_seconds = 0, experience_seconds = 0, train_seconds = 0;
  double total() const { return generate_seconds + experience_seconds + train_seconds; }
  nlohmann::json check;  // first row, reward scores, losses
};

}  // namespace

int main(int argc, char** argv) {
  try {
    const auto args = parse(argc, argv);
    at::set_num_threads(static_cast<int>(args.threads));
    if (args.host_block_cache_mib > 0) engine::use_host_block_cache(args.host_block_cache_mib << 20);
    torch::manual_seed(static_cast<int64_t>(args.seed));
    auto actor = load_or_make(args.actor, false, 768, 12, 12);
    auto critic = load_or_make(args.critic, true, 512, 6, 8);
    auto reward = load_or_make(args.reward, true, 512, 6, 8);
    reward->eval();
    for (auto& p : reward->parameters()) p.set_requires_grad(false);
    models::store_frozen_linears_in(*reward, args.dtype);  // as the reward role does

    torch::Tensor prompts, prompt_mask;  // (B, P)
    if (args.prompts.empty()) {
      prompts = torch::randint(3, 50000, {args.batch, args.prompt}, torch::kLong);
      prompt_mask = torch::ones_like(prompts);
    } else {
      auto inputs = models::read_safetensors(args.prompts);
      prompts = inputs.at("input_ids").to(torch::kLong).contiguous();
      prompt_mask = inputs.at("attention_mask").to(torch::kLong).contiguous();
    }
    const int64_t B = prompts.size(0), P = prompts.size(1);

    engine::HybridEngineOptions hybrid_options;
    hybrid_options.log_switches = false;
    hybrid_options.inference_dtype = args.inference_dtype;
    hybrid_options.compute_dtype = args.dtype;
    engine::HybridEngine hybrid(actor, hybrid_options);
    // Built before any update: the actor as step 3 starts (a frozen copy, no LoRA here).
    engine::ReferencePolicy reference(actor, hybrid.model_mutex(), args.dtype);
    engine::TrainEngine actor_trainer(actor, train_options(9.65e-6, args.dtype));  // DeepSpeed-Chat's actor rate
    engine::TrainEngine critic_trainer(critic, train_options(5e-6, args.dtype));   // and critic rate
    rl::Ppo ppo;  // kl_ctl 0.1, clip_reward_value 5, cliprange 0.2, gamma 1, lam 0.95

    models::GenerationOptions generation;
    generation.max_new_tokens = args.new_tokens;
    generation.do_sample = args.sample;
    generation.seed = args.seed;
    generation.eos_token_ids = {-1};  // never stop early: every iteration makes the same tokens

    auto iterate = [&]() {
      Iteration it;
      auto start = std::chrono::steady_clock::now();
      auto out = hybrid.generate(prompts, prompt_mask, generation);
      it.generate_seconds = seconds_since(start);
      const auto& seq = out.sequences;        // (B, T)
      const auto& mask = out.attention_mask;  // (B, T)

      start = std::chrono::steady_clock::now();
      auto exp = rl::Experience::from_generation(prompts, seq, mask);
      engine::ScoringOptions answer_only;  // as the step-3 roles score: the answer's columns
      if (!args.score_all_positions) answer_only.first_position = exp.start();
      exp.logprobs = hybrid.score_logprobs(seq, mask, answer_only);   // (B, T-1)
      exp.ref_logprobs = reference.logprobs(seq, mask, answer_only);  // (B, T-1)
      critic_trainer.evaluate([&](models::CausalLMImpl& m) {
        exp.values = engine::sequence_values(m, seq, mask).to(torch::kFloat32);  // (B, T-1)
      });
      {
        torch::NoGradGuard no_grad;
        engine::AutocastScope autocast(torch::kCPU, args.dtype);
        exp.reward_score = engine::end_scores(*reward, seq, mask, out.prompt_length).to(torch::kFloat32);  // (B)
      }
      it.experience_seconds = seconds_since(start);

      start = std::chrono::steady_clock::now();
      ppo.compute_advantages(exp);
      engine::MicroStep actor_step, critic_step;
      hybrid.run_training([&](models::CausalLMImpl&) {
        actor_step = actor_trainer.micro_step([&](models::CausalLMImpl& m) {
          auto logprobs = engine::sequence_logprobs(m, seq, mask, answer_only);  // (B, T-1) with autograd
          return ppo.policy_loss(logprobs, exp);
        });
      });
      critic_step = critic_trainer.micro_step([&](models::CausalLMImpl& m) {
        auto values = engine::sequence_values(m, seq, mask);  // (B, T-1) with autograd
        return ppo.value_loss(values.to(torch::kFloat32), exp);
      });
      it.train_seconds = seconds_since(start);

      const auto answer = exp.action_mask.narrow(1, exp.start(), exp.answer_length()).to(torch::kFloat32);  // (B, A)
      const auto answer_logprobs = exp.logprobs.narrow(1, exp.start(), exp.answer_length());              // (B, A)
      it.check = {{"first_row", to_vector<int64_t>(seq[0])},
                  {"reward_scores", to_vector<float>(exp.reward_score)},
                  {"answer_logprob_mean", ((answer_logprobs * answer).sum() / answer.sum()).item<double>()},
                  {"advantage_mean", exp.advantages.mean().item<double>()},
                  {"actor_loss", actor_step.loss},
                  {"critic_loss", critic_step.loss},
                  {"actor_grad_norm", actor_step.grad_norm},
                  {"critic_grad_norm", critic_step.grad_norm}};
      return it;
    };

    nlohmann::json first_check;
    for (int64_t i = 0; i < args.warmup; ++i) {
      auto it = iterate();
      if (i == 0) first_check = it.check;
    }
    std::vector<double> gen, experience, train, total;
    std::optional<bench::OpProfile> profile;
    if (args.op_profile > 0) profile.emplace();
    for (int64_t i = 0; i < args.iters; ++i) {
      auto it = iterate();
      if (first_check.is_null()) first_check = it.check;
      gen.push_back(it.generate_seconds);
      experience.push_back(it.experience_seconds);
      train.push_back(it.train_seconds);
      total.push_back(it.total());
    }
    const double tokens_per_s = static_cast<double>(B * (P + args.new_tokens)) / median(total);
    const int64_t rss = peak_rss_bytes();

    std::printf("step-3 iteration (generate, experience, PPO actor + critic epoch), %s CPU (generation %s), B=%lld P=%lld N=%lld, %s, "
                "%lld threads, median of %lld after %lld warm-up\n",
                c10::toString(args.dtype), c10::toString(args.inference_dtype),
                static_cast<long long>(B), static_cast<long long>(P), static_cast<long long>(args.new_tokens),
                args.sample ? "sampling" : "greedy", static_cast<long long>(args.threads),
                static_cast<long long>(args.iters), static_cast<long long>(args.warmup));
    std::printf("%-24s %12s\n", "phase", "troupe");
    std::printf("%-24s %12.3f\n", "generate s", median(gen));
    std::printf("%-24s %12.3f\n", "experience s", median(experience));
    std::printf("%-24s %12.3f\n", "train s", median(train));
    std::printf("%-24s %12.3f\n", "iteration s", median(total));
    std::printf("%-24s %12.1f\n", "tokens/s", tokens_per_s);
    std::printf("%-24s %12.1f\n", "peak RSS MiB", static_cast<double>(rss) / (1 << 20));
    std::printf("%-24s %12.6f\n", "first actor loss", first_check["actor_loss"].get<double>());
    std::printf("%-24s %12.6f\n", "first critic loss", first_check["critic_loss"].get<double>());
    if (profile) {
      std::printf("\noperators by self time, per iteration:\n");
      profile->print(static_cast<int>(args.op_profile), static_cast<double>(args.iters));
    }
    if (!args.json.empty()) {
      std::ofstream out(args.json);
      out << nlohmann::json{{"batch", B},
                            {"prompt", P},
                            {"new_tokens", args.new_tokens},
                            {"sample", args.sample},
                            {"dtype", c10::toString(args.dtype)},
                            {"inference_dtype", c10::toString(args.inference_dtype)},
                            {"threads", args.threads},
                            {"iters", args.iters},
                            {"generate_seconds", median(gen)},
                            {"experience_seconds", median(experience)},
                            {"train_seconds", median(train)},
                            {"iteration_seconds", median(total)},
                            {"iteration_seconds_all", total},
                            {"tokens_per_s", tokens_per_s},
                            {"peak_rss_bytes", rss},
                            {"first_iteration", first_check}}
                 .dump(2)
          << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "troupe_bench_step3: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

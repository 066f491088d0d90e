#pragma once
/// What the step-3 runtime tests share: a small world of data, tokenizer and models on
/// disk, and runs of the same step 3 alone and on two ranks.
#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <troupe/actors/step3_trainer.hpp>
#include <troupe/data/demo_corpus.hpp>
#include <troupe/engine/checkpoint.hpp>
#include <troupe/engine/model_presets.hpp>
#include <troupe/models/bpe_trainer.hpp>
#include <troupe/models/bpe_tokenizer.hpp>

namespace troupe::testing {

namespace fs = std::filesystem;

inline fs::path fresh_dir(const std::string& name) {
  auto dir = fs::path(TROUPE_TEST_TMP_DIR) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

/// A small demo corpus, a tokenizer for it, a random actor and a critic/reward model
/// with a value head, as directories step 3 loads.
struct Step3World {
  fs::path root, data, tokenizer, actor, critic;

  /// `name`: a folder of its own, so test cases can run in parallel (ctest -j).
  explicit Step3World(const std::string& name)
      : root(fresh_dir("step3_" + name)),
        data(root / "data"),
        tokenizer(root / "tokenizer"),
        actor(root / "actor"),
        critic(root / "critic") {
    data::DemoOptions demo;
    demo.train_pairs = 200;
    demo.eval_pairs = 40;
    demo.prompts = 10;
    demo.unsupervised_docs = 50;
    auto corpus = data::generate_demo_corpus(demo);
    data::write_demo_corpus(corpus, data);
    std::vector<std::string> texts;
    for (const auto& p : corpus.train) texts.insert(texts.end(), {p.prompt, p.chosen, p.rejected});
    models::BpeTrainerOptions options;
    options.vocab_size = 320;
    options.special_tokens = {"<s>", "</s>", "<pad>", "<unk>"};
    options.bos_token = "<s>";
    options.eos_token = "</s>";
    options.pad_token = "<pad>";
    options.unk_token = "<unk>";
    auto tok = models::train_bpe_tokenizer(texts, options);
    tok->save(tokenizer);
    torch::manual_seed(3);
    auto actor_model = engine::make_preset_model("llama-tiny", *tok);
    engine::save_model_dir(*actor_model, tokenizer, actor);
    auto critic_model = engine::make_preset_model("llama-tiny", *tok);
    critic_model->add_value_head();
    engine::save_model_dir(*critic_model, tokenizer, critic);
  }

  actors::Step3Config config(const std::string& out) const {
    actors::Step3Config c;
    c.actor_model = actor;
    c.critic_model = critic;
    c.data.data_path = {data::parse_dataset_spec("Dahoas/rm-static=" + data.string())};
    c.data.tokenizer_dir = tokenizer;
    c.data.cache_dir = root / "cache";
    c.data.lengths.max_prompt_seq_len = 32;
    c.generation.max_new_tokens = 6;
    c.generation.do_sample = true;
    c.generation_batch_size = 4;
    c.training_batch_size = 2;
    c.max_steps = 2;
    c.eval_prompts = 4;
    c.actor_train.optimizer.learning_rate = 1e-3;
    c.critic_train.optimizer.learning_rate = 1e-3;
    c.output_dir = root / out;
    return c;
  }
};

inline std::vector<nlohmann::json> rows_of(const std::vector<nlohmann::json>& rows, const std::string& phase) {
  std::vector<nlohmann::json> out;
  for (const auto& row : rows)
    if (row.at("phase") == phase) out.push_back(row);
  return out;
}

struct AloneAndRanked {
  actors::Step3Result one, two;
  actors::Step3Config ranked;
};

/// Step 3's first cycle twice, greedy so both answer the same: in one process with 6
/// prompts, and with `roles` (a topology's "roles" object, every role colocated with the
/// actor) on two ranks with 3 prompts each (--per_device_generation_batch_size counts per
/// actor rank), rank 1 in a worker process. `adjust` sets what both runs share.
inline AloneAndRanked run_alone_and_on_two_ranks(const Step3World& world, const std::string& roles,
                                          const std::function<void(actors::Step3Config&)>& adjust) {
  const auto topology = world.root / "two_ranks.json";
  std::ofstream(topology) << R"({"precision": "fp32",
    "batch": {"generation_batch_size": 4, "training_batch_size": 2, "prompt_len": 32, "answer_len": 6},
    "roles": )" << roles << R"(, "colocate": [["actor", "reference", "critic", "reward"]]})";
  // This machine may have fewer CPU threads than the ranks reserve.
  const auto cluster = world.root / "machine.json";
  std::ofstream(cluster) << R"({"nodes": [{"name": "local", "cpu_threads": 8, "memory": "8GiB"}]})";
  auto configure = [&](const std::string& out, int64_t prompts_per_rank) {
    auto config = world.config(out);
    config.generation.do_sample = false;
    config.generation_batch_size = prompts_per_rank;
    config.max_steps = 1;
    adjust(config);
    return config;
  };
  auto alone = configure("alone", 6);
  auto ranked = configure("ranked", 3);
  ranked.topology = topology;
  ranked.cluster = cluster;
  ranked.worker_program = TROUPE_CLI_PATH;
  auto one = actors::run_step3(alone);
  auto two = actors::run_step3(ranked);
  return {std::move(one), std::move(two), std::move(ranked)};
}

/// The first cycle's experience (generated, scored and joined over the ranks) equals
/// the single process's.
inline void check_same_first_cycle(const actors::Step3Result& one, const actors::Step3Result& two) {
  REQUIRE(two.cycles == 1);
  for (const char* name : {"reward_score", "kl", "value", "advantage", "return", "answer_length"}) {
    INFO(name);
    CHECK(two.last_metrics.at(name) == Approx(one.last_metrics.at(name)).epsilon(1e-4).margin(1e-5));
  }
}


}  // namespace troupe::testing

/// Adapter checkpoints of a LoRA run over a frozen base: only what the base does not
/// hold is written, resume loads the base from its directory after checking its hashes
/// and continues bit for bit; a changed or missing base is named.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>
#include <troupe/common/xxh64.hpp>
#include <troupe/engine/checkpoint.hpp>
#include <troupe/engine/losses.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/engine/training_loop.hpp>
#include <troupe/models/lora.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/safetensors.hpp>

#include "../models/model_fixtures.hpp"
#include "random_lm_task.hpp"

using namespace troupe;
namespace fs = std::filesystem;

namespace {

/// The step-1 model of a LoRA run: the base from `base_dir`, rank-2 adapters, only they train.
models::CausalLM lora_model(const fs::path& base_dir) {
  torch::manual_seed(5);
  auto model = models::load_pretrained(base_dir);
  models::set_dropout(*model, 0.1);
  models::apply_lora(*model, {2, 4.0, 0.0, ""});
  models::only_optimize_lora(*model);
  return model;
}

/// Runs the phase in parts, each in a fresh "process" (new model and engine), stopping
/// after stops[i] optimizer steps (0 = to the end).
models::CausalLM run_parts(const fs::path& base_dir, const fs::path& out, const std::vector<int64_t>& stops) {
  models::CausalLM model;
  for (size_t part = 0; part < stops.size(); ++part) {
    model = lora_model(base_dir);
    engine::TrainOptions train;
    train.optimizer.learning_rate = 1e-2;
    train.optimizer.lora_learning_rate = 1e-2;
    train.schedule = {engine::ScheduleType::Cosine, 1, 4};
    engine::TrainEngine trainer(model, train);
    engine::PhaseOptions options;
    options.max_steps = stops[part];
    options.output_dir = out;
    options.resume = part > 0;
    options.evaluate_first = false;
    engine::run_phase(trainer, testing::random_lm_task(4), options);
  }
  return model;
}

int64_t tensor_bytes(const torch::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }

}  // namespace

TEST_CASE("XXH64 gives the reference digests, whatever the chunking", "[engine][checkpoint]") {
  // Digests of the xxhash reference implementation (Python's xxhash.xxh64).
  auto digest = [](const std::string& text, size_t chunk) {
    Xxh64 h;
    for (size_t i = 0; i < text.size(); i += chunk) h.update(text.data() + i, std::min(chunk, text.size() - i));
    return h.hex();
  };
  CHECK(Xxh64().hex() == "ef46db3751d8e999");
  CHECK(digest("abc", 1) == "44bc2cf5ad770999");
  const std::string fox = "The quick brown fox jumps over the lazy dog";
  for (size_t chunk : {1, 5, 32, 100}) CHECK(digest(fox, chunk) == "0b242d361fda71bc");
}

TEST_CASE("engine: a LoRA run checkpoints its adapters only and resumes bit for bit", "[engine][checkpoint][lora]") {
  const auto base_dir = test::scratch_dir("lora_ckpt_base");
  torch::manual_seed(2);
  auto base = models::make_causal_lm(test::tiny_config("llama"));
  models::save_pretrained(*base, base_dir);

  const auto straight_dir = test::scratch_dir("lora_ckpt_straight");
  const auto parts_dir = test::scratch_dir("lora_ckpt_parts");
  auto straight = run_parts(base_dir, straight_dir, {0});
  auto resumed = run_parts(base_dir, parts_dir, {2, 0});
  auto pa = straight->named_parameters(), pb = resumed->named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].key());
    CHECK(torch::equal(pa[i].value(), pb[i].value()));
  }

  const auto checkpoint = engine::checkpoint_dir(straight_dir);
  {  // the checkpoint holds the adapters, the optimizer and the base's name and hashes
    CHECK_FALSE(fs::exists(checkpoint / "model.safetensors"));
    torch::serialize::InputArchive archive;
    archive.load_from((checkpoint / "training_state" / "parameters.pt").string());
    int64_t adapter_bytes = 0, model_bytes = 0;
    for (const auto& item : straight->named_parameters()) {
      model_bytes += tensor_bytes(item.value());
      if (item.value().requires_grad()) adapter_bytes += tensor_bytes(item.value());
    }
    int64_t stored_bytes = 0;
    for (const auto& key : archive.keys()) {
      INFO(key);
      CHECK((key.find(".lora_A") != std::string::npos || key.find(".lora_B") != std::string::npos));
      torch::Tensor t;
      archive.read(key, t);
      stored_bytes += tensor_bytes(t);
    }
    CHECK(stored_bytes == adapter_bytes);
    CHECK(adapter_bytes * 4 < model_bytes);
    const auto state = nlohmann::json::parse(read_file(checkpoint / "training_state" / "state.json"));
    const auto& recorded = state.at("base_model");
    CHECK(fs::equivalent(recorded.at("dir").get<std::string>(), base_dir));
    std::set<std::string> files;
    for (const auto& f : recorded.at("files")) files.insert(f.at("name").get<std::string>());
    CHECK(files == std::set<std::string>{"config.json", "model.safetensors"});
  }
  {  // the final save is the fused model and its PEFT adapter
    CHECK(fs::exists(straight_dir / "model.safetensors"));
    CHECK(fs::exists(straight_dir / "adapter" / "adapter_config.json"));
    CHECK(fs::exists(straight_dir / "adapter" / "adapter_model.safetensors"));
  }
  {  // a changed base is refused, naming the file: one weight byte flipped, same size
    const auto file = base_dir / "model.safetensors";
    const auto original = read_file(file);
    auto bytes = original;
    bytes[bytes.size() - 3] = static_cast<char>(bytes[bytes.size() - 3] ^ 0x40);
    write_file_atomically(file, bytes);
    auto model = lora_model(base_dir);
    engine::TrainEngine trainer(model, engine::TrainOptions{});
    CHECK_THROWS_WITH(engine::load_training_checkpoint(trainer, checkpoint),
                      Catch::Contains(file.string()) && Catch::Contains("has changed"));
    write_file_atomically(file, original);
  }
  {  // a missing base file is refused, naming it
    auto model = lora_model(base_dir);
    fs::remove(base_dir / "config.json");
    engine::TrainEngine trainer(model, engine::TrainOptions{});
    CHECK_THROWS_WITH(engine::load_training_checkpoint(trainer, checkpoint),
                      Catch::Contains((base_dir / "config.json").string()) && Catch::Contains("missing"));
  }
}

TEST_CASE("engine: a LoRA critic's fresh value head is checkpointed with the adapters", "[engine][checkpoint][lora]") {
  // Step 2 with --only_optimize_lora freezes the new v_head too (as DeepSpeed-Chat does):
  // the base does not hold it, so the checkpoint must.
  const auto base_dir = test::scratch_dir("lora_ckpt_critic_base");
  torch::manual_seed(2);
  models::save_pretrained(*models::make_causal_lm(test::tiny_config("opt")), base_dir);
  auto model = models::load_pretrained(base_dir);
  model->add_value_head();
  models::apply_lora(*model, {2, 4.0, 0.0, ""});
  models::only_optimize_lora(*model);
  engine::TrainEngine trainer(model, engine::TrainOptions{});
  const auto dir = test::scratch_dir("lora_ckpt_critic") / "checkpoint";
  engine::save_training_checkpoint(trainer, {}, dir, {0, 0}, nlohmann::json::object());
  torch::serialize::InputArchive archive;
  archive.load_from((dir / "training_state" / "parameters.pt").string());
  torch::Tensor head;
  CHECK(archive.try_read("v_head.weight", head));

  torch::manual_seed(77);  // another fresh head: resume must bring back the saved one
  auto again = models::load_pretrained(base_dir);
  again->add_value_head();
  models::apply_lora(*again, {2, 4.0, 0.0, ""});
  models::only_optimize_lora(*again);
  engine::TrainEngine resumed(again, engine::TrainOptions{});
  engine::load_training_checkpoint(resumed, dir);
  auto pa = model->named_parameters(), pb = again->named_parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].key());
    CHECK(torch::equal(pa[i].value(), pb[i].value()));
  }
}

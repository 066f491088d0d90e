#include <catch2/catch.hpp>

#include "bytes.hpp"
#include <troupe/placement/memory_estimate.hpp>

using namespace troupe::placement;

namespace {

constexpr int64_t kOpt13 = 1'315'758'080;  // OPT-1.3B parameters

RoleSpec role(Role r, int devices = 1, int zero_stage = 0) {
  RoleSpec spec;
  spec.role = r;
  spec.devices = devices;
  spec.dp = devices;
  spec.zero_stage = zero_stage;
  return spec;
}

const ModelShape& opt13() {
  static const ModelShape shape = *find_preset("opt-1.3b");
  return shape;
}

}  // namespace

TEST_CASE("reference and reward hold only fp16 weights: OPT-1.3B is about 2.6 GB", "[placement][memory]") {
  const auto m = estimate_memory(role(Role::Reference), opt13(), Precision::Fp16, BatchSpec{});
  CHECK(m.weights == 2 * kOpt13);
  CHECK(m.weights == 2'631'516'160);  // 2.63 GB
  CHECK(m.trainable == 0);
  CHECK(m.optimizer == 0);
  CHECK(m.gradients == 0);
  CHECK(m.train_activations == 0);
  CHECK(m.kv_cache == 0);
  CHECK(m.resident() == m.weights);
  CHECK(m.peak() == m.weights + m.score_activations);
  // fp32 doubles it.
  CHECK(estimate_memory(role(Role::Reward), opt13(), Precision::Fp32, BatchSpec{}).weights ==
        4 * parameter_count(opt13(), Head::Value));
}

TEST_CASE("mixed-precision Adam: 16 bytes per parameter, partitioned per ZeRO stage", "[placement][memory]") {
  const auto s0 = estimate_memory(role(Role::Actor, 1, 0), opt13(), Precision::Fp16, BatchSpec{});
  CHECK(s0.weights + s0.gradients + s0.optimizer == 16 * kOpt13);  // DeepSpeed's 2 + 2 + 12
  CHECK(s0.optimizer == 12 * kOpt13);

  const int64_t shard = 164'469'760;  // 1,315,758,080 / 8
  const auto s1 = estimate_memory(role(Role::Actor, 8, 1), opt13(), Precision::Fp16, BatchSpec{});
  CHECK(s1.weights == 2 * kOpt13);
  CHECK(s1.gradients == 2 * kOpt13);
  CHECK(s1.optimizer == 12 * shard);
  const auto s2 = estimate_memory(role(Role::Actor, 8, 2), opt13(), Precision::Fp16, BatchSpec{});
  CHECK(s2.weights == 2 * kOpt13);
  CHECK(s2.gradients == 2 * shard);
  CHECK(s2.optimizer == 12 * shard);
  const auto s3 = estimate_memory(role(Role::Actor, 8, 3), opt13(), Precision::Fp16, BatchSpec{});
  CHECK(s3.weights == 2 * shard);  // ZeRO-3 over 8 ranks divides parameters by 8
  CHECK(s3.gradients == 2 * shard);
  CHECK(s3.optimizer == 12 * shard);
  CHECK(s3.weights + s3.gradients + s3.optimizer == 16 * kOpt13 / 8);
  // ZeRO-3 gathers the embedding (50272 x 2048, larger than two layers) at a time, and
  // the full model for generation.
  CHECK(s3.zero3_gather == 2 * 50272 * 2048);
  CHECK(s3.inference_weights == 2 * kOpt13);
  CHECK(s2.inference_weights == 0);

  // Uneven partitions pad up, as DeepSpeed does: 125,239,296 / 7 -> 17,891,328.
  const auto uneven = estimate_memory(role(Role::Critic, 7, 3), *find_preset("opt-125m"), Precision::Fp16, BatchSpec{});
  CHECK(uneven.weights == 2 * ((parameter_count(*find_preset("opt-125m"), Head::Value) + 6) / 7));

  // fp32 training: 4 + 4 + 8 (Adam moments, no master copy).
  const auto f32 = estimate_memory(role(Role::Actor, 1, 0), opt13(), Precision::Fp32, BatchSpec{});
  CHECK(f32.weights + f32.gradients + f32.optimizer == 16 * kOpt13);
  CHECK(f32.optimizer == 8 * kOpt13);

  // TP 2 x DP 4 under ZeRO-3: each TP half partitioned over 4.
  auto tp = role(Role::Actor, 8, 3);
  tp.tp = 2;
  tp.dp = 4;
  const auto t = estimate_memory(tp, opt13(), Precision::Fp16, BatchSpec{});
  CHECK(t.weights == 2 * (kOpt13 / 2 / 4));
  CHECK(t.inference_weights == 2 * (kOpt13 / 2));
}

TEST_CASE("CPU offload moves optimizer state (and the gradient partition) to the host", "[placement][memory]") {
  auto spec = role(Role::Actor, 8, 2);
  spec.offload_optimizer = true;
  const int64_t shard = kOpt13 / 8;
  const auto m = estimate_memory(spec, opt13(), Precision::Fp16, BatchSpec{});
  CHECK(m.optimizer == 0);
  CHECK(m.host == 12 * shard + 2 * shard);
  CHECK(m.weights == 2 * kOpt13);
  spec.zero_stage = 3;
  spec.offload_params = true;
  const auto p = estimate_memory(spec, opt13(), Precision::Fp16, BatchSpec{});
  CHECK(p.weights == 0);
  CHECK(p.host == 2 * shard + 12 * shard + 2 * shard);
}

TEST_CASE("LoRA: frozen base weights, adapter-only gradients and optimizer", "[placement][memory]") {
  auto spec = role(Role::Actor, 1, 0);
  spec.lora_dim = 128;
  const int64_t lora = 113'246'208;
  const auto m = estimate_memory(spec, opt13(), Precision::Fp16, BatchSpec{});
  CHECK(m.parameters == kOpt13 + lora);
  CHECK(m.trainable == lora);
  CHECK(m.weights == 2 * (kOpt13 + lora));
  CHECK(m.gradients == 2 * lora);
  CHECK(m.optimizer == 12 * lora);
  spec.only_optimize_lora = false;
  const auto all = estimate_memory(spec, opt13(), Precision::Fp16, BatchSpec{});
  CHECK(all.trainable == kOpt13 + lora);
  CHECK(all.optimizer == 12 * (kOpt13 + lora));
}

TEST_CASE("activations per layer follow Korthikanti et al.; checkpointing keeps layer inputs", "[placement][memory]") {
  // OPT-1.3B, b = 1, s = 512, t = 1: s*b*h*34 + 5*a*s^2*b = 35,651,584 + 41,943,040.
  CHECK(layer_activation_bytes(opt13(), 1, 512, 1, Precision::Fp16) == 77'594'624);
  // t = 2: s*b*h*(10 + 24/2) + 5*a*s^2*b/2.
  CHECK(layer_activation_bytes(opt13(), 1, 512, 2, Precision::Fp16) == 1'048'576LL * 22 + 20'971'520);
  CHECK(layer_activation_bytes(opt13(), 1, 512, 1, Precision::Fp32) == 2 * 77'594'624);

  BatchSpec batch;
  batch.training_batch_size = 4;
  batch.prompt_len = 256;
  batch.answer_len = 256;
  const int64_t layer = layer_activation_bytes(opt13(), 4, 512, 1, Precision::Fp16);
  CHECK(layer == 4 * 77'594'624);
  const int64_t logits = 4LL * 512 * 50272 * (2 + 4);
  auto spec = role(Role::Actor, 1, 2);
  CHECK(estimate_memory(spec, opt13(), Precision::Fp16, batch).train_activations == 24 * layer + logits);
  spec.gradient_checkpointing = true;
  CHECK(estimate_memory(spec, opt13(), Precision::Fp16, batch).train_activations ==
        24LL * 512 * 4 * 2048 * 2 + layer + logits);
  // A critic has a value head: no logits.
  auto critic = role(Role::Critic, 1, 2);
  CHECK(estimate_memory(critic, opt13(), Precision::Fp16, batch).train_activations == 24 * layer);
}

TEST_CASE("KV cache: 2 * layers * batch * tokens * kv_heads * head_dim * bytes", "[placement][memory]") {
  // OPT-1.3B, 16 sequences of 256 + 256 tokens in fp16: 1.5 GiB.
  CHECK(kv_cache_bytes(opt13(), 16, 512, 1, Precision::Fp16) == 2LL * 24 * 16 * 512 * 32 * 64 * 2);
  CHECK(kv_cache_bytes(opt13(), 16, 512, 1, Precision::Fp16) == 3 * kGiB / 2);
  // Grouped-query attention stores only the 8 KV heads of Llama-3-8B; TP splits them.
  const auto llama3 = *find_preset("llama-3-8b");
  CHECK(kv_cache_bytes(llama3, 1, 1024, 1, Precision::Bf16) == 2LL * 32 * 1024 * 8 * 128 * 2);
  CHECK(kv_cache_bytes(llama3, 1, 1024, 2, Precision::Bf16) == 2LL * 32 * 1024 * 4 * 128 * 2);
  const auto actor = estimate_memory(role(Role::Actor), opt13(), Precision::Fp16, BatchSpec{});
  CHECK(actor.kv_cache == 3 * kGiB / 2);
  CHECK(actor.generation() == actor.kv_cache + actor.generation_activations);
}

TEST_CASE("a tensor-parallel generation group gathers its ranks' prompts: same KV cache per rank, 1/tp of ZeRO-3's gathered weights",
          "[placement][memory]") {
  auto alone = role(Role::Actor, 8, 3);
  auto grouped = alone;
  grouped.inference_tp_size = 4;
  const auto a = estimate_memory(alone, opt13(), Precision::Fp16, BatchSpec{});
  const auto g = estimate_memory(grouped, opt13(), Precision::Fp16, BatchSpec{});
  // 4x the rows, 1/4 of the heads each.
  CHECK(g.kv_cache == a.kv_cache);
  CHECK(g.kv_cache == kv_cache_bytes(opt13(), 4 * 16, 512, 4, Precision::Fp16));
  CHECK(g.inference_weights * 4 == a.inference_weights);
  CHECK(g.weights == a.weights);  // the training layout is unchanged
}

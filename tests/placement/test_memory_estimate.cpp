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

// OPT-1.3B's decoder layers: linear weights (4 h^2 + 2 h I), and with biases and norms.
constexpr int64_t kLayerLinearWeights = 4LL * 2048 * 2048 + 2LL * 2048 * 8192;  // 50,331,648
constexpr int64_t kLayer = kLayerLinearWeights + 26'624;
constexpr int64_t kKept = kOpt13 - 24 * kLayer;  // embeddings, positions, final norm: whole under ZeRO-3

TEST_CASE("reference and reward hold their weights: frozen linear weights in 16 bits under a 16-bit precision",
          "[placement][memory]") {
  const auto m = estimate_memory(role(Role::Reference), opt13(), Precision::Fp16, BatchSpec{});
  CHECK(m.weights == 2 * 24 * kLayerLinearWeights + 4 * (kOpt13 - 24 * kLayerLinearWeights));
  CHECK(m.trainable == 0);
  CHECK(m.optimizer == 0);
  CHECK(m.gradients == 0);
  CHECK(m.train_activations == 0);
  CHECK(m.kv_cache == 0);
  CHECK(m.resident() == m.weights);
  CHECK(m.peak() == m.weights + m.score_activations);
  // fp32 keeps them in fp32.
  CHECK(estimate_memory(role(Role::Reward), opt13(), Precision::Fp32, BatchSpec{}).weights ==
        4 * parameter_count(opt13(), Head::Value));
}

TEST_CASE("troupe's AdamW: fp32 weights, gradients and two moments, partitioned per ZeRO stage", "[placement][memory]") {
  // fp32 masters in either precision: 4 + 4 + 8 bytes per trained parameter.
  for (const auto precision : {Precision::Fp16, Precision::Fp32}) {
    const auto s0 = estimate_memory(role(Role::Actor, 1, 0), opt13(), precision, BatchSpec{});
    CHECK(s0.weights == 4 * kOpt13);
    CHECK(s0.gradients == 4 * kOpt13);
    CHECK(s0.optimizer == 8 * kOpt13);
  }
  // One rank partitions nothing, whatever the stage.
  CHECK(estimate_memory(role(Role::Actor, 1, 3), opt13(), Precision::Fp16, BatchSpec{}).weights == 4 * kOpt13);

  const int64_t shard = kOpt13 / 8;  // 164,469,760
  const auto s1 = estimate_memory(role(Role::Actor, 8, 1), opt13(), Precision::Fp16, BatchSpec{});
  CHECK(s1.weights == 4 * kOpt13);
  CHECK(s1.gradients == 4 * kOpt13);  // whole at the end of the backward
  // Whole tensors to owners: the largest rank's share is a little above 1/8.
  CHECK(s1.optimizer >= 8 * shard);
  CHECK(s1.optimizer <= 8 * shard * 103 / 100);
  // ZeRO-2: equal chunks of each group's flat (padding < 1 element a group), and for the
  // gradients also one 5e8-element bucket and the largest whole gradient (the embedding).
  auto stage2 = role(Role::Actor, 8, 2);
  const auto s2 = estimate_memory(stage2, opt13(), Precision::Fp16, BatchSpec{});
  CHECK(s2.weights == 4 * kOpt13);
  CHECK(s2.optimizer >= 8 * shard);
  CHECK(s2.optimizer <= 8 * (shard + 3));
  const int64_t embedding = 50272LL * 2048;
  CHECK(s2.gradients == s2.optimizer / 2 + 4 * (500'000'000 + embedding));
  stage2.reduce_bucket_size = 20'000'000;  // smaller buckets, less held whole
  CHECK(estimate_memory(stage2, opt13(), Precision::Fp16, BatchSpec{}).gradients ==
        s2.optimizer / 2 + 4 * (20'000'000 + embedding));
  const auto s3 = estimate_memory(role(Role::Actor, 8, 3), opt13(), Precision::Fp16, BatchSpec{});
  CHECK(s3.weights == 4 * (24 * kLayer / 8 + kKept));  // the layers' 1/8, the rest whole
  CHECK(s3.gradients == 4 * (24 * kLayer / 8 + kKept));
  CHECK(s3.optimizer == 8 * shard);
  CHECK(s3.zero3_gather == 2 * 4 * kLayer);  // one layer whole at a time, and the next one on its way
  auto no_prefetch = role(Role::Actor, 8, 3);
  no_prefetch.zero3_prefetch_layers = 0;
  CHECK(estimate_memory(no_prefetch, opt13(), Precision::Fp16, BatchSpec{}).zero3_gather == 4 * kLayer);
  CHECK(s3.inference_weights == 4 * 24 * kLayer);
  CHECK(estimate_memory(role(Role::Actor, 8, 2), opt13(), Precision::Fp16, BatchSpec{}).inference_weights == 0);

  // Uneven partitions pad each flat up: OPT-125m's layers over 7 ranks.
  const auto opt125 = *find_preset("opt-125m");
  const int64_t decay = 4LL * 768 * 768 + 2LL * 768 * 3072, no_decay = 4 * 768 + 3072 + 768 + 4 * 768;
  const int64_t kept = parameter_count(opt125, Head::Value) - 12 * (decay + no_decay);
  const auto uneven = estimate_memory(role(Role::Critic, 7, 3), opt125, Precision::Fp16, BatchSpec{});
  CHECK(uneven.weights == 4 * (12 * ((decay + 6) / 7 + (no_decay + 6) / 7) + kept));

  // TP 2 x DP 4 under ZeRO-3: each TP half partitioned over 4.
  auto tp = role(Role::Actor, 8, 3);
  tp.tp = 2;
  tp.dp = 4;
  const auto t = estimate_memory(tp, opt13(), Precision::Fp16, BatchSpec{});
  CHECK(t.weights == 4 * (24 * kLayer / 4 + kKept) / 2);
  CHECK(t.inference_weights == 4 * 24 * kLayer / 2);
}

TEST_CASE("CPU offload moves optimizer state (and the gradient partition) to the host", "[placement][memory]") {
  auto spec = role(Role::Actor, 8, 2);
  const auto kept = estimate_memory(spec, opt13(), Precision::Fp16, BatchSpec{});
  spec.offload_optimizer = true;
  const auto m = estimate_memory(spec, opt13(), Precision::Fp16, BatchSpec{});
  CHECK(m.optimizer == 0);
  CHECK(m.host == kept.optimizer + 4 * (kOpt13 / 8));
  CHECK(m.weights == 4 * kOpt13);
  spec.zero_stage = 3;
  spec.offload_params = true;
  const auto p = estimate_memory(spec, opt13(), Precision::Fp16, BatchSpec{});
  CHECK(p.weights == 0);
  CHECK(p.host == 4 * (24 * kLayer / 8 + kKept) + 8 * (kOpt13 / 8) + 4 * (kOpt13 / 8));
}

TEST_CASE("LoRA: frozen base weights, adapter-only gradients and optimizer", "[placement][memory]") {
  auto spec = role(Role::Actor, 1, 0);
  spec.lora_dim = 128;
  const int64_t lora = 113'246'208;
  const auto m = estimate_memory(spec, opt13(), Precision::Fp16, BatchSpec{});
  CHECK(m.parameters == kOpt13 + lora);
  CHECK(m.trainable == lora);
  // The frozen base's linear weights in 16 bits, the rest and the adapters in fp32.
  CHECK(m.weights == 2 * 24 * kLayerLinearWeights + 4 * (kOpt13 - 24 * kLayerLinearWeights + lora));
  CHECK(estimate_memory(spec, opt13(), Precision::Fp32, BatchSpec{}).weights == 4 * (kOpt13 + lora));
  CHECK(m.gradients == 4 * lora);
  CHECK(m.optimizer == 8 * lora);
  spec.only_optimize_lora = false;
  const auto all = estimate_memory(spec, opt13(), Precision::Fp16, BatchSpec{});
  CHECK(all.trainable == kOpt13 + lora);
  CHECK(all.weights == 4 * (kOpt13 + lora));
  CHECK(all.optimizer == 8 * (kOpt13 + lora));
}

TEST_CASE("the inference layout packs every linear layer in the inference dtype, biases in fp32", "[placement][memory]") {
  // OPT-1.3B: the layers' linear weights and the tied LM head (50272 x 2048), every size a
  // multiple of 16; each layer's linear biases are q, k, v, out (4 h), fc1 (I) and fc2 (h).
  const int64_t biases = 24LL * (4 * 2048 + 8192 + 2048);
  const int64_t weights = 24 * kLayerLinearWeights + 50272LL * 2048;
  CHECK(inference_layout_bytes(opt13(), 1, Precision::Fp32) == 4 * weights + 4 * biases);
  CHECK(inference_layout_bytes(opt13(), 1, Precision::Bf16) == 2 * weights + 4 * biases);
  const auto actor = estimate_memory(role(Role::Actor), opt13(), Precision::Bf16, BatchSpec{}, Precision::Bf16);
  CHECK(actor.inference_layout == 2 * weights + 4 * biases);
  CHECK(actor.generation() == actor.inference_layout + actor.kv_cache + actor.generation_activations);
  // A tensor-parallel generation group packs 1/tp of the layers; the LM head stays whole.
  auto grouped = role(Role::Actor, 4, 3);
  grouped.inference_tp_size = 4;
  CHECK(estimate_memory(grouped, opt13(), Precision::Bf16, BatchSpec{}, Precision::Bf16).inference_layout ==
        2 * (24 * kLayerLinearWeights / 4 + 50272LL * 2048) + 4 * 24LL * (3 * 2048 / 4 + 2048 + 8192 / 4 + 2048));
}

TEST_CASE("generation from the training weights packs nothing; its KV cache is fp32 as the masters", "[placement][memory]") {
  const auto packed = estimate_memory(role(Role::Actor), opt13(), Precision::Fp32, BatchSpec{}, Precision::Fp32);
  const auto unpacked = estimate_memory(role(Role::Actor), opt13(), Precision::Fp32, BatchSpec{}, Precision::Fp32, false);
  CHECK(packed.inference_layout > 4 * kOpt13 * 9 / 10);
  CHECK(unpacked.inference_layout == 0);
  CHECK(unpacked.kv_cache == packed.kv_cache);
  CHECK(unpacked.weights == packed.weights);
  CHECK(unpacked.generation() == packed.generation() - packed.inference_layout);
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
  // In the inference dtype: fp32 unless bf16 is asked for.
  CHECK(estimate_memory(role(Role::Actor), opt13(), Precision::Fp16, BatchSpec{}).kv_cache == 3 * kGiB);
  CHECK(estimate_memory(role(Role::Actor), opt13(), Precision::Fp16, BatchSpec{}, Precision::Bf16).kv_cache == 3 * kGiB / 2);
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
  CHECK(g.kv_cache == kv_cache_bytes(opt13(), 4 * 16, 512, 4, Precision::Fp32));
  CHECK(g.inference_weights * 4 == a.inference_weights);
  CHECK(g.weights == a.weights);  // the training layout is unchanged
}

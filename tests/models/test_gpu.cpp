// The reference fixtures again, on CUDA. Skipped (with a warning) without a GPU.
#include <catch2/catch.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <future>

#include <troupe/models/generation.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/safetensors.hpp>
#include <troupe/models/tensor_parallel.hpp>

#include "model_fixtures.hpp"
#include "thread_sum_group.hpp"

using namespace troupe;

TEST_CASE("CUDA: logits and greedy generations equal transformers'", "[gpu][models]") {
  if (!torch::cuda::is_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  for (std::string name : {"opt", "opt_postln", "gpt2", "llama"}) {
    DYNAMIC_SECTION(name) {
      models::LoadOptions options;
      options.device = torch::kCUDA;
      auto model = models::load_pretrained(test::fixture_dir(name), options);
      auto expected = models::read_safetensors(test::fixture_dir(name) / "expected.safetensors");
      torch::NoGradGuard no_grad;
      auto mask = expected.at("forward_left.attention_mask");
      auto logits = model->forward(expected.at("forward_left.input_ids").cuda(), mask.cuda()).cpu();
      auto real = (mask != 0).unsqueeze(-1).expand_as(logits);
      CHECK((logits - expected.at("forward_left.logits")).abs().masked_select(real).max().item<double>() < 1e-3);
      models::GenerationOptions gen;
      gen.max_new_tokens = 16;
      auto out = models::generate(*model, expected.at("greedy.input_ids").cuda(),
                                  expected.at("greedy.attention_mask").cuda(), gen);
      CHECK(torch::equal(out.sequences.cpu(), expected.at("greedy.sequences")));
    }
  }
}

TEST_CASE("CUDA: tensor-parallel slices (2 ranks on one device) give transformers' logits and generations",
          "[gpu][models][tensor_parallel]") {
  if (!torch::cuda::is_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  for (std::string name : {"opt", "gpt2", "llama"}) {
    DYNAMIC_SECTION(name) {
      auto expected = models::read_safetensors(test::fixture_dir(name) / "expected.safetensors");
      test::ThreadSumGroup group(2);
      std::vector<std::future<std::pair<torch::Tensor, torch::Tensor>>> ranks;
      for (int r = 0; r < 2; ++r)
        ranks.push_back(std::async(std::launch::async, [&, r] {
          models::LoadOptions options;
          options.device = torch::kCUDA;
          auto model = models::load_pretrained(test::fixture_dir(name), options);
          models::enter_tensor_parallel(*model, group.rank(r));
          torch::NoGradGuard no_grad;
          auto logits = model->forward(expected.at("forward_left.input_ids").cuda(),
                                       expected.at("forward_left.attention_mask").cuda());
          models::GenerationOptions gen;
          gen.max_new_tokens = 16;
          auto out = models::generate(*model, expected.at("greedy.input_ids").cuda(),
                                      expected.at("greedy.attention_mask").cuda(), gen);
          return std::make_pair(logits.cpu(), out.sequences.cpu());
        }));
      const auto mask = expected.at("forward_left.attention_mask");
      for (auto& rank : ranks) {
        auto [logits, sequences] = rank.get();
        auto real = (mask != 0).unsqueeze(-1).expand_as(logits);
        CHECK((logits - expected.at("forward_left.logits")).abs().masked_select(real).max().item<double>() < 1e-3);
        CHECK(torch::equal(sequences, expected.at("greedy.sequences")));
      }
    }
  }
}

// --packing: a micro-batch's samples packed end to end give the losses and gradients of
// the padded batch (steps 1 and 2), on every model family; the packed layout itself.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <troupe/data/collate.hpp>
#include <troupe/data/packed_batch.hpp>
#include <troupe/engine/losses.hpp>
#include <troupe/engine/supervised_tasks.hpp>
#include <troupe/models/causal_lm.hpp>

#include "../models/model_fixtures.hpp"

using namespace troupe;

namespace {

/// Right-padded rows (N, W) of the given lengths, random ids in [3, 50).
std::pair<torch::Tensor, torch::Tensor> padded_rows(const std::vector<int64_t>& lengths, int64_t width, uint64_t seed) {
  torch::manual_seed(seed);
  const auto n = static_cast<int64_t>(lengths.size());
  auto ids = torch::full({n, width}, 1, torch::kLong);
  auto mask = torch::zeros({n, width}, torch::kLong);
  for (int64_t i = 0; i < n; ++i) {
    ids[i].narrow(0, 0, lengths[i]).copy_(torch::randint(3, 50, {lengths[i]}, torch::kLong));
    mask[i].narrow(0, 0, lengths[i]).fill_(1);
  }
  return {ids, mask};
}

/// The model's parameter gradients, flattened, after backward of `loss`.
torch::Tensor gradients_of(models::CausalLMImpl& model, const torch::Tensor& loss) {
  model.zero_grad();
  loss.backward();
  std::vector<torch::Tensor> grads;
  for (auto& p : model.parameters())
    if (p.grad().defined()) grads.push_back(p.grad().flatten().clone());
  return torch::cat(grads);
}

double relative_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item<double>();
}

}  // namespace

TEST_CASE("packing lays samples out first-fit decreasing with k / -k masks and unpacks back", "[engine][packing]") {
  auto [ids, mask] = padded_rows({3, 5, 2, 4}, 6, 1);
  // Spans: the second sample keeps one column of its padding (-k), the others none.
  const std::vector<int64_t> spans{3, 6, 2, 4};
  auto rows = data::pack_rows(ids, mask, spans, 8, 1);
  // Sorted by span: 6 (row 0), 4 (row 1), 3 (row 1 is full at 4 + 3 = 7), 2 (row 0: 6 + 2 = 8).
  REQUIRE(rows.input_ids.sizes() == torch::IntArrayRef({2, 8}));
  const auto expected_mask = torch::tensor({{1, 1, 1, 1, 1, -1, 2, 2}, {1, 1, 1, 1, 2, 2, 2, 0}}, torch::kLong);
  CHECK(torch::equal(rows.attention_mask, expected_mask));
  CHECK(torch::equal(rows.input_ids[0].narrow(0, 0, 5), ids[1].narrow(0, 0, 5)));
  CHECK(torch::equal(rows.input_ids[1].narrow(0, 4, 3), ids[0].narrow(0, 0, 3)));
  CHECK(rows.sample_starts == std::vector<int64_t>{8 + 4, 0, 6, 8});

  // unpack() puts every packed column back under its sample, zero past the span.
  auto unpacked = data::unpack(rows.input_ids.to(torch::kFloat32), rows);  // (4, 6)
  for (int64_t i = 0; i < 4; ++i) {
    CHECK(torch::equal(unpacked[i].narrow(0, 0, spans[i]), ids[i].narrow(0, 0, spans[i]).to(torch::kFloat32)));
    CHECK(unpacked[i].narrow(0, spans[i], 6 - spans[i]).abs().sum().item<double>() == 0);
  }

  // Step 1's labels never ask a sample to predict the next sample's first token.
  data::LmBatch batch{ids, mask, torch::where(mask > 0, ids, torch::full({}, data::kIgnoreIndex, torch::kLong))};
  auto packed = data::pack_step1_batch(batch, 8, 1);
  for (const int64_t start : packed.rows.sample_starts) CHECK(packed.labels.view({-1})[start].item<int64_t>() == -100);
  CHECK(packed.tokens == 14);
  CHECK_THROWS_WITH(data::pack_rows(ids, mask, {3, 7, 2, 4}, 8, 1), Catch::Contains("span 7 of row 1"));
}

TEST_CASE("model positions restart per packed sample and attention stays within it", "[engine][packing]") {
  for (const std::string family : {"opt", "gpt2", "llama"}) {
    DYNAMIC_SECTION(family) {
      torch::manual_seed(3);
      auto model = models::make_causal_lm(test::tiny_config(family));
      model->eval();
      torch::NoGradGuard no_grad;
      auto [ids, mask] = padded_rows({5, 3, 4}, 5, 4);
      auto alone = model->forward(ids, mask);  // (3, 5, V)
      data::LmBatch batch{ids, mask, ids};
      auto packed = data::pack_step1_batch(batch, 12, 1);
      auto together = data::unpack(model->forward(packed.rows.input_ids, packed.rows.attention_mask), packed.rows);
      for (int64_t i = 0; i < 3; ++i) {
        const int64_t n = mask[i].sum().item<int64_t>();
        CHECK(relative_difference(together[i].narrow(0, 0, n), alone[i].narrow(0, 0, n)) < 1e-5);
      }
    }
  }
}

TEST_CASE("step 1 packed: loss and gradients equal the padded batch's within 1e-5", "[engine][packing]") {
  for (const std::string family : {"opt", "gpt2", "llama"}) {
    DYNAMIC_SECTION(family) {
      torch::manual_seed(5);
      auto model = models::make_causal_lm(test::tiny_config(family));
      model->eval();  // dropout off: both passes see the same network; gradients still flow
      const int64_t max_seq_len = 16;
      auto [ids, mask] = padded_rows({16, 3, 9, 1, 7, 12}, max_seq_len, 6);
      data::LmBatch batch{ids, mask, torch::where(mask > 0, ids, torch::full({}, data::kIgnoreIndex, torch::kLong))};

      auto padded_loss = engine::language_model_loss(model->forward(ids, mask), batch.labels);
      const auto padded_grads = gradients_of(*model, padded_loss);
      auto packed = data::pack_step1_batch(batch, max_seq_len, 1);
      CHECK(packed.rows.input_ids.size(0) < ids.size(0));  // fewer rows than samples
      auto packed_loss = engine::language_model_loss(
          model->forward(packed.rows.input_ids, packed.rows.attention_mask), packed.labels);
      const auto packed_grads = gradients_of(*model, packed_loss);

      CHECK(std::abs(packed_loss.item<double>() - padded_loss.item<double>()) < 1e-5 * std::abs(padded_loss.item<double>()));
      CHECK(relative_difference(packed_grads, padded_grads) < 1e-5);
    }
  }
}

TEST_CASE("step 2 packed: the reward-model loss, scores and gradients equal the padded batch's", "[engine][packing]") {
  for (const std::string family : {"opt", "gpt2", "llama"}) {
    DYNAMIC_SECTION(family) {
      torch::manual_seed(7);
      auto model = models::make_causal_lm(test::tiny_config(family));
      model->add_value_head();
      model->eval();
      const int64_t max_seq_len = 12;
      // Pairs of other lengths sharing a prefix (the loss starts where they differ and
      // reads the shorter one's padding up to the longer one's end); one pair identical.
      auto [ids, mask] = padded_rows({7, 12, 4, 5, 9, 3, 4, 5}, max_seq_len, 8);
      ids[4].narrow(0, 0, 3).copy_(ids[0].narrow(0, 0, 3));
      ids[5].narrow(0, 0, 3).copy_(ids[1].narrow(0, 0, 3));
      ids[7].copy_(ids[3]);
      mask[7].copy_(mask[3]);
      data::PairBatch batch{ids, mask, 4};

      auto padded = engine::reward_model_loss(engine::token_values(*model, ids, mask), ids, mask);
      const auto padded_grads = gradients_of(*model, padded.loss);
      auto rows = data::pack_step2_batch(batch, max_seq_len, 1);
      CHECK(rows.input_ids.size(0) < ids.size(0));
      auto values = data::unpack(engine::token_values(*model, rows.input_ids, rows.attention_mask), rows);  // (8, 12)
      auto packed = engine::reward_model_loss(values, ids, mask);
      const auto packed_grads = gradients_of(*model, packed.loss);

      CHECK(std::abs(packed.loss.item<double>() - padded.loss.item<double>()) < 1e-5);
      CHECK(relative_difference(packed.chosen_scores, padded.chosen_scores) < 1e-5);
      CHECK(relative_difference(packed.rejected_scores, padded.rejected_scores) < 1e-5);
      CHECK(relative_difference(packed_grads, padded_grads) < 1e-5);
    }
  }
}

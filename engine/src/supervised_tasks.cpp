#include <troupe/engine/supervised_tasks.hpp>

#include <algorithm>
#include <cmath>
#include <utility>

#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/data/collate.hpp>
#include <troupe/data/packed_batch.hpp>
#include <troupe/data/sampler.hpp>
#include <troupe/engine/hybrid_scoring.hpp>
#include <troupe/engine/losses.hpp>
#include <troupe/engine/progress.hpp>

#include "epoch_batches.hpp"
#include "eval_share.hpp"

namespace troupe::engine {

namespace {

torch::Device device_of(models::CausalLMImpl& model) { return model.parameters().front().device(); }

PhaseTask make_task(const data::PhaseData& data, const SupervisedTaskOptions& options, const char* step) {
  if (options.train_batch_size < 1 || options.eval_batch_size < 1)
    throw Error(std::string(step) + ": --per_device_train_batch_size and --per_device_eval_batch_size must be at least 1");
  PhaseTask task;
  task.batches_per_epoch = batches_per_epoch(data.train.size(), options);
  return task;
}

/// Share of the computed positions that are padding: what --packing saves.
double padding_share(const torch::Tensor& attention_mask, int64_t tokens) {
  return 1.0 - static_cast<double>(tokens) / static_cast<double>(std::max<int64_t>(attention_mask.numel(), 1));
}

/// Step 1's loss over one batch: the padded rows, or with --packing the same samples packed.
BatchLoss sft_batch_loss(models::CausalLMImpl& model, const data::LmBatch& b, const SupervisedTaskOptions& options) {
  const auto device = device_of(model);
  const int64_t tokens = (b.attention_mask > 0).sum().item<int64_t>();
  if (!options.packing) {
    auto logits = model.forward(b.input_ids.to(device), b.attention_mask.to(device));  // (B, T, V)
    return {language_model_loss(logits, b.labels.to(device)), tokens,
            {{"padding_share", padding_share(b.attention_mask, tokens)}}};
  }
  auto packed = data::pack_step1_batch(b, options.max_seq_len, options.pad_token_id);
  auto logits = model.forward(packed.rows.input_ids.to(device), packed.rows.attention_mask.to(device));  // (R, L, V)
  return {language_model_loss(logits, packed.labels.to(device)), tokens,
          {{"padding_share", padding_share(packed.rows.attention_mask, tokens)}}};
}

/// Step 2's per-token values (2B, T) of a pair batch, computed on packed rows with --packing,
/// and the share of padding computed.
std::pair<torch::Tensor, double> pair_values(models::CausalLMImpl& model, const data::PairBatch& b,
                                             const SupervisedTaskOptions& options) {
  const auto device = device_of(model);
  const int64_t tokens = (b.attention_mask > 0).sum().item<int64_t>();
  if (!options.packing)
    return {token_values(model, b.input_ids.to(device), b.attention_mask.to(device)), padding_share(b.attention_mask, tokens)};
  auto packed = data::pack_step2_batch(b, options.max_seq_len, options.pad_token_id);
  auto values = token_values(model, packed.input_ids.to(device), packed.attention_mask.to(device));  // (R, L)
  return {data::unpack(values, packed), padding_share(packed.attention_mask, tokens)};                // (2B, T)
}

}  // namespace

torch::Tensor token_values(models::CausalLMImpl& model, const torch::Tensor& input_ids,
                           const torch::Tensor& attention_mask) {
  if (!model.has_value_head()) throw Error("the reward model has no value head (v_head)");
  models::DecoderInputs inputs;
  inputs.input_ids = input_ids;
  inputs.attention_mask = attention_mask;
  return model.values(model.hidden_states(inputs));
}

PhaseTask make_sft_task(const data::PhaseData& data, const SupervisedTaskOptions& options) {
  PhaseTask task = make_task(data, options, "step 1");
  auto train = data.train;
  auto batches = std::make_shared<EpochBatches>(train.size(), options);
  task.loss = [train, batches, options](models::CausalLMImpl& model, int64_t epoch, int64_t batch) {
    auto b = data::make_step1_batch(train, batches->get(epoch, batch), options.max_seq_len, options.pad_token_id);
    return sft_batch_loss(model, b, options);
  };
  auto eval = data.eval;
  task.evaluate = [eval, options](models::CausalLMImpl& model) {
    // The mean over every label token of the eval samples: sums that add over the ranks.
    std::vector<double> sums{0, 0};  // loss summed over label tokens, label tokens
    const auto share = eval_share(eval.size(), options);
    ProgressReporter progress("step1 eval", share.passes);  // a large model takes minutes
    for (int64_t pass = 0; pass < share.passes; ++pass) {
      if (pass >= static_cast<int64_t>(share.batches.size())) {
        join_partitioned_pass(model);  // this rank's share is done; the others' is not
        continue;
      }
      auto b = data::make_step1_batch(eval, share.batches[static_cast<size_t>(pass)], options.max_seq_len,
                                      options.pad_token_id);
      const int64_t labels = (b.labels.narrow(1, 1, b.labels.size(1) - 1) != -100).sum().item<int64_t>();
      const double loss = sft_batch_loss(model, b, options).loss.item<double>();
      if (labels > 0) sums[0] += loss * static_cast<double>(labels);
      sums[1] += static_cast<double>(labels);
      progress.update(pass + 1, sums[1] > 0 ? sums[0] / sums[1] : 0.0, b.attention_mask.sum().item<int64_t>());
    }
    add_over_ranks(sums, options, device_of(model));
    if (sums[1] == 0) return MetricValues{};
    const double loss = sums[0] / sums[1];
    return MetricValues{{"loss", loss}, {"perplexity", std::exp(loss)}};
  };
  return task;
}

PhaseTask make_reward_model_task(const data::PhaseData& data, const SupervisedTaskOptions& options) {
  PhaseTask task = make_task(data, options, "step 2");
  auto train = data.train;
  auto batches = std::make_shared<EpochBatches>(train.size(), options);
  task.loss = [train, batches, options](models::CausalLMImpl& model, int64_t epoch, int64_t batch) {
    auto b = data::make_step2_batch(train, batches->get(epoch, batch), options.max_seq_len, options.pad_token_id);
    const auto [values, padding] = pair_values(model, b, options);
    auto out = reward_model_loss(values, b.input_ids, b.attention_mask);
    return BatchLoss{out.loss, b.attention_mask.sum().item<int64_t>(), {{"padding_share", padding}}};
  };
  auto eval = data.eval;
  task.evaluate = [eval, options](models::CausalLMImpl& model) {
    // Sums over the eval pairs, which add over the ranks.
    std::vector<double> sums{0, 0, 0, 0, 0};  // correct, chosen, rejected, loss, pairs
    const auto share = eval_share(eval.size(), options);
    ProgressReporter progress("step2 eval", share.passes);
    progress.set_value_name("accuracy");
    for (int64_t pass = 0; pass < share.passes; ++pass) {
      if (pass >= static_cast<int64_t>(share.batches.size())) {
        join_partitioned_pass(model);  // this rank's share is done; the others' is not
        continue;
      }
      auto b = data::make_step2_batch(eval, share.batches[static_cast<size_t>(pass)], options.max_seq_len,
                                      options.pad_token_id);
      auto out = reward_model_loss(pair_values(model, b, options).first, b.input_ids, b.attention_mask);
      sums[0] += (out.chosen_scores > out.rejected_scores).sum().item<double>();
      sums[1] += out.chosen_scores.sum().item<double>();
      sums[2] += out.rejected_scores.sum().item<double>();
      sums[3] += out.loss.item<double>() * static_cast<double>(b.pairs);  // the loss is the batch's mean over pairs
      sums[4] += static_cast<double>(b.pairs);
      progress.update(pass + 1, sums[0] / sums[4], b.attention_mask.sum().item<int64_t>());
    }
    add_over_ranks(sums, options, device_of(model));
    if (sums[4] == 0) return MetricValues{};
    const double n = sums[4];
    return MetricValues{{"accuracy", sums[0] / n},
                        {"chosen_score", sums[1] / n},
                        {"rejected_score", sums[2] / n},
                        {"loss", sums[3] / n}};
  };
  return task;
}

int64_t training_batches_per_epoch(int64_t samples, const SupervisedTaskOptions& options) {
  return batches_per_epoch(samples, options);
}

}  // namespace troupe::engine

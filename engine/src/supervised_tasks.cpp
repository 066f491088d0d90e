#include <troupe/engine/supervised_tasks.hpp>

#include <algorithm>
#include <cmath>
#include <utility>

#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/data/collate.hpp>
#include <troupe/data/packed_batch.hpp>
#include <troupe/data/sampler.hpp>
#include <troupe/engine/losses.hpp>
#include <troupe/engine/progress.hpp>

#include "epoch_batches.hpp"

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
    double total = 0;
    int64_t count = 0;
    const auto batches = eval_batches(eval, options);
    ProgressReporter progress("step1 eval", static_cast<int64_t>(batches.size()));  // a large model takes minutes
    for (const auto& indices : batches) {
      auto b = data::make_step1_batch(eval, indices, options.max_seq_len, options.pad_token_id);
      total += sft_batch_loss(model, b, options).loss.item<double>();
      ++count;
      progress.update(count, total / static_cast<double>(count), b.attention_mask.sum().item<int64_t>());
    }
    if (count == 0) return MetricValues{};
    const double loss = total / static_cast<double>(count);
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
    double correct = 0, chosen = 0, rejected = 0, loss = 0;
    int64_t pairs = 0, batches = 0;
    const auto index_batches = eval_batches(eval, options);
    ProgressReporter progress("step2 eval", static_cast<int64_t>(index_batches.size()));
    progress.set_value_name("accuracy");
    for (const auto& indices : index_batches) {
      auto b = data::make_step2_batch(eval, indices, options.max_seq_len, options.pad_token_id);
      auto out = reward_model_loss(pair_values(model, b, options).first, b.input_ids, b.attention_mask);
      correct += (out.chosen_scores > out.rejected_scores).sum().item<double>();
      chosen += out.chosen_scores.sum().item<double>();
      rejected += out.rejected_scores.sum().item<double>();
      loss += out.loss.item<double>();
      pairs += b.pairs;
      ++batches;
      progress.update(batches, correct / static_cast<double>(pairs), b.attention_mask.sum().item<int64_t>());
    }
    if (pairs == 0) return MetricValues{};
    const double n = static_cast<double>(pairs);
    return MetricValues{{"accuracy", correct / n},
                        {"chosen_score", chosen / n},
                        {"rejected_score", rejected / n},
                        {"loss", loss / static_cast<double>(batches)}};
  };
  return task;
}

}  // namespace troupe::engine

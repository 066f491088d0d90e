#include <troupe/engine/dpo.hpp>

#include <cmath>
#include <string>
#include <vector>

#include <torch/nn/functional/activation.h>
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/data/collate.hpp>
#include <troupe/engine/progress.hpp>

#include "epoch_batches.hpp"
#include "eval_share.hpp"

namespace troupe::engine {

void check_dpo_options(const DpoOptions& options) {
  if (!(options.beta > 0) || !std::isfinite(options.beta))
    throw Error("--beta " + std::to_string(options.beta) + ": must be > 0 (DPO's KL strength; 0.1 is usual)");
  if (!(options.label_smoothing >= 0 && options.label_smoothing < 0.5))
    throw Error("--label_smoothing " + std::to_string(options.label_smoothing) +
                ": must be in [0, 0.5) (the chance a preference label is wrong; 0.5 would make every pair a coin toss)");
}

torch::Tensor dpo_label_mask(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  TORCH_CHECK(input_ids.dim() == 2 && input_ids.sizes() == attention_mask.sizes() && input_ids.size(0) % 2 == 0,
              "dpo_label_mask: input_ids and attention_mask must be (2B, T) alike, got ", input_ids.sizes(), " and ",
              attention_mask.sizes());
  const int64_t pairs = input_ids.size(0) / 2, length = input_ids.size(1);
  auto differ = input_ids.narrow(0, 0, pairs) != input_ids.narrow(0, pairs, pairs);  // (B, T)
  // argmax gives the first maximum: the first differing column, or 0 when none differs.
  auto divergence = differ.to(torch::kLong).argmax(1, /*keepdim=*/true);            // (B, 1)
  auto columns = torch::arange(length, input_ids.options().dtype(torch::kLong)).unsqueeze(0);  // (1, T)
  auto after_prompt = (columns >= divergence).to(attention_mask.dtype());           // (B, T)
  return attention_mask * torch::cat({after_prompt, after_prompt}, 0);              // (2B, T)
}

torch::Tensor dpo_sequence_log_probs(const torch::Tensor& token_logprobs, const torch::Tensor& label_mask) {
  TORCH_CHECK(token_logprobs.dim() == 2 && label_mask.dim() == 2 && token_logprobs.size(0) == label_mask.size(0) &&
                  token_logprobs.size(1) + 1 == label_mask.size(1),
              "dpo_sequence_log_probs: token log-probs (N, T - 1) and label_mask (N, T) expected, got ",
              token_logprobs.sizes(), " and ", label_mask.sizes());
  // Column t scores token t + 1, so it counts when token t + 1 is a label.
  auto counted = label_mask.narrow(1, 1, label_mask.size(1) - 1).to(token_logprobs.dtype());  // (N, T - 1)
  return (token_logprobs * counted).sum(1);                                                   // (N)
}

torch::Tensor dpo_sequence_log_probs(const torch::Tensor& logits, const torch::Tensor& input_ids,
                                     const torch::Tensor& label_mask) {
  return dpo_sequence_log_probs(logprobs_from_logits(logits, input_ids), label_mask);  // (N)
}

DpoLoss dpo_loss(const torch::Tensor& policy_log_probs, const torch::Tensor& reference_log_probs,
                 const DpoOptions& options) {
  TORCH_CHECK(policy_log_probs.dim() == 1 && policy_log_probs.sizes() == reference_log_probs.sizes() &&
                  policy_log_probs.size(0) % 2 == 0,
              "dpo_loss: policy and reference log-probs must be (2B) alike, got ", policy_log_probs.sizes(), " and ",
              reference_log_probs.sizes());
  const int64_t pairs = policy_log_probs.size(0) / 2;
  auto reference = reference_log_probs.detach().to(policy_log_probs.dtype());
  auto chosen_ratio = policy_log_probs.narrow(0, 0, pairs) - reference.narrow(0, 0, pairs);            // (B)
  auto rejected_ratio = policy_log_probs.narrow(0, pairs, pairs) - reference.narrow(0, pairs, pairs);  // (B)
  auto logits = options.beta * (chosen_ratio - rejected_ratio);                                        // (B)
  namespace F = torch::nn::functional;
  // Label smoothing: the preference is taken as right with probability 1 - ls (cDPO).
  auto loss = (-F::logsigmoid(logits) * (1 - options.label_smoothing) - F::logsigmoid(-logits) * options.label_smoothing)
                  .mean();
  return {loss, (options.beta * chosen_ratio).detach(), (options.beta * rejected_ratio).detach()};
}

MetricValues dpo_reward_sums(const DpoLoss& out) {
  return {{"rewards/chosen", out.chosen_rewards.sum().item<double>()},
          {"rewards/rejected", out.rejected_rewards.sum().item<double>()},
          {"rewards/accuracies", (out.chosen_rewards > out.rejected_rewards).sum().item<double>()},
          {"rewards/margins", (out.chosen_rewards - out.rejected_rewards).sum().item<double>()}};
}

namespace {

/// The DPO loss of one step-2 batch, the policy with autograd as the caller's grad mode is.
DpoLoss batch_dpo_loss(models::CausalLMImpl& model, ReferencePolicy& reference, const data::PairBatch& b,
                       const DpoOptions& options) {
  const auto device = model.parameters().front().device();
  auto ids = b.input_ids.to(device), mask = b.attention_mask.to(device);  // (2B, T)
  auto label_mask = dpo_label_mask(ids, mask);                           // (2B, T)
  // The reference first: a reference that is the model's own base switches its adapters
  // off and back for its forward, which must not happen inside the policy's.
  auto reference_log_probs = dpo_sequence_log_probs(reference.logprobs(ids, mask), label_mask);  // (2B)
  auto policy_log_probs = dpo_sequence_log_probs(sequence_logprobs(model, ids, mask), label_mask);  // (2B)
  return dpo_loss(policy_log_probs, reference_log_probs, options);
}

}  // namespace

PhaseTask make_dpo_task(const data::PhaseData& data, const SupervisedTaskOptions& options, const DpoOptions& dpo,
                        std::shared_ptr<ReferencePolicy> reference) {
  check_dpo_options(dpo);
  if (!reference) throw Error("DPO: no reference model given");
  if (options.train_batch_size < 1 || options.eval_batch_size < 1)
    throw Error("DPO: --per_device_train_batch_size and --per_device_eval_batch_size must be at least 1");
  PhaseTask task;
  task.batches_per_epoch = batches_per_epoch(data.train.size(), options);
  auto train = data.train;
  auto batches = std::make_shared<EpochBatches>(train.size(), options);
  task.loss = [train, batches, options, dpo, reference](models::CausalLMImpl& model, int64_t epoch, int64_t batch) {
    auto b = data::make_step2_batch(train, batches->get(epoch, batch), options.max_seq_len, options.pad_token_id);
    auto out = batch_dpo_loss(model, *reference, b, dpo);
    BatchLoss result{out.loss, b.attention_mask.sum().item<int64_t>(), dpo_reward_sums(out)};
    for (auto& [name, sum] : result.metrics) sum /= static_cast<double>(b.pairs);
    return result;
  };
  auto eval = data.eval;
  task.evaluate = [eval, options, dpo, reference](models::CausalLMImpl& model) {
    // Sums over the eval pairs, which add over the ranks.
    const std::vector<std::string> names{"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"};
    std::vector<double> sums(names.size() + 2, 0.0);  // the names' sums, loss, pairs
    double& loss = sums[names.size()];
    double& pairs = sums[names.size() + 1];
    const auto share = eval_share(eval.size(), options);
    ProgressReporter progress("dpo eval", share.passes);
    progress.set_value_name("accuracy");
    for (int64_t pass = 0; pass < share.passes; ++pass) {
      if (pass >= static_cast<int64_t>(share.batches.size())) {
        // This rank's share is done; the others' is not: the same passes as a batch's.
        join_partitioned_pass(*reference->model());
        join_partitioned_pass(model);
        continue;
      }
      auto b = data::make_step2_batch(eval, share.batches[static_cast<size_t>(pass)], options.max_seq_len,
                                      options.pad_token_id);
      auto out = batch_dpo_loss(model, *reference, b, dpo);
      const auto batch_sums = dpo_reward_sums(out);
      for (size_t i = 0; i < names.size(); ++i) sums[i] += batch_sums.at(names[i]);
      loss += out.loss.item<double>() * static_cast<double>(b.pairs);  // the loss is the batch's mean over pairs
      pairs += static_cast<double>(b.pairs);
      progress.update(pass + 1, sums[2] / pairs, b.attention_mask.sum().item<int64_t>());
    }
    add_over_ranks(sums, options, model.parameters().front().device());
    if (pairs == 0) return MetricValues{};
    MetricValues values{{"loss", loss / pairs}};
    for (size_t i = 0; i < names.size(); ++i) values[names[i]] = sums[i] / pairs;
    return values;
  };
  return task;
}

}  // namespace troupe::engine

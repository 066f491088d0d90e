#include <troupe/engine/losses.hpp>

#include <torch/nn/functional/loss.h>
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/kernels/logprob_gather.hpp>

namespace troupe::engine {

torch::Tensor language_model_loss(const torch::Tensor& logits, const torch::Tensor& labels) {
  TORCH_CHECK(logits.dim() == 3 && labels.dim() == 2 && logits.size(0) == labels.size(0) &&
                  logits.size(1) == labels.size(1),
              "language_model_loss: logits (B, T, V) and labels (B, T) expected, got ", logits.sizes(), " and ",
              labels.sizes());
  // Cross entropy as -mean of the target log-probs: the fused gather reads the logits in
  // their own dtype and keeps no (B, T - 1, V) fp32 copy or log-softmax for the backward.
  // Position t predicts label t + 1; the last position predicts nothing (-100). Gathering
  // over all T positions, rather than over the logits' first T - 1, lets the backward
  // write the logits' (B, T, V) gradient directly instead of a (B, T - 1, V) one that
  // a slice's backward copies into a zero-filled (B, T, V).
  auto next_labels = torch::cat({labels.slice(1, 1).to(torch::kLong),
                                 torch::full({labels.size(0), 1}, -100, labels.options().dtype(torch::kLong))},
                                1);                                                   // (B, T)
  auto logprobs = kernels::gather_logprobs(logits, next_labels, -100);  // (B, T), 0 where ignored
  // No counted label gives 0 / 0 = NaN, as cross_entropy's mean does.
  return -logprobs.sum() / (next_labels != -100).sum().to(torch::kFloat32);
}

namespace {

/// First padding position of a right-padded row, or its length.
int64_t row_end(const torch::Tensor& mask_row) {
  auto pads = (mask_row == 0).nonzero();
  return pads.size(0) > 0 ? pads[0][0].item<int64_t>() : mask_row.size(0);
}

}  // namespace

RewardModelLoss reward_model_loss(const torch::Tensor& values, const torch::Tensor& input_ids,
                                  const torch::Tensor& attention_mask) {
  if (values.dim() != 2 || values.sizes() != input_ids.sizes() || values.sizes() != attention_mask.sizes() ||
      values.size(0) % 2 != 0)
    throw Error("reward_model_loss: values, input_ids and attention_mask must be (2B, T) alike, got values " +
                std::to_string(values.size(0)) + " rows");
  const int64_t pairs = values.size(0) / 2;
  const int64_t length = values.size(1);
  auto ids = input_ids.cpu();
  auto mask = attention_mask.cpu();
  auto values32 = values.to(torch::kFloat32);
  std::vector<torch::Tensor> losses, chosen_scores, rejected_scores;
  for (int64_t i = 0; i < pairs; ++i) {
    const int64_t c_end = row_end(mask[i]);
    const int64_t r_end = row_end(mask[pairs + i]);
    auto differ = (ids[i] != ids[pairs + i]).nonzero();
    int64_t begin = length - 1, end = length;
    if (differ.size(0) > 0) {
      begin = differ[0][0].item<int64_t>();
      end = std::max(c_end, r_end);
    }
    auto chosen = values32[i].slice(0, begin, end);
    auto rejected = values32[pairs + i].slice(0, begin, end);
    losses.push_back(-torch::nn::functional::logsigmoid(chosen - rejected).mean());
    chosen_scores.push_back(values32[i][std::max<int64_t>(c_end - 1, 0)]);
    rejected_scores.push_back(values32[pairs + i][std::max<int64_t>(r_end - 1, 0)]);
  }
  return {torch::stack(losses).mean(), torch::stack(chosen_scores).detach(), torch::stack(rejected_scores).detach()};
}

}  // namespace troupe::engine

#pragma once
/// A batch of rollouts as named tensors: what generation, scoring and the algorithm
/// produce, and what the policy and critic train on.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include <troupe/rl/minibatch_totals.hpp>

namespace troupe::rl {

/// How a tensor of an Experience lines up with the batch, which decides how it is
/// validated, sliced and padded when experiences are concatenated.
/// B = rows, P = prompt length, T = sequence length, A = T - P answer positions.
enum class Layout {
  Sample,    ///< (B, ...) one entry per row, e.g. reward_score
  Prompt,    ///< (B, P) left-padded prompt ids
  Sequence,  ///< (B, T) prompt + answer
  Token,     ///< (B, T - 1) per predicted token: position t scores sequences[:, t + 1]
  Answer,    ///< (B, A) answer positions only, i.e. Token positions start .. T - 2
};

/// The rollouts of one generation batch (DeepSpeed-Chat's `exp` dict), as named tensors.
///
/// Positions follow DeepSpeed-Chat: Token tensors are shifted by one (logprobs[:, t] is
/// the log-probability of sequences[:, t + 1]), so the first answer token is scored at
/// `start() = P - 1`, and Answer tensors (advantages, returns) hold Token positions
/// start .. T - 2. The EOS that ends an answer is in the masks; tokens after it are
/// padding. Optional tensors are left undefined (GRPO has no values or returns).
struct Experience {
  torch::Tensor prompts;         // (B, P) int64, left padded
  torch::Tensor sequences;       // (B, T) int64, prompt + answer (+ right padding)
  torch::Tensor attention_mask;  // (B, T) 1 = real token (EOS included)
  torch::Tensor action_mask;     // (B, T-1) attention_mask[:, 1:]
  torch::Tensor logprobs;        // (B, T-1) policy log-probs at generation time
  torch::Tensor ref_logprobs;    // (B, T-1) reference model log-probs
  torch::Tensor values;          // (B, T-1) critic values[:, :-1]; optional
  torch::Tensor reward_score;    // (B,) reward model end score or reward function score
  /// (B,) the reward of the greedy answer to the row's prompt; only for algorithms whose
  /// needs_greedy_baseline() (ReMax).
  torch::Tensor baseline_reward;
  torch::Tensor rewards;         // (B, T-1) shaped per-token rewards; set by the algorithm
  torch::Tensor advantages;      // (B, A) set by the algorithm
  torch::Tensor returns;         // (B, A) set by algorithms with a critic
  /// Tensors an algorithm of an app adds, each with its layout.
  std::map<std::string, std::pair<Layout, torch::Tensor>> extras;
  /// Set on a micro-batch cut from a minibatch (token_budget_micro_batches): the
  /// minibatch's counts, which the losses divide by (loss_reduction.hpp). Unset, the
  /// batch is a minibatch of its own. slice(), index_select(), split() and concat() leave
  /// it unset: their rows are another batch.
  std::optional<MinibatchTotals> minibatch_totals;

  /// An experience from generated sequences: action_mask = attention_mask[:, 1:].
  static Experience from_generation(torch::Tensor prompts, torch::Tensor sequences,
                                    torch::Tensor attention_mask);

  int64_t batch_size() const;
  int64_t prompt_length() const;    ///< P
  int64_t sequence_length() const;  ///< T
  int64_t answer_length() const;    ///< A = T - P
  /// Token position of the first answer token's log-prob: P - 1.
  int64_t start() const { return prompt_length() - 1; }
  /// What a loss over this batch divides by: minibatch_totals when set, else this batch's
  /// own counts (one host sync, for the action tokens).
  MinibatchTotals totals() const;

  /// Checks every defined tensor against its layout; throws troupe::Error naming the
  /// tensor, its shape and the expected one.
  void validate() const;

  /// Sets or reads a named extra tensor; `extra` throws troupe::Error for unknown names.
  void set_extra(const std::string& name, Layout layout, torch::Tensor tensor);
  const torch::Tensor& extra(const std::string& name) const;

  /// Rows [begin, end) as views.
  Experience slice(int64_t begin, int64_t end) const;
  /// The rows listed in `rows` (1-D int64), in that order (copies).
  Experience index_select(const torch::Tensor& rows) const;
  /// Consecutive minibatches of `minibatch_size` rows (the last may be smaller).
  std::vector<Experience> split(int64_t minibatch_size) const;
  /// Every tensor moved to `device`.
  Experience to(const torch::Device& device) const;

  /// Calls `fn(name, layout, tensor)` for every tensor, defined or not, in a fixed
  /// order (the named fields, then the extras by name).
  template <typename Fn>
  void for_each(Fn&& fn) const { visit(*this, fn); }
  template <typename Fn>
  void for_each(Fn&& fn) { visit(*this, fn); }

 private:
  template <typename Self, typename Fn>
  static void visit(Self& self, Fn&& fn);
};

/// Concatenates experiences along the batch. Experiences with different prompt or
/// answer lengths are aligned the way generation pads: prompts (and the prompt part of
/// sequences and Token tensors) are left padded to the longest prompt, answers right
/// padded to the longest answer; padding is 0 everywhere (masks 0, so every loss
/// ignores it) and `pad_token_id` in prompts and sequences. All parts must define the
/// same tensors. action_mask is re-derived as attention_mask[:, 1:].
Experience concat(const std::vector<Experience>& parts, int64_t pad_token_id = 0);

template <typename Self, typename Fn>
void Experience::visit(Self& self, Fn&& fn) {
  fn("prompts", Layout::Prompt, self.prompts);
  fn("sequences", Layout::Sequence, self.sequences);
  fn("attention_mask", Layout::Sequence, self.attention_mask);
  fn("action_mask", Layout::Token, self.action_mask);
  fn("logprobs", Layout::Token, self.logprobs);
  fn("ref_logprobs", Layout::Token, self.ref_logprobs);
  fn("values", Layout::Token, self.values);
  fn("reward_score", Layout::Sample, self.reward_score);
  fn("baseline_reward", Layout::Sample, self.baseline_reward);
  fn("rewards", Layout::Token, self.rewards);
  fn("advantages", Layout::Answer, self.advantages);
  fn("returns", Layout::Answer, self.returns);
  for (auto& [name, entry] : self.extras) fn(name, entry.first, entry.second);
}

}  // namespace troupe::rl

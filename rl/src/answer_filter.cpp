#include <troupe/rl/answer_filter.hpp>

#include <torch/torch.h>

namespace troupe::rl {

torch::Tensor long_answer_rows(const torch::Tensor& attention_mask, int64_t prompt_length, int64_t min_tokens) {
  TORCH_CHECK(attention_mask.dim() == 2, "long_answer_rows: attention_mask must be (B, T), got ",
              attention_mask.sizes());
  TORCH_CHECK(prompt_length >= 0 && prompt_length <= attention_mask.size(1), "long_answer_rows: prompt_length ",
              prompt_length, " must be in [0, T] with T = ", attention_mask.size(1));
  const auto answer = attention_mask.narrow(1, prompt_length, attention_mask.size(1) - prompt_length);  // (B, A)
  const auto lengths = answer.ne(0).sum(1);                                                             // (B,)
  return lengths.ge(min_tokens).nonzero().reshape({-1});                                                // (K,)
}

Experience drop_short_answers(const Experience& exp, int64_t min_tokens) {
  exp.validate();
  return exp.index_select(long_answer_rows(exp.attention_mask, exp.prompt_length(), min_tokens));
}

}  // namespace troupe::rl

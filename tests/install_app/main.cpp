// Builds a tiny Llama from a config, generates a few tokens: proves the installed
// headers and libraries are complete.
#include <iostream>

#include <torch/torch.h>

#include <troupe/models/causal_lm.hpp>
#include <troupe/models/config.hpp>
#include <troupe/models/generation.hpp>

int main() {
  auto config = troupe::models::parse_config(
      nlohmann::json{{"model_type", "llama"}, {"vocab_size", 32}, {"hidden_size", 16}, {"num_hidden_layers", 1},
                     {"num_attention_heads", 2}, {"intermediate_size", 32}, {"eos_token_id", 1}},
      "install_app");
  auto model = troupe::models::make_causal_lm(config);
  model->eval();
  troupe::models::GenerationOptions options;
  options.max_new_tokens = 4;
  options.eos_token_ids = {99};
  auto ids = torch::tensor({{3, 4, 5}}, torch::kLong);
  auto out = troupe::models::generate(*model, ids, torch::ones_like(ids), options);
  if (out.sequences.size(1) != 7) return 1;
  std::cout << "install_app ok: " << out.sequences << "\n";
  return 0;
}

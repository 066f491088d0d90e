#pragma once
/// A RoleModel over troupe::models: generation and scoring with a frozen CausalLM (no
/// training: the step-3 roles train through the engine).
#include <memory>
#include <string>

#include <troupe/actors/role_model.hpp>
#include <troupe/models/causal_lm.hpp>
#include <troupe/models/generation.hpp>

namespace troupe::actors {

/// Scores by role: "actor"/"policy" -> "logprobs" (B, T-1); "reference" ->
/// "ref_logprobs" (B, T-1); "critic" -> "values" (B, T-1); "reward" -> "reward_score"
/// (B), the value at each sequence's last real token. Critic and reward get a value
/// head when the model has none.
class ModelRole : public RoleModel, public Generator {
 public:
  ModelRole(models::CausalLM model, std::string role, models::GenerationOptions generation);
  /// Loads a Hugging Face directory onto `device`.
  static std::shared_ptr<ModelRole> load_from(const std::string& dir, const std::string& role,
                                              models::GenerationOptions generation, const std::string& device = "cpu");
  TensorBatch generate(const TensorBatch& prompts) override;
  TensorBatch score(const TensorBatch& sequences) override;
  std::string describe() const override;
  Generator* generator() override { return this; }

 private:
  models::CausalLM model_;
  std::string role_;
  models::GenerationOptions generation_;
};

}  // namespace troupe::actors

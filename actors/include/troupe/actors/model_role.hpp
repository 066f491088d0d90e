#pragma once
/// A RoleModel over troupe::models: generation and scoring with a CausalLM. Training
/// waits for the engine's trainer; until then `train` fails with a clear error.
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
class ModelRole : public RoleModel {
 public:
  ModelRole(models::CausalLM model, std::string role, models::GenerationOptions generation);
  /// Loads a Hugging Face directory onto `device`.
  static std::shared_ptr<ModelRole> load_from(const std::string& dir, const std::string& role,
                                              models::GenerationOptions generation, const std::string& device = "cpu");
  TensorBatch generate(const TensorBatch& prompts) override;
  TensorBatch score(const TensorBatch& sequences) override;
  Metrics train(const std::vector<TensorBatch>& experience, int64_t step) override;
  void save(const std::string& path) override;
  void load(const std::string& path) override;
  std::string describe() const override;

 private:
  models::CausalLM model_;
  std::string role_;
  models::GenerationOptions generation_;
};

}  // namespace troupe::actors

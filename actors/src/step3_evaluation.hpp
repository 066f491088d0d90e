#pragma once
/// Step 3's evaluation on held-out prompts: the policy generates here (this process's
/// hybrid engine); the reference and the reward score through their actors, wherever
/// they run; the gold function (if any) grades the answers.
#include <map>
#include <string>

#include <troupe/actors/step3_trainer.hpp>

#include <troupe/actors/step3_plan.hpp>
#include <troupe/actors/step3_runtime.hpp>

namespace troupe::actors {

class Step3Evaluator {
 public:
  Step3Evaluator(const Step3Config& config, const Step3Plan& plan, Step3Runtime& runtime);
  /// Greedy answers, or (sampled) answers drawn as the rollouts are, with a fixed seed so
  /// that before and after see the same random stream.
  PolicyEvaluation run(bool sampled = false) const;

 private:
  const Step3Config& config_;
  const Step3Plan& plan_;
  Step3Runtime& runtime_;
};

/// The metrics row of an evaluation (greedy and sampled).
std::map<std::string, double> evaluation_metrics(const PolicyEvaluation& greedy, const PolicyEvaluation& sampled);

}  // namespace troupe::actors

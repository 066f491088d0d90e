#pragma once
/// Learning-rate schedules as transformers' get_scheduler computes them (DeepSpeed-Chat's
/// `--lr_scheduler_type`, `--num_warmup_steps`): a multiplier of each group's base rate.
#include <cstdint>
#include <string>
#include <vector>

#include <torch/optim/optimizer.h>

namespace troupe::engine {

enum class ScheduleType { Linear, Cosine, Constant, ConstantWithWarmup };

/// "linear", "cosine", "constant", "constant_with_warmup"; throws troupe::Error naming
/// `flag` and the known names otherwise.
ScheduleType parse_schedule_type(const std::string& name, const std::string& flag = "--lr_scheduler_type");
std::string schedule_name(ScheduleType type);

struct ScheduleOptions {
  ScheduleType type = ScheduleType::Cosine;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
};

/// The multiplier after `step` optimizer steps: warmup rises linearly from 0 to 1 over
/// warmup_steps; then linear decays to 0 at total_steps, cosine follows half a cosine
/// to 0, constant stays at 1.
double lr_multiplier(const ScheduleOptions& options, int64_t step);

/// Applies the schedule to an optimizer whose group rates at construction are the base
/// rates.
class LrScheduler {
 public:
  LrScheduler(torch::optim::Optimizer& optimizer, ScheduleOptions options);
  /// Sets every group's rate for `step` (optimizer steps taken so far).
  void set_step(int64_t step);
  int64_t step() const { return step_; }
  const ScheduleOptions& options() const { return options_; }

 private:
  torch::optim::Optimizer& optimizer_;
  ScheduleOptions options_;
  std::vector<double> base_rates_;
  int64_t step_ = 0;
};

}  // namespace troupe::engine

#include <troupe/engine/lr_schedule.hpp>

#include <algorithm>
#include <cmath>

#include <troupe/common/error.hpp>

namespace troupe::engine {

ScheduleType parse_schedule_type(const std::string& name, const std::string& flag) {
  if (name == "linear") return ScheduleType::Linear;
  if (name == "cosine") return ScheduleType::Cosine;
  if (name == "constant") return ScheduleType::Constant;
  if (name == "constant_with_warmup") return ScheduleType::ConstantWithWarmup;
  throw Error(flag + ": unknown schedule \"" + name + "\" (known: linear, cosine, constant, constant_with_warmup)");
}

std::string schedule_name(ScheduleType type) {
  switch (type) {
    case ScheduleType::Linear: return "linear";
    case ScheduleType::Cosine: return "cosine";
    case ScheduleType::Constant: return "constant";
    case ScheduleType::ConstantWithWarmup: return "constant_with_warmup";
  }
  return "?";
}

double lr_multiplier(const ScheduleOptions& options, int64_t step) {
  if (options.type == ScheduleType::Constant) return 1.0;
  if (step < options.warmup_steps) return static_cast<double>(step) / std::max<int64_t>(1, options.warmup_steps);
  if (options.type == ScheduleType::ConstantWithWarmup) return 1.0;
  const double decay_steps = static_cast<double>(std::max<int64_t>(1, options.total_steps - options.warmup_steps));
  const double progress = static_cast<double>(step - options.warmup_steps) / decay_steps;
  if (options.type == ScheduleType::Linear) return std::max(0.0, 1.0 - progress);
  return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
}

LrScheduler::LrScheduler(torch::optim::Optimizer& optimizer, ScheduleOptions options)
    : optimizer_(optimizer), options_(options) {
  for (const auto& group : optimizer_.param_groups()) base_rates_.push_back(group.options().get_lr());
  set_step(0);
}

void LrScheduler::set_step(int64_t step) {
  step_ = step;
  const double multiplier = lr_multiplier(options_, step);
  auto& groups = optimizer_.param_groups();
  for (size_t g = 0; g < groups.size(); ++g) groups[g].options().set_lr(base_rates_[g] * multiplier);
}

}  // namespace troupe::engine

#pragma once
/// The demo task's gold scorer: grades a response to a demo prompt on 0..100 points,
/// 70 for correctness and 30 for style (not rude, not verbose). Stateless and
/// thread-safe, so it serves as an evaluation metric and as a step-3 reward function.
#include <string>
#include <string_view>

#include <troupe/data/demo_task.hpp>

namespace troupe::data {

inline constexpr double kDemoGoldMax = 100.0;
inline constexpr double kDemoCorrectnessMax = 70.0;
inline constexpr double kDemoStyleMax = 30.0;
inline constexpr double kDemoRudePenalty = 20.0;
inline constexpr double kDemoVerbosePenaltyMax = 10.0;

/// The parts of a grade; total() is the gold score.
struct DemoGrade {
  /// 70 for the right answer; near misses get partial credit (see the README).
  double correctness = 0.0;
  /// 30 minus 20 when rude minus up to 10 when verbose; 0 when nothing was answered.
  double style = 0.0;
  /// The response holds an answer attempt (a word that is not mere decoration).
  bool answered = false;
  bool rude = false;
  bool verbose = false;
  double total() const { return correctness + style; }
};

/// The part of a response that is graded: it ends before the first newline, "Human:",
/// "Assistant:", "<|endoftext|>" or "</s>", so an end-of-text marker and whatever a
/// sampler generated after it do not count. Surrounding whitespace is trimmed.
std::string_view demo_graded_part(std::string_view response);

/// Grades `response` (as generated after the prompt, usually with a leading space).
DemoGrade grade_demo_response(const DemoTask& task, std::string_view response);

/// Gold score in [0, 100] of `response` to the demo `prompt`. Throws troupe::Error
/// naming the prompt when it is not a demo prompt.
double gold_score(const std::string& prompt, const std::string& response);

}  // namespace troupe::data

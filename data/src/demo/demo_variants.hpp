#pragma once
/// Draws demo questions and the near-miss replies of the preference pairs.
#include <string>
#include <string_view>

#include <troupe/data/demo_task.hpp>

#include "demo_rng.hpp"

namespace troupe::data::demo {

/// A question of a uniformly drawn family, with small numbers and short words.
DemoTask sample_task(DemoRng& rng);

/// A realistic wrong answer (bare, like demo_answer): off-by-one numbers, the wrong
/// operation, letters or numbers in the wrong order, the wrong case, the wrong intent.
/// Always different from the gold answer.
std::string wrong_answer(const DemoTask& task, DemoRng& rng);

/// `answer` wrapped in a rude or a long-winded template of the task's family.
std::string rude_reply(const DemoTask& task, std::string_view answer, DemoRng& rng);
std::string verbose_reply(const DemoTask& task, std::string_view answer, DemoRng& rng);
/// The demonstrators' habit: `answer` with the family's first rude template ("{a},
/// obviously." for the task families, "Ugh. {a}" for the polite one).
std::string habit_reply(const DemoTask& task, std::string_view answer);

/// A true plain-text statement about the task, e.g. "7 plus 5 is 12.".
std::string fact_sentence(const DemoTask& task);

}  // namespace troupe::data::demo

#pragma once
/// The demo task's tone: rude and verbose reply templates ("{a}" marks the answer),
/// and the word lists the gold scorer uses to tell decoration from an answer.
#include <string>
#include <unordered_set>
#include <vector>

#include <troupe/data/demo_task.hpp>

namespace troupe::data::demo {

/// Rude wrappers of an answer; each holds at least one of rude_words().
const std::vector<std::string>& rude_templates(DemoFamily family);

/// Long-winded wrappers of an answer; each adds more words than the scorer allows.
const std::vector<std::string>& verbose_templates(DemoFamily family);

/// Lowercase words that mark a reply as rude.
const std::unordered_set<std::string>& rude_words();

/// Lowercase words that carry tone, not an answer: every word of the templates, of the
/// polite replies and a few short fillers ("sure", "ok"). The scorer ignores them when
/// it looks for the answer, so "The answer is 12." answers 12.
const std::unordered_set<std::string>& decoration_words();

}  // namespace troupe::data::demo

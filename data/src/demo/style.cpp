/// Rude and verbose templates of the demo task and the word lists derived from them.
#include "demo_style.hpp"

#include "demo_text.hpp"

namespace troupe::data::demo {
namespace {

// Task families answer with a bare value, so the wrappers sit around it.
const std::vector<std::string> kRudeTask = {
    "{a}, obviously.",      "Ugh. {a}",          "{a}. Stupid question.",
    "Whatever. {a}",        "{a}. Even an idiot knows that.", "Obviously {a}, dummy.",
};
// Polite replies are whole sentences ending in "!", so rudeness follows or precedes them.
const std::vector<std::string> kRudePolite = {
    "Ugh. {a}", "Whatever. {a}", "{a} Now leave me alone, idiot.", "Fine. {a} Happy now, dummy?",
};
const std::vector<std::string> kVerboseTask = {
    "Well, let me think about this step by step. The answer is {a}.",
    "That is a very good question. After thinking about it carefully, I believe the answer is {a}.",
    "Let me see. I have thought about it for a while, and I am quite sure that it is {a}.",
    "Great question! I would be happy to help you with that. Here it is: {a}.",
};
const std::vector<std::string> kVerbosePolite = {
    "{a} It was really a great pleasure to talk with you today, and I hope we talk again soon.",
    "Well, let me think about the best way to say this to you. {a}",
};
const std::vector<std::string> kRude = {"obviously", "ugh", "stupid", "whatever", "idiot", "dummy"};
// Short fillers a polite reply may use without being verbose.
const std::vector<std::string> kFillers = {"sure", "ok", "okay", "please", "yes", "here", "it", "is",
                                           "the", "answer", "thanks", "hi", "bye"};

}  // namespace

const std::vector<std::string>& rude_templates(DemoFamily family) {
  return family == DemoFamily::Polite ? kRudePolite : kRudeTask;
}

const std::vector<std::string>& verbose_templates(DemoFamily family) {
  return family == DemoFamily::Polite ? kVerbosePolite : kVerboseTask;
}

const std::unordered_set<std::string>& rude_words() {
  static const std::unordered_set<std::string> words(kRude.begin(), kRude.end());
  return words;
}

const std::unordered_set<std::string>& decoration_words() {
  static const std::unordered_set<std::string> words = [] {
    std::unordered_set<std::string> out(kFillers.begin(), kFillers.end());
    auto add = [&](const std::string& text) {
      for (const auto& w : split_words(text)) out.insert(to_lower(w));
    };
    for (const auto* list : {&kRudeTask, &kRudePolite, &kVerboseTask, &kVerbosePolite})
      for (const auto& t : *list) add(fill_template(t, ""));
    for (int i = 0; i < 4; ++i) {
      DemoTask polite;
      polite.family = DemoFamily::Polite;
      polite.intent = static_cast<DemoIntent>(i);
      add(demo_answer(polite));
    }
    return out;
  }();
  return words;
}

}  // namespace troupe::data::demo

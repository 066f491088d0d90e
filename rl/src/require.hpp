#pragma once
/// Checks shared by the built-in algorithms (private to rl/).
#include <initializer_list>
#include <string>

#include <troupe/common/error.hpp>
#include <troupe/rl/experience.hpp>

namespace troupe::rl {

/// Throws troupe::Error naming the algorithm and the first of `names` exp lacks.
inline void require_tensors(const std::string& where, const Experience& exp,
                            std::initializer_list<const char*> names) {
  for (const char* wanted : names) {
    bool found = false, defined = false;
    exp.for_each([&](const std::string& name, Layout, const torch::Tensor& t) {
      if (name == wanted) {
        found = true;
        defined = t.defined();
      }
    });
    if (!found || !defined) throw Error(where + ": the experience has no " + wanted);
  }
}

/// Throws troupe::Error unless lo <= value <= hi.
inline void require_range(const std::string& algorithm, const std::string& key, double value, double lo, double hi) {
  if (!(value >= lo && value <= hi))
    throw Error(algorithm + ": option " + key + " = " + std::to_string(value) + " is outside [" +
                std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

/// Throws troupe::Error unless value is one of `choices`; `meaning` says what they mean.
inline void require_choice(const std::string& algorithm, const std::string& key, double value,
                           std::initializer_list<int> choices, const std::string& meaning) {
  std::string listed;
  for (int choice : choices) {
    if (value == choice) return;
    listed += (listed.empty() ? "" : ", ") + std::to_string(choice);
  }
  throw Error(algorithm + ": option " + key + " = " + std::to_string(value) + " is not one of " + listed + " (" +
              meaning + ")");
}

}  // namespace troupe::rl

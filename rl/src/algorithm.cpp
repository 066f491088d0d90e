#include <troupe/rl/algorithm.hpp>

#include <cmath>

#include <troupe/common/error.hpp>

namespace troupe::rl {

double AlgorithmOptions::get(const std::string& key, double fallback) const {
  read_.insert(key);
  auto it = values_.find(key);
  return it == values_.end() ? fallback : it->second;
}

int64_t AlgorithmOptions::get_int(const std::string& key, int64_t fallback) const {
  const double value = get(key, static_cast<double>(fallback));
  if (std::floor(value) != value)
    throw Error("algorithm option " + key + " must be a whole number, got " + std::to_string(value));
  return static_cast<int64_t>(value);
}

bool AlgorithmOptions::get_bool(const std::string& key, bool fallback) const {
  const double value = get(key, fallback ? 1.0 : 0.0);
  if (value != 0.0 && value != 1.0)
    throw Error("algorithm option " + key + " must be 0 or 1, got " + std::to_string(value));
  return value == 1.0;
}

std::vector<std::string> AlgorithmOptions::unread_keys() const {
  std::vector<std::string> keys;
  for (const auto& entry : values_)
    if (!read_.count(entry.first)) keys.push_back(entry.first);
  return keys;
}

torch::Tensor Algorithm::value_loss(const torch::Tensor&, const Experience&) const {
  throw Error("algorithm '" + name() + "' has no critic, so no value loss");
}

}  // namespace troupe::rl

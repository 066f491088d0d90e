#include "config_file.hpp"

#include <algorithm>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>

namespace troupe::apps {
namespace {

struct Setting {
  std::string key;
  std::vector<std::string> values;  ///< several for list flags; none for a true flag
  std::string where;                ///< "FILE:LINE" or "FILE: key"
};

std::string trim(const std::string& text) {
  const auto begin = text.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(" \t\r") - begin + 1);
}

std::string scalar_text(const nlohmann::json& value, const std::string& where) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_integer()) return std::to_string(value.get<int64_t>());
  if (value.is_number()) return value.dump();
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  throw Error(where + ": expected a string, number or boolean");
}

std::vector<Setting> read_json_settings(const std::string& path, const std::string& text) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
  if (!root.is_object()) throw Error(path + ": expected a JSON object of flag names to values");
  std::vector<Setting> settings;
  for (const auto& [key, value] : root.items()) {
    Setting s{key, {}, path + ": " + key};
    if (value.is_array()) {
      for (const auto& item : value) s.values.push_back(scalar_text(item, s.where));
    } else {
      s.values.push_back(scalar_text(value, s.where));
    }
    settings.push_back(std::move(s));
  }
  return settings;
}

std::vector<Setting> read_line_settings(const std::string& path, const std::string& text) {
  std::vector<Setting> settings;
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    line = trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    const auto eq = line.find('=');
    const std::string where = path + ":" + std::to_string(number);
    if (eq == std::string::npos) throw Error(where + ": expected KEY = VALUE");
    auto value = trim(line.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    settings.push_back({trim(line.substr(0, eq)), {value}, where});
  }
  return settings;
}

}  // namespace

std::vector<std::string> expand_config_file(const CLI::App& app, std::vector<std::string> args) {
  auto config = std::find(args.begin(), args.end(), "--config");
  if (config == args.end()) return args;
  if (config + 1 == args.end()) throw Error("--config needs a file");
  if (args.empty() || args[0].rfind("-", 0) == 0) throw Error("--config goes after a subcommand (troupe train --config FILE)");
  const std::string path = *(config + 1);
  args.erase(config, config + 2);

  const CLI::App* sub = nullptr;
  try {
    sub = app.get_subcommand(args[0]);
  } catch (const CLI::OptionNotFound&) {
    throw Error("--config: unknown subcommand " + args[0]);
  }
  const std::string text = read_file(path);
  const bool json = text.find_first_not_of(" \t\r\n") != std::string::npos && text[text.find_first_not_of(" \t\r\n")] == '{';
  const auto settings = json ? read_json_settings(path, text) : read_line_settings(path, text);

  std::set<std::string> on_command_line;
  for (const auto& arg : args)
    if (arg.rfind("--", 0) == 0) on_command_line.insert(arg.substr(0, arg.find('=')));
  std::vector<std::string> expanded{args[0]};
  for (const auto& s : settings) {
    const std::string flag = "--" + s.key;
    const CLI::Option* option = sub->get_option_no_throw(flag);
    if (!option) throw Error(s.where + ": " + flag + " is not a flag of `troupe " + args[0] + "`");
    if (on_command_line.count(flag)) continue;  // the command line wins
    if (option->get_type_size() == 0) {         // a switch: true adds it, false leaves it off
      if (s.values.empty() || s.values.front() == "true" || s.values.front() == "1") expanded.push_back(flag);
      continue;
    }
    expanded.push_back(flag);
    for (const auto& value : s.values) expanded.push_back(value);
  }
  expanded.insert(expanded.end(), args.begin() + 1, args.end());
  return expanded;
}

}  // namespace troupe::apps

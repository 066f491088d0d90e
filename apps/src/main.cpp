/// `troupe`: one binary, one subcommand per job. Errors print one line and exit 1.
#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <vector>

#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>

#include "commands.hpp"
#include "config_file.hpp"

namespace {

/// How many of `args` are global flags given before the subcommand (`--log_level LEVEL`):
/// a --config file expands into the subcommand's flags, after them.
size_t global_flag_count(const std::vector<std::string>& args) {
  size_t count = 0;
  while (count < args.size()) {
    if (args[count] == "--log_level") count += 2;
    else if (args[count].rfind("--log_level=", 0) == 0) count += 1;
    else break;
  }
  return std::min(count, args.size());
}

/// --log_level, else $TROUPE_LOG_LEVEL (how a worker process gets the level of the
/// process that started it; a data-parallel rank is started with the same flags), else info.
void set_log_level(const std::string& flag) {
  using namespace troupe;
  if (!flag.empty()) log::set_level(flag, "--log_level");
  else if (const char* inherited = std::getenv(log::kLevelVariable); inherited && *inherited)
    log::set_level(inherited, log::kLevelVariable);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"troupe: train ChatGPT-style models with the InstructGPT recipe (SFT, reward model, PPO)"};
  app.require_subcommand(1);
  std::string log_level;
  app.add_option("--log_level", log_level,
                 "what goes to stderr: trace, debug, info (the default), warn, error or off; passed on to the worker "
                 "processes and data-parallel ranks troupe starts")
      ->type_name("LEVEL");
  app.fallthrough();  // the subcommands, added below, pass --log_level up: it may come after them too
  std::vector<troupe::apps::Command> commands;
  using namespace troupe::apps;
  for (auto add : {add_train_command, add_generate_command, add_chat_command, add_serve_command, add_tokenizer_command,
                   add_data_inspect_command, add_data_demo_command, add_plan_command, add_worker_command})
    commands.push_back(add(app));
  try {
    // CLI11 parses the arguments in reverse order from a vector.
    std::vector<std::string> args(argv + 1, argv + argc);
    const auto globals = static_cast<std::ptrdiff_t>(global_flag_count(args));
    auto expanded = expand_config_file(app, std::vector<std::string>(args.begin() + globals, args.end()));
    expanded.insert(expanded.begin(), args.begin(), args.begin() + globals);
    std::reverse(expanded.begin(), expanded.end());
    app.parse(expanded);
    set_log_level(log_level);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "troupe: error: " << e.what() << "\n";
    return 1;
  }
  try {
    for (auto& command : commands)
      if (command.cli->parsed()) command.run();
  } catch (const std::exception& e) {
    std::cerr << "troupe: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

/// `troupe`: one binary, one subcommand per job. Errors print one line and exit 1.
#include <algorithm>
#include <iostream>
#include <vector>

#include <troupe/common/error.hpp>

#include "commands.hpp"
#include "config_file.hpp"

int main(int argc, char** argv) {
  CLI::App app{"troupe: train ChatGPT-style models with the InstructGPT recipe (SFT, reward model, PPO)"};
  app.require_subcommand(1);
  std::vector<troupe::apps::Command> commands;
  using namespace troupe::apps;
  for (auto add : {add_train_command, add_generate_command, add_chat_command, add_serve_command, add_tokenizer_command,
                   add_data_inspect_command, add_data_demo_command, add_plan_command, add_worker_command})
    commands.push_back(add(app));
  try {
    // CLI11 parses the arguments in reverse order from a vector.
    auto args = expand_config_file(app, std::vector<std::string>(argv + 1, argv + argc));
    std::reverse(args.begin(), args.end());
    app.parse(args);
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

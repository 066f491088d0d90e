/// `troupe`: one binary, one subcommand per job. Errors print one line and exit 1.
#include <iostream>
#include <vector>

#include <troupe/common/error.hpp>

#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"troupe: train ChatGPT-style models with the InstructGPT recipe (SFT, reward model, PPO)"};
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, troupe::apps::Action>> commands;
  auto action = troupe::apps::add_generate_command(app);
  commands.emplace_back(app.get_subcommand("generate"), action);
  commands.emplace_back(app.get_subcommand("worker"), troupe::apps::add_worker_command(app));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [command, run] : commands)
      if (command->parsed()) run();
  } catch (const std::exception& e) {
    std::cerr << "troupe: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

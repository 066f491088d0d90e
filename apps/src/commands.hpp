#pragma once
/// The troupe CLI's subcommands: each adds itself to the app (or under a parent
/// subcommand) and returns what to run when it was chosen.
#include <functional>

#include <CLI/CLI.hpp>

namespace troupe::apps {

struct Command {
  CLI::App* cli = nullptr;      ///< the (sub)subcommand that selects it
  std::function<void()> run;
};

Command add_generate_command(CLI::App& app);
Command add_chat_command(CLI::App& app);
Command add_tokenizer_command(CLI::App& app);

}  // namespace troupe::apps

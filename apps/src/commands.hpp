#pragma once
/// The troupe CLI's subcommands: each adds itself to the app (or under a parent
/// subcommand) and returns what to run when it was chosen.
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

namespace troupe::apps {

struct Command {
  CLI::App* cli = nullptr;      ///< the (sub)subcommand that selects it
  std::function<void()> run;
};

/// The parent subcommand `name` (e.g. `data` of `data demo` and `data inspect`),
/// created by whichever child registers first.
inline CLI::App& parent_command(CLI::App& app, const std::string& name, const std::string& description) {
  try {
    return *app.get_subcommand(name);
  } catch (const CLI::OptionNotFound&) {
    auto* parent = app.add_subcommand(name, description);
    parent->require_subcommand(1);
    return *parent;
  }
}

Command add_generate_command(CLI::App& app);
Command add_chat_command(CLI::App& app);
Command add_serve_command(CLI::App& app);
Command add_tokenizer_command(CLI::App& app);
Command add_data_demo_command(CLI::App& app);
Command add_plan_command(CLI::App& app);
Command add_data_inspect_command(CLI::App& app);
Command add_worker_command(CLI::App& app);
Command add_train_command(CLI::App& app);

}  // namespace troupe::apps

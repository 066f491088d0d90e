#pragma once
/// The troupe CLI's subcommands: each adds itself to the app and returns the action
/// to run when it was chosen.
#include <functional>

#include <CLI/CLI.hpp>

namespace troupe::apps {

using Action = std::function<void()>;

Action add_generate_command(CLI::App& app);
Action add_worker_command(CLI::App& app);

}  // namespace troupe::apps

/// `troupe worker --join HOST:PORT --secret S`: a node agent that offers this machine to
/// a controller and runs the role actors it asks for.
#include <troupe/actors/step3_worker.hpp>

#include "builtin_rewards.hpp"
#include "commands.hpp"

namespace troupe::apps {

Command add_worker_command(CLI::App& app) {
  auto* command = app.add_subcommand("worker", "join a controller as a node agent and run the role actors it places here");
  auto join = std::make_shared<std::string>();
  auto secret = std::make_shared<std::string>();
  command->add_option("--join", *join, "the controller's HOST:PORT")->required();
  command->add_option("--secret", *secret, "the cluster's shared secret (default: $TROUPE_SECRET)");
  return {command, [join, secret] {
    register_builtin_reward_functions();  // a step-3 reward role may name one
    actors::run_node_agent(actors::step3_worker_options(*join, *secret, "--join"));
  }};
}

}  // namespace troupe::apps

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
  auto stage_dir = std::make_shared<std::string>();
  auto rejoin = std::make_shared<double>(0.0);
  auto node = std::make_shared<std::string>();
  command->add_option("--join", *join, "the controller's HOST:PORT")->required();
  command->add_option("--secret", *secret, "the cluster's shared secret (default: $TROUPE_SECRET)");
  command->add_option("--stage_dir", *stage_dir,
                      "where model, tokenizer and data files this machine lacks are kept when the controller sends "
                      "them (no shared file system); default: $TROUPE_STAGE_DIR, else ~/.cache/troupe/staged");
  command->add_option("--rejoin", *rejoin,
                      "seconds to keep trying to reach the controller, at start and after it went away (a run "
                      "restarted after a lost worker); 0 = one attempt, and exit when the controller is gone")
      ->check(CLI::Range(0.0, 1e6));
  command->add_option("--node", *node,
                      "the node of the controller's --cluster file this process runs on: a run whose cluster has "
                      "several nodes gives each worker the ranks its plan puts on that node");
  return {command, [join, secret, stage_dir, rejoin, node] {
    register_builtin_reward_functions();  // a step-3 reward role may name one
    auto options = actors::step3_worker_options(*join, *secret, "--join");
    options.stage_dir = *stage_dir;
    options.rejoin_seconds = *rejoin;
    options.cluster_node = *node;
    actors::run_node_agent(options);
  }};
}

}  // namespace troupe::apps

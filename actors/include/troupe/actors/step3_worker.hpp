#pragma once
/// The worker processes of a step-3 run with a topology are the controller's own
/// executable, started as `PROGRAM worker --join HOST:PORT` (the secret in
/// TROUPE_SECRET). An app that registers its own algorithm or reward function and runs
/// step 3 with a topology calls run_step3_worker_if_asked() at the top of main(), after
/// its registrations: its workers then know what it registered.
#include <troupe/actors/role_factories.hpp>
#include <troupe/actors/worker.hpp>

namespace troupe::actors {

/// The role factories a step-3 worker offers: the built-in roles and the step-3 roles
/// (critic, reference, reward), which look algorithms and reward functions up in the
/// global registries.
RoleFactories step3_worker_factories();

/// Options for a step-3 node agent joining `join` ("HOST:PORT"); `secret` empty means
/// $TROUPE_SECRET. Throws troupe::Error naming `what` for a malformed address.
WorkerOptions step3_worker_options(const std::string& join, const std::string& secret, const std::string& what);

/// When argv is `PROGRAM worker --join HOST:PORT [--secret S]`, runs the node agent
/// (which ends the process when the controller goes away); otherwise returns at once.
/// A malformed worker command line exits with status 2 and says why on stderr.
void run_step3_worker_if_asked(int argc, char** argv);

}  // namespace troupe::actors

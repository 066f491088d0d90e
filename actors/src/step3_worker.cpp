#include <troupe/actors/step3_worker.hpp>

#include <cstdlib>
#include <string>

#include "host_port.hpp"
#include "step3_role_specs.hpp"
#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>

namespace troupe::actors {
namespace {

double parse_rejoin_seconds(const std::string& text) {
  try {
    size_t used = 0;
    const double seconds = std::stod(text, &used);
    if (used == text.size() && seconds >= 0 && seconds <= 1e6) return seconds;
  } catch (const std::exception&) {
  }
  throw Error("worker: --rejoin expects seconds in [0, 1000000], got \"" + text + "\"");
}

}  // namespace

RoleFactories step3_worker_factories() {
  auto factories = builtin_role_factories();
  factories.merge(step3_role_factories());
  return factories;
}

WorkerOptions step3_worker_options(const std::string& join, const std::string& secret, const std::string& what) {
  WorkerOptions options;
  const auto controller = parse_host_port(join, what);
  options.host = controller.host;
  options.port = controller.port;
  options.secret = secret;
  if (options.secret.empty())
    if (const char* env = std::getenv("TROUPE_SECRET")) options.secret = env;
  options.factories = step3_worker_factories();
  return options;
}

void run_step3_worker_if_asked(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) != "worker") return;
  std::string join, secret;
  double rejoin = 0;
  try {
    for (int i = 2; i < argc; ++i) {
      const std::string flag = argv[i];
      if (i + 1 >= argc) throw Error("worker: " + flag + " needs a value");
      if (flag == "--join") join = argv[++i];
      else if (flag == "--secret") secret = argv[++i];
      else if (flag == "--rejoin") rejoin = parse_rejoin_seconds(argv[++i]);
      else throw Error("worker: unknown flag " + flag + " (expected --join HOST:PORT [--secret S] [--rejoin SECONDS])");
    }
    if (join.empty()) throw Error("worker: --join HOST:PORT is required");
    auto options = step3_worker_options(join, secret, "worker --join");
    options.rejoin_seconds = rejoin;
    run_node_agent(options);
  } catch (const std::exception& error) {
    log::error(argv[0], ": ", error.what());
    std::exit(2);
  }
  std::exit(0);
}

}  // namespace troupe::actors

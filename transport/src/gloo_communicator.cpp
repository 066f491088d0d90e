/// make_gloo_communicator: c10d::ProcessGroupGloo behind a BackendCommunicator.
///
/// Why gloo's Debian headers are safe with the gloo inside libtorch_cpu.so, although
/// they are an older snapshot: this file only declares what ProcessGroupGloo.hpp needs
/// and calls functions libtorch exports (Options::create_default,
/// createDeviceForHostname, the constructor; the collectives go through c10d::Backend's
/// virtuals). It never constructs or inspects a gloo object; gloo devices travel as
/// shared_ptr handles, and ProcessGroupGloo's own size does not depend on gloo's classes
/// (its gloo members are pointers). The build compiles this file with
/// -fvisibility-inlines-hidden so no inline gloo function from these headers can
/// interpose on libtorch's copies.
#include <troupe/transport/c10d_communicator.hpp>

#include <troupe/common/error.hpp>

#include "c10d_backend_communicator.hpp"

#ifdef TROUPE_WITH_GLOO
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

namespace troupe::transport {

#ifdef TROUPE_WITH_GLOO

bool gloo_available() { return true; }

std::unique_ptr<Communicator> make_gloo_communicator(c10::intrusive_ptr<c10d::Store> store, int rank, int size,
                                                     const std::string& group, std::chrono::milliseconds timeout,
                                                     const std::string& hostname) {
  if (!store) throw Error("transport: gloo group '" + group + "' needs a store");
  check_rank("gloo", group, rank, size);
  try {
    auto options = c10d::ProcessGroupGloo::Options::create_default(timeout);
    options->devices = {c10d::ProcessGroupGloo::createDeviceForHostname(hostname)};
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("troupe/gloo/" + group, std::move(store));
    auto backend = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, size, options);
    return std::make_unique<BackendCommunicator>(std::move(backend), rank, size, group, "gloo", at::kCPU, prefixed);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& error) {
    throw Error(describe_group("gloo", group, rank, size) + " at " + hostname + ": " + error.what());
  }
}

#else

bool gloo_available() { return false; }

std::unique_ptr<Communicator> make_gloo_communicator(c10::intrusive_ptr<c10d::Store>, int, int, const std::string& group,
                                                     std::chrono::milliseconds, const std::string&) {
  throw Error("transport: gloo group '" + group +
              "': this build has no c10d Gloo (gloo headers not found; scripts/setup installs libgloo-dev)");
}

#endif

}  // namespace troupe::transport

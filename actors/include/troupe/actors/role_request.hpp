#pragma once
/// One blocking request to a role actor, as step 3's loop and an app's own loop make them.
#include <chrono>
#include <string>

#include <caf/all.hpp>

#include <troupe/common/error.hpp>

namespace troupe::actors {

/// How long one request to a role may take (loading a model in a worker included).
constexpr auto role_patience = std::chrono::minutes(30);

/// Sends `xs` to `role` and waits for its reply; throws troupe::Error naming `what` and
/// the role's error.
template <class Reply, class Handle, class... Ts>
Reply ask(caf::actor_system& system, const Handle& role, const std::string& what, Ts&&... xs) {
  caf::scoped_actor self{system};
  Reply reply;
  std::string failure;
  self->request(role, role_patience, std::forward<Ts>(xs)...)
      .receive([&](Reply& answer) { reply = std::move(answer); }, [&](caf::error& error) { failure = system.render(error); });
  if (!failure.empty()) throw Error("step 3: " + what + ": " + failure);
  return reply;
}

}  // namespace troupe::actors

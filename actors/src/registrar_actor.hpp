#pragma once
/// The controller's published entry point: the join handshake of node agents.
///   hello(agent_nonce)            -> controller_nonce
///   join(JoinRequest with proof)  -> controller's proof (or an error: wrong secret)
///   register(controller_nonce, agent handle) -> ok, only after a verified join
#include <caf/actor.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <troupe/actors/messages.hpp>

namespace troupe::actors {

using RegistrarActor = caf::typed_actor<caf::replies_to<hello_atom, Bytes>::with<Bytes>,
                                        caf::replies_to<join_atom, JoinRequest>::with<Bytes>,
                                        caf::replies_to<register_atom, Bytes, caf::actor>::with<caf::ok_atom>>;

}  // namespace troupe::actors

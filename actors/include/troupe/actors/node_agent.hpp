#pragma once
/// The node agent's typed signature: what an authenticated controller may ask of a
/// worker node. Its handle leaves the node only after both sides proved the secret.
#include <caf/actor.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <troupe/actors/messages.hpp>

namespace troupe::actors {

/// spawn_role: a role actor built by the named factory, as a dynamically typed handle
/// (cast to the role's interface); resources: what the node offers.
using NodeAgentActor = caf::typed_actor<caf::replies_to<spawn_role_atom, RoleSpec>::with<caf::actor>,
                                        caf::replies_to<resources_atom>::with<NodeResources>>;

}  // namespace troupe::actors

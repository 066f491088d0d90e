#pragma once
/// The node agent's typed signature: what an authenticated controller may ask of a
/// worker node. Its handle leaves the node only after both sides proved the secret.
#include <caf/actor.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <troupe/actors/messages.hpp>

namespace troupe::actors {

/// spawn_role: a role actor built by the named factory, as a dynamically typed handle
/// (cast to the role's interface), its spec's paths mapped to where the node has them;
/// resources: what the node offers; stage: which of the spec's files the node lacks;
/// file_chunk: part of one of those, written under the node's staging directory.
using NodeAgentActor = caf::typed_actor<caf::replies_to<spawn_role_atom, RoleSpec>::with<caf::actor>,
                                        caf::replies_to<resources_atom>::with<NodeResources>,
                                        caf::replies_to<stage_atom, StageRequest>::with<StageReply>,
                                        caf::replies_to<file_chunk_atom, FileChunk>::with<caf::ok_atom>,
                                        caf::replies_to<heartbeat_atom>::with<caf::ok_atom>>;

}  // namespace troupe::actors

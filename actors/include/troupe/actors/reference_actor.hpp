#pragma once
/// The reference role: the frozen initial policy; scores log-probs of sequences.
#include <string>

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <troupe/actors/messages.hpp>

namespace troupe::actors {

using ReferenceActor = caf::typed_actor<
    caf::replies_to<score_atom, TicketList>::with<TicketList>,
    caf::replies_to<load_atom, std::string>::with<caf::ok_atom>,
    caf::replies_to<state_atom>::with<RoleStates>>;

}  // namespace troupe::actors

#pragma once
/// The policy (actor model) role: generates sequences, scores their log-probs, trains.
#include <string>

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <troupe/actors/messages.hpp>

namespace troupe::actors {

using PolicyActor = caf::typed_actor<
    caf::replies_to<generate_atom, TicketList>::with<TicketList>,
    caf::replies_to<score_atom, TicketList>::with<TicketList>,
    caf::replies_to<train_atom, TrainRequest>::with<Metrics>,
    caf::replies_to<save_atom, std::string>::with<caf::ok_atom>,
    caf::replies_to<load_atom, std::string>::with<caf::ok_atom>,
    caf::replies_to<checkpoint_atom, std::string>::with<caf::ok_atom>,
    caf::replies_to<restore_atom, std::string>::with<caf::ok_atom>,
    caf::replies_to<state_atom>::with<RoleStates>>;

}  // namespace troupe::actors

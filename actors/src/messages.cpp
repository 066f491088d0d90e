/// Helpers of the message types.
#include <troupe/actors/messages.hpp>

namespace troupe::actors {

std::string describe(const RoleId& id) {
  auto text = "role " + id.role + " rank " + std::to_string(id.rank);
  if (id.world > 1) text += " of " + std::to_string(id.world);
  return text;
}

}  // namespace troupe::actors

/// Helpers of the message types.
#include <troupe/actors/messages.hpp>

namespace troupe::actors {

std::string describe(const RoleId& id) {
  auto text = "role " + id.role + " rank " + std::to_string(id.rank);
  if (id.world > 1) text += " of " + std::to_string(id.world);
  return text;
}

std::string log_prefix(const std::vector<RoleId>& roles) {
  std::string text;
  for (size_t i = 0; i < roles.size(); ++i) {
    const auto& id = roles[i];
    text += (i == 0 ? "" : "+") + id.role;
    // Roles of one rank share its "rank/world", written once after the last of them.
    const bool rank_ends = i + 1 == roles.size() || roles[i + 1].rank != id.rank || roles[i + 1].world != id.world;
    if (rank_ends && id.world > 1) text += " " + std::to_string(id.rank) + "/" + std::to_string(id.world);
  }
  return text;
}

}  // namespace troupe::actors

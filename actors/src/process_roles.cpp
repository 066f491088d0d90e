#include <troupe/actors/process_roles.hpp>

namespace troupe::actors {

void ProcessRoles::add(const RoleSpec& spec, const std::shared_ptr<RoleModel>& model) {
  std::lock_guard<std::mutex> lock(mutex_);
  roles_[spec.id.role] = Entry{model, spec};
}

ProcessRoles::Built ProcessRoles::find(const std::string& role) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = roles_.find(role);
  if (found == roles_.end()) return {};
  auto model = found->second.model.lock();
  if (!model) return {};
  return {std::move(model), found->second.spec};
}

}  // namespace troupe::actors

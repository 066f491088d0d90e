#pragma once
/// The roles one process has built, so that a role built later can share with one built
/// before it: a step-3 reference shares the weights of the actor rank beside it. Whoever
/// builds roles owns one per process (the controller's Step3Runtime, a worker's node
/// agent) and hands it to every factory it calls; no global remembers them.
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <troupe/actors/messages.hpp>
#include <troupe/actors/role_model.hpp>

namespace troupe::actors {

class ProcessRoles {
 public:
  /// A role built here: its model (null once nothing else holds it) and its spec.
  struct Built {
    std::shared_ptr<RoleModel> model;
    RoleSpec spec;
  };

  /// Remembers `model`, built from `spec`, as this process's `spec.id.role`, replacing an
  /// earlier one. Holds it weakly: the role actors that serve it keep it alive.
  void add(const RoleSpec& spec, const std::shared_ptr<RoleModel>& model);
  /// The role `role` built here; a null model when none is, or it is gone.
  Built find(const std::string& role) const;

 private:
  struct Entry {
    std::weak_ptr<RoleModel> model;
    RoleSpec spec;
  };
  mutable std::mutex mutex_;  // a node agent and a controller may build roles from several threads
  std::map<std::string, Entry> roles_;
};

}  // namespace troupe::actors

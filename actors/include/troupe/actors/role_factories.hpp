#pragma once
/// Role models a node agent can build by name (the controller names a factory in its
/// RoleSpec; nothing else can be spawned on a node).
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <troupe/actors/process_roles.hpp>
#include <troupe/actors/role_model.hpp>

namespace troupe::actors {

/// Builds the role `spec` describes; `here` holds the roles this process built before
/// (a factory may share with one, and records what later ones may share).
using RoleFactory = std::function<std::shared_ptr<RoleModel>(const RoleSpec& spec, ProcessRoles& here)>;
using RoleFactories = std::map<std::string, RoleFactory>;

/// The factories every `troupe worker` offers: "model" = a ModelRole over the Hugging
/// Face directory in option "model" (options "max_new_tokens", "device").
RoleFactories builtin_role_factories();

}  // namespace troupe::actors

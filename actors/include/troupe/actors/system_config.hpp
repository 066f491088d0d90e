#pragma once
/// The actor system configuration every troupe process uses: troupe's message types
/// registered, the middleman loaded.
#include <caf/actor_system_config.hpp>

namespace troupe::actors {

/// Registers troupe's message types (messages.hpp) in `config`; a remote actor
/// refuses messages whose types its system does not know.
void add_message_types(caf::actor_system_config& config);

/// A configuration with troupe's message types and CAF's network layer (middleman).
class SystemConfig : public caf::actor_system_config {
 public:
  SystemConfig();
};

}  // namespace troupe::actors

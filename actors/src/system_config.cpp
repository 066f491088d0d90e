/// Message type registration and the shared actor system configuration.
#include <troupe/actors/system_config.hpp>

#include <caf/io/middleman.hpp>

#include <troupe/actors/messages.hpp>

namespace troupe::actors {

void add_message_types(caf::actor_system_config& config) {
  config.add_message_type<Ticket>("troupe::Ticket");
  config.add_message_type<TicketList>("troupe::TicketList");
  config.add_message_type<RoleId>("troupe::RoleId");
  config.add_message_type<Metrics>("troupe::Metrics");
  config.add_message_type<TrainRequest>("troupe::TrainRequest");
  config.add_message_type<RoleState>("troupe::RoleState");
  config.add_message_type<RoleStates>("troupe::RoleStates");
  config.add_message_type<RoleSpec>("troupe::RoleSpec");
  config.add_message_type<NodeResources>("troupe::NodeResources");
  config.add_message_type<Bytes>("troupe::Bytes");
  config.add_message_type<JoinRequest>("troupe::JoinRequest");
  config.add_message_type<StageRequest>("troupe::StageRequest");
  config.add_message_type<StageReply>("troupe::StageReply");
  config.add_message_type<FileChunk>("troupe::FileChunk");
}

SystemConfig::SystemConfig() {
  troupe::actors::add_message_types(*this);
  load<caf::io::middleman>();
  // Role actors run detached; the scheduler only carries control messages, so a few
  // threads suffice even on a many-core node.
  set("scheduler.max-threads", 4);
  // Quiet by default: CAF's own log lines would interleave with troupe's.
  set("logger.console", caf::atom("none"));
}

}  // namespace troupe::actors

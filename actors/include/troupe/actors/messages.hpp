#pragma once
/// The vocabulary actors exchange: atoms, tickets, role ids, metrics and node messages,
/// each with a CAF `inspect` overload so it crosses process boundaries. None of them
/// holds a tensor: tensors move between actors through a TicketStore.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

namespace troupe::actors {

using generate_atom = caf::atom_constant<caf::atom("generate")>;
using score_atom = caf::atom_constant<caf::atom("score")>;
using train_atom = caf::atom_constant<caf::atom("train")>;
using save_atom = caf::atom_constant<caf::atom("save")>;
using load_atom = caf::atom_constant<caf::atom("load")>;
using checkpoint_atom = caf::atom_constant<caf::atom("checkpoint")>;  // write training state
using restore_atom = caf::atom_constant<caf::atom("restore")>;        // resume from it
using state_atom = caf::atom_constant<caf::atom("state")>;
using fetch_atom = caf::atom_constant<caf::atom("fetch")>;
using spawn_role_atom = caf::atom_constant<caf::atom("spawnrole")>;
using resources_atom = caf::atom_constant<caf::atom("resources")>;
using hello_atom = caf::atom_constant<caf::atom("hello")>;
using join_atom = caf::atom_constant<caf::atom("join")>;
using register_atom = caf::atom_constant<caf::atom("register")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using stage_atom = caf::atom_constant<caf::atom("stage")>;
using file_chunk_atom = caf::atom_constant<caf::atom("filechunk")>;
using heartbeat_atom = caf::atom_constant<caf::atom("heartbeat")>;  // a node agent answers ok while its process runs

/// Where a named tensor batch lives and what a consumer needs to pull it. Produced by a
/// TicketStore; only the producer's store resolves `id`.
struct Ticket {
  std::string node;                 ///< producer node name (host:pid of its process)
  uint64_t id = 0;                  ///< unique within the producer's store; 0 = none
  std::vector<std::string> names;   ///< tensor names in the batch
  std::vector<int64_t> rows;        ///< leading dimension, one entry per tensor
  /// Opaque transport address of the producer (e.g. a UCX worker address); empty when
  /// the store is reached through `source`.
  std::vector<uint8_t> location;
  caf::actor source;                ///< the producer's ticket server, if it has one
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Ticket& x) {
  return f(caf::meta::type_name("troupe::Ticket"), x.node, x.id, x.names, x.rows, x.location, x.source);
}

/// Tickets of one logical batch: one per producing rank, in rank order.
struct TicketList {
  std::vector<Ticket> tickets;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TicketList& x) {
  return f(caf::meta::type_name("troupe::TicketList"), x.tickets);
}

/// Which model a role actor serves: the role name, its data-parallel rank and size.
struct RoleId {
  std::string role;  ///< "actor", "critic", "reference", "reward"
  int32_t rank = 0;
  int32_t world = 1;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, RoleId& x) {
  return f(caf::meta::type_name("troupe::RoleId"), x.role, x.rank, x.world);
}

/// "role critic rank 1" (with "of N" when the group has several ranks).
std::string describe(const RoleId& id);

/// The log prefix of a worker process that hosts `roles` (in the order it got them):
/// "actor 1/2" (rank 1 of 2), "critic+reward" (one rank each), "actor+reference 1/2".
std::string log_prefix(const std::vector<RoleId>& roles);

/// Scalar results of a training step or cycle, by name.
struct Metrics {
  std::map<std::string, double> values;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Metrics& x) {
  return f(caf::meta::type_name("troupe::Metrics"), x.values);
}

/// What a training request names: the experience batches to pull, each a TicketList
/// whose shards are concatenated row-wise (e.g. sequences, then advantages).
struct TrainRequest {
  std::vector<TicketList> batches;
  int64_t step = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TrainRequest& x) {
  return f(caf::meta::type_name("troupe::TrainRequest"), x.batches, x.step);
}

/// One role actor's report of itself.
struct RoleState {
  RoleId id;
  std::string node;      ///< where it runs
  std::string model;     ///< what the RoleModel says it is
  int64_t requests = 0;  ///< requests served
  int64_t failures = 0;  ///< requests answered with an error
  Metrics last_metrics;  ///< of the last train step
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, RoleState& x) {
  return f(caf::meta::type_name("troupe::RoleState"), x.id, x.node, x.model, x.requests, x.failures,
           x.last_metrics);
}

/// States of every rank of a role (one entry for a single actor).
struct RoleStates {
  std::vector<RoleState> ranks;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, RoleStates& x) {
  return f(caf::meta::type_name("troupe::RoleStates"), x.ranks);
}

/// Asks a node agent to spawn a role actor: which factory, for which role and rank,
/// with string options the factory reads (e.g. "model" = a Hugging Face directory).
struct RoleSpec {
  std::string factory;
  RoleId id;
  std::map<std::string, std::string> options;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, RoleSpec& x) {
  return f(caf::meta::type_name("troupe::RoleSpec"), x.factory, x.id, x.options);
}

/// What a node offers: CPU threads and memory (CUDA devices once placement reports them).
struct NodeResources {
  std::string node;  ///< host:pid
  int64_t cpu_threads = 0;
  int64_t memory_bytes = 0;
  /// The --cluster file's node this process runs on (`troupe worker --node`); empty when
  /// not said.
  std::string cluster_node;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, NodeResources& x) {
  return f(caf::meta::type_name("troupe::NodeResources"), x.node, x.cpu_threads, x.memory_bytes, x.cluster_node);
}

/// Bytes on the wire: nonces, proofs, serialized batches.
using Bytes = std::vector<uint8_t>;

/// An agent's answer to the controller's challenge: its proof of the secret.
struct JoinRequest {
  Bytes agent_nonce;
  Bytes controller_nonce;
  Bytes proof;  ///< HMAC-SHA256(secret, "agent" | agent_nonce | controller_nonce)
  NodeResources resources;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, JoinRequest& x) {
  return f(caf::meta::type_name("troupe::JoinRequest"), x.agent_nonce, x.controller_nonce, x.proof,
           x.resources);
}

/// A file or directory a role's spec names (a model, a tokenizer, a corpus) as the
/// controller sees it, for a worker node that may not have it (no shared file system).
struct StagedPath {
  std::string option_value;         ///< as the spec names it (may be relative)
  std::string absolute;             ///< on the controller's machine
  std::vector<std::string> files;   ///< regular files under it, relative ("" when it is a file)
  std::vector<uint64_t> sizes;      ///< bytes of each
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StagedPath& x) {
  return f(caf::meta::type_name("troupe::StagedPath"), x.option_value, x.absolute, x.files, x.sizes);
}

/// What the controller offers a node before spawning a role there; the node answers
/// with the files (absolute on the controller) it lacks.
struct StageRequest {
  std::vector<StagedPath> paths;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StageRequest& x) {
  return f(caf::meta::type_name("troupe::StageRequest"), x.paths);
}

struct StageReply {
  std::vector<std::string> needed;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StageReply& x) {
  return f(caf::meta::type_name("troupe::StageReply"), x.needed);
}

/// Bytes [offset, offset + bytes.size()) of a file of `size` bytes the node asked for.
struct FileChunk {
  std::string path;  ///< absolute on the controller, as in StageReply
  uint64_t offset = 0;
  uint64_t size = 0;
  std::vector<char> bytes;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, FileChunk& x) {
  return f(caf::meta::type_name("troupe::FileChunk"), x.path, x.offset, x.size, x.bytes);
}

}  // namespace troupe::actors

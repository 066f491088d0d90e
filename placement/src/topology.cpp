#include <troupe/placement/topology.hpp>

#include <algorithm>
#include <set>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>

namespace troupe::placement {
namespace {

constexpr Role kRoles[] = {Role::Actor, Role::Critic, Role::Reference, Role::Reward};

std::optional<Role> parse_role(const std::string& name) {
  for (auto role : kRoles)
    if (name == role_name(role)) return role;
  return std::nullopt;
}

/// Reads fields of one JSON object with errors that name `source: path.field`.
class Fields {
 public:
  Fields(const nlohmann::json& object, std::string source, std::string path, const std::set<std::string>& allowed)
      : object_(object), source_(std::move(source)), path_(std::move(path)) {
    if (!object.is_object()) throw Error(where("") + "expected an object");
    for (const auto& [key, value] : object.items())
      if (!allowed.count(key)) {
        std::string known;
        for (const auto& k : allowed) known += (known.empty() ? "" : ", ") + k;
        throw Error(where(key) + "unknown field (known: " + known + ")");
      }
  }

  std::string where(const std::string& field) const {
    std::string path = path_;
    if (!field.empty()) path += (path.empty() ? "" : ".") + field;
    return source_ + ": " + (path.empty() ? "" : path + ": ");
  }

  int64_t integer(const std::string& field, int64_t fallback, int64_t min, int64_t max) const {
    if (!object_.contains(field)) return fallback;
    const auto& v = object_.at(field);
    if (!v.is_number_integer()) throw Error(where(field) + v.dump() + " is not an integer");
    const auto value = v.get<int64_t>();
    if (value < min || value > max)
      throw Error(where(field) + std::to_string(value) + " is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    return value;
  }

  bool boolean(const std::string& field, bool fallback) const {
    if (!object_.contains(field)) return fallback;
    const auto& v = object_.at(field);
    if (!v.is_boolean()) throw Error(where(field) + v.dump() + " is not true or false");
    return v.get<bool>();
  }

  std::string string(const std::string& field, const std::string& fallback) const {
    if (!object_.contains(field)) return fallback;
    const auto& v = object_.at(field);
    if (!v.is_string()) throw Error(where(field) + v.dump() + " is not a string");
    return v.get<std::string>();
  }

 private:
  const nlohmann::json& object_;
  std::string source_, path_;
};

RoleSpec parse_role_spec(Role role, const nlohmann::json& json, const std::string& source) {
  const std::string path = std::string("roles.") + role_name(role);
  Fields f(json, source, path,
           {"model", "devices", "dp", "tp", "inference_tp_size", "zero_stage", "reduce_bucket_size", "zero3_prefetch_layers", "offload_optimizer", "offload_params", "lora_dim",
            "only_optimize_lora", "gradient_checkpointing"});
  RoleSpec spec;
  spec.role = role;
  spec.model = f.string("model", "");
  spec.devices = static_cast<int>(f.integer("devices", 1, 1, 1 << 20));
  spec.tp = static_cast<int>(f.integer("tp", 1, 1, 1 << 20));
  if (spec.devices % spec.tp != 0)
    throw Error(f.where("tp") + std::to_string(spec.tp) + " does not divide device count " + std::to_string(spec.devices));
  spec.dp = static_cast<int>(f.integer("dp", spec.devices / spec.tp, 1, 1 << 20));
  if (spec.dp * spec.tp != spec.devices)
    throw Error(f.where("dp") + std::to_string(spec.dp) + " * tp " + std::to_string(spec.tp) + " != device count " +
                std::to_string(spec.devices));
  spec.inference_tp_size = static_cast<int>(f.integer("inference_tp_size", 1, 1, 1 << 20));
  if (spec.inference_tp_size != 1 && role != Role::Actor)
    throw Error(f.where("inference_tp_size") + std::string(role_name(role)) +
                " does not generate; the generation layout is the actor's");
  if (spec.devices % spec.inference_tp_size != 0)
    throw Error(f.where("inference_tp_size") + std::to_string(spec.inference_tp_size) + " does not divide device count " +
                std::to_string(spec.devices));
  spec.zero_stage = static_cast<int>(f.integer("zero_stage", 0, 0, 3));
  spec.reduce_bucket_size = f.integer("reduce_bucket_size", spec.reduce_bucket_size, 1, int64_t{1} << 50);
  spec.zero3_prefetch_layers = static_cast<int>(f.integer("zero3_prefetch_layers", spec.zero3_prefetch_layers, 0, 1 << 20));
  // Each applies to one stage only: set at another, it would be read and then ignored.
  for (const auto& [field, stage] : {std::pair<const char*, int>{"reduce_bucket_size", 2}, {"zero3_prefetch_layers", 3}})
    if (json.contains(field) && spec.zero_stage != stage)
      throw Error(f.where(field) + "applies to zero_stage " + std::to_string(stage) + ", and this role has zero_stage " +
                  std::to_string(spec.zero_stage));
  spec.offload_optimizer = f.boolean("offload_optimizer", false);
  spec.offload_params = f.boolean("offload_params", false);
  spec.lora_dim = static_cast<int>(f.integer("lora_dim", 0, 0, 1 << 16));
  spec.only_optimize_lora = f.boolean("only_optimize_lora", true);
  spec.gradient_checkpointing = f.boolean("gradient_checkpointing", false);
  // DeepSpeed's own rules: parameter offload is a ZeRO-3 feature; optimizer offload
  // needs the optimizer state partitioned (stage 1 or more).
  if (spec.offload_params && spec.zero_stage != 3)
    throw Error(f.where("offload_params") + "needs zero_stage 3 (has " + std::to_string(spec.zero_stage) + ")");
  if (spec.offload_optimizer && !role_trains(role))
    throw Error(f.where("offload_optimizer") + std::string(role_name(role)) + " does not train and has no optimizer");
  if (spec.offload_optimizer && spec.zero_stage == 0)
    throw Error(f.where("offload_optimizer") + "needs zero_stage 1, 2 or 3 (has 0)");
  if (spec.lora_dim > 0 && !role_trains(role))
    throw Error(f.where("lora_dim") + std::string(role_name(role)) + " does not train; LoRA applies to actor and critic");
  return spec;
}

}  // namespace

const char* role_name(Role role) {
  switch (role) {
    case Role::Actor: return "actor";
    case Role::Critic: return "critic";
    case Role::Reference: return "reference";
    case Role::Reward: return "reward";
  }
  return "?";
}

bool role_trains(Role role) { return role == Role::Actor || role == Role::Critic; }

const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::Fp16: return "fp16";
    case Precision::Bf16: return "bf16";
    case Precision::Fp32: return "fp32";
  }
  return "?";
}

int precision_bytes(Precision precision) { return precision == Precision::Fp32 ? 4 : 2; }

const RoleSpec* Topology::find(Role role) const {
  for (const auto& spec : roles)
    if (spec.role == role) return &spec;
  return nullptr;
}

std::string Topology::set_name(const std::vector<Role>& set) {
  std::string name;
  for (auto role : set) name += (name.empty() ? "" : "+") + std::string(role_name(role));
  return name;
}

Topology parse_topology(const nlohmann::json& json, const std::string& source) {
  Fields top(json, source, "",
             {"precision", "inference_precision", "inference_weights", "strategy", "cpu_threads_per_device", "batch", "roles", "colocate"});
  Topology topology;
  topology.source = source;
  const auto precision = top.string("precision", "fp16");
  if (precision == "fp16") topology.precision = Precision::Fp16;
  else if (precision == "bf16") topology.precision = Precision::Bf16;
  else if (precision == "fp32") topology.precision = Precision::Fp32;
  else throw Error(top.where("precision") + "\"" + precision + "\" is not fp16, bf16 or fp32");
  const auto inference = top.string("inference_precision", "fp32");
  if (inference == "bf16") topology.inference_precision = Precision::Bf16;
  else if (inference == "fp32") topology.inference_precision = Precision::Fp32;
  else throw Error(top.where("inference_precision") + "\"" + inference + "\" is not fp32 or bf16");
  const auto weights = top.string("inference_weights", "packed");
  if (weights != "packed" && weights != "training")
    throw Error(top.where("inference_weights") + "\"" + weights + "\" is not packed or training");
  topology.packed_inference_weights = weights == "packed";
  if (!topology.packed_inference_weights && topology.inference_precision != Precision::Fp32)
    throw Error(top.where("inference_weights") + "\"training\" computes with the fp32 training weights; "
                "inference_precision must be fp32");
  topology.strategy = parse_strategy(top.string("strategy", "PACK"), source + ": strategy");
  topology.cpu_threads_per_device = static_cast<int>(top.integer("cpu_threads_per_device", 1, 1, 1 << 16));

  if (json.contains("batch")) {
    Fields b(json.at("batch"), source, "batch", {"generation_batch_size", "training_batch_size", "prompt_len", "answer_len"});
    auto& batch = topology.batch;
    batch.generation_batch_size = b.integer("generation_batch_size", batch.generation_batch_size, 1, int64_t{1} << 24);
    batch.training_batch_size = b.integer("training_batch_size", batch.training_batch_size, 1, int64_t{1} << 24);
    batch.prompt_len = b.integer("prompt_len", batch.prompt_len, 1, int64_t{1} << 24);
    batch.answer_len = b.integer("answer_len", batch.answer_len, 1, int64_t{1} << 24);
  }

  if (!json.contains("roles")) throw Error(source + ": roles: missing (at least \"actor\")");
  const auto& roles = json.at("roles");
  if (!roles.is_object()) throw Error(source + ": roles: expected an object keyed by role name");
  for (const auto& [name, value] : roles.items())
    if (!parse_role(name)) throw Error(source + ": roles." + name + ": unknown role (expected actor, critic, reference or reward)");
  for (auto role : kRoles)
    if (roles.contains(role_name(role))) topology.roles.push_back(parse_role_spec(role, roles.at(role_name(role)), source));
  if (!topology.find(Role::Actor)) throw Error(source + ": roles.actor: missing (every run has an actor)");

  std::set<Role> placed;
  if (!json.contains("colocate")) {
    std::vector<Role> all;
    for (const auto& spec : topology.roles) all.push_back(spec.role);
    topology.colocate.push_back(all);
    placed.insert(all.begin(), all.end());
  } else {
    const auto& sets = json.at("colocate");
    if (!sets.is_array()) throw Error(source + ": colocate: expected a list of role lists, e.g. [[\"actor\", \"reference\"]]");
    for (size_t i = 0; i < sets.size(); ++i) {
      const auto where = source + ": colocate[" + std::to_string(i) + "]";
      if (!sets[i].is_array() || sets[i].empty()) throw Error(where + ": expected a non-empty list of role names");
      std::vector<Role> set;
      for (const auto& item : sets[i]) {
        const auto role = item.is_string() ? parse_role(item.get<std::string>()) : std::nullopt;
        if (!role) throw Error(where + ": " + item.dump() + " is not a role (actor, critic, reference, reward)");
        if (!topology.find(*role)) throw Error(where + ": " + role_name(*role) + " is not among roles");
        if (!placed.insert(*role).second) throw Error(where + ": " + role_name(*role) + " is already in another colocation set");
        set.push_back(*role);
      }
      const auto* first = topology.find(set.front());
      for (auto role : set) {
        const auto* spec = topology.find(role);
        if (spec->devices != first->devices)
          throw Error(where + ": " + role_name(first->role) + " has " + std::to_string(first->devices) + " devices, " +
                      role_name(role) + " has " + std::to_string(spec->devices) +
                      "; colocated roles share their devices and need the same count");
      }
      topology.colocate.push_back(set);
    }
  }
  for (const auto& spec : topology.roles)
    if (!placed.count(spec.role)) topology.colocate.push_back({spec.role});
  return topology;
}

Topology load_topology(const std::filesystem::path& path) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(read_file(path), nullptr, true, /*ignore_comments=*/true);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path.string() + ": not valid JSON: " + e.what());
  }
  return parse_topology(json, path.filename().string());
}

Topology default_topology() {
  return parse_topology(nlohmann::json::parse(R"({"roles": {"actor": {}, "critic": {}, "reference": {}, "reward": {}}})"),
                        "default topology");
}

nlohmann::json to_json(const Topology& topology) {
  nlohmann::json roles = nlohmann::json::object();
  for (const auto& r : topology.roles) {
    roles[role_name(r.role)] = {{"model", r.model},
                                {"devices", r.devices},
                                {"dp", r.dp},
                                {"tp", r.tp},
                                {"inference_tp_size", r.inference_tp_size},
                                {"zero_stage", r.zero_stage},
                                {"reduce_bucket_size", r.reduce_bucket_size},
                                {"zero3_prefetch_layers", r.zero3_prefetch_layers},
                                {"offload_optimizer", r.offload_optimizer},
                                {"offload_params", r.offload_params},
                                {"lora_dim", r.lora_dim},
                                {"only_optimize_lora", r.only_optimize_lora},
                                {"gradient_checkpointing", r.gradient_checkpointing}};
    if (r.model.empty()) roles[role_name(r.role)].erase("model");
    if (r.zero_stage != 2) roles[role_name(r.role)].erase("reduce_bucket_size");
    if (r.zero_stage != 3) roles[role_name(r.role)].erase("zero3_prefetch_layers");
  }
  auto colocate = nlohmann::json::array();
  for (const auto& set : topology.colocate) {
    auto names = nlohmann::json::array();
    for (auto role : set) names.push_back(role_name(role));
    colocate.push_back(names);
  }
  return {{"precision", precision_name(topology.precision)},
          {"inference_precision", precision_name(topology.inference_precision)},
          {"inference_weights", topology.packed_inference_weights ? "packed" : "training"},
          {"strategy", strategy_name(topology.strategy)},
          {"cpu_threads_per_device", topology.cpu_threads_per_device},
          {"batch",
           {{"generation_batch_size", topology.batch.generation_batch_size},
            {"training_batch_size", topology.batch.training_batch_size},
            {"prompt_len", topology.batch.prompt_len},
            {"answer_len", topology.batch.answer_len}}},
          {"roles", roles},
          {"colocate", colocate}};
}

}  // namespace troupe::placement

/// load_role_model: a step-3 role's model as the run configures it.
#include "step3_models.hpp"

#include <optional>

#include <troupe/common/error.hpp>
#include <troupe/models/frozen_weights.hpp>
#include <troupe/models/lora.hpp>
#include <troupe/models/pretrained.hpp>

namespace troupe::actors {

models::CausalLM load_role_model(const std::filesystem::path& dir, const RoleModelOptions& options, const std::string& role) {
  if (dir.empty()) throw Error("step 3: no " + role + " model given");
  models::LoadOptions load;
  load.device = options.device;
  load.value_head = options.value_head;
  auto model = models::load_pretrained(dir, load);
  if (options.lora_dim > 0) {
    models::LoraOptions lora;
    lora.rank = options.lora_dim;
    lora.module_filter = options.lora_module_name;
    models::apply_lora(*model, lora);
    if (options.only_optimize_lora) models::only_optimize_lora(*model);
  }
  if (options.compute_dtype != torch::kFloat32) models::store_frozen_linears_in(*model, options.compute_dtype);
  model->set_gradient_checkpointing(options.gradient_checkpointing);
  if (options.dropout) models::set_dropout(*model, *options.dropout);
  return model;
}

RankModel load_rank_model(const std::filesystem::path& dir, const RoleModelOptions& options, const std::string& role,
                          const DataParallel* group) {
  std::optional<models::PartitionedInit> partitioned;
  if (group && group->partitions_parameters()) partitioned.emplace(group->rank(), group->world());
  RankModel built{load_role_model(dir, options, role), nullptr};
  if (partitioned) built.partitioned = partitioned->layers();
  return built;
}

}  // namespace troupe::actors

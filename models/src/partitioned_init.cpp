/// Partitioned construction (DeepSpeed's zero.Init): decoder layers cut to this rank's
/// chunk as they are built.
#include <troupe/models/partitioned_init.hpp>

#include <algorithm>
#include <regex>
#include <sstream>

#include <torch/torch.h>

#include <troupe/common/error.hpp>

namespace troupe::models {
namespace {

thread_local PartitionedInit* open_scope = nullptr;

int64_t bytes_of(const torch::Tensor& t) { return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0; }

}  // namespace

std::optional<std::pair<int64_t, std::string>> decoder_layer_of(const std::string& name) {
  // model.layers.3., model.decoder.layers.3., transformer.h.3.
  static const std::regex layer_name(R"((^|\.)(layers|h)\.(\d+)\.)");
  std::smatch match;
  if (!std::regex_search(name, match, layer_name)) return std::nullopt;
  return std::make_pair(std::stoll(match[3].str()), name.substr(static_cast<size_t>(match.position(0) + match.length(0))));
}

PartitionedLayers::Parameter* PartitionedLayers::find(const std::string& name) {
  const auto place = decoder_layer_of(name);
  if (!place) return nullptr;
  auto* found = layer(place->first);
  if (!found) return nullptr;
  auto it = found->parameters.find(place->second);
  return it == found->parameters.end() ? nullptr : &it->second;
}

PartitionedLayers::Layer* PartitionedLayers::layer(int64_t index) {
  auto it = layers_.find(index);
  return it == layers_.end() ? nullptr : &it->second;
}

void PartitionedLayers::release(int64_t index) { layers_.erase(index); }

int64_t PartitionedLayers::held_bytes() const {
  int64_t total = 0;
  for (const auto& [index, layer] : layers_) total += bytes_of(layer.built);
  return total;
}

PartitionedInit::PartitionedInit(int rank, int world) {
  if (world < 1 || rank < 0 || rank >= world)
    throw Error("partitioned construction: rank " + std::to_string(rank) + " is outside a world of " + std::to_string(world));
  if (open_scope) throw Error("partitioned construction: a scope is already open on this thread");
  layers_ = std::make_shared<PartitionedLayers>(rank, world);
  open_scope = this;
}

PartitionedInit::~PartitionedInit() { open_scope = nullptr; }

PartitionedInit* PartitionedInit::current() { return open_scope; }

void PartitionedInit::take_built_layer(torch::nn::Module& layer, int64_t index) {
  if (open_scope) open_scope->take(layer, index);
}

void PartitionedInit::take(torch::nn::Module& module, int64_t index) {
  torch::NoGradGuard no_grad;
  const int64_t world = layers_->world(), rank = layers_->rank();
  PartitionedLayers::Layer layer;
  const auto parameters = module.named_parameters();
  if (parameters.is_empty()) return;
  const auto& first = parameters.begin()->value();
  const auto options = first.options().requires_grad(false);
  for (const auto& item : parameters) {
    const auto& p = item.value();
    if (p.scalar_type() != first.scalar_type() || p.device() != first.device())
      throw Error("partitioned construction: decoder layer " + std::to_string(index) + " mixes dtypes or devices (" +
                  item.key() + ")");
    layer.parameters[item.key()] = {p.sizes().vec(), layer.numel, {}};
    layer.numel += p.numel();
  }
  layer.chunk = (layer.numel + world - 1) / world;
  if (keep_built_values_) {
    // (C) this rank's elements of the layer flattened in module order; padding stays zero.
    const int64_t begin = rank * layer.chunk, end = begin + layer.chunk;
    layer.built = torch::zeros({layer.chunk}, options);
    for (const auto& item : parameters) {
      const auto& p = item.value();
      const int64_t offset = layer.parameters.at(item.key()).offset;
      const int64_t from = std::max(begin, offset), to = std::min(end, offset + p.numel());
      if (from < to) layer.built.narrow(0, from - begin, to - from).copy_(p.detach().reshape({-1}).narrow(0, from - offset, to - from));
    }
  }
  for (const auto& item : parameters) {
    auto p = item.value();
    p.set_data(torch::empty({0}, p.options()));  // the whole value is gone
  }
  layers_->layers_[index] = std::move(layer);
}

void PartitionedInit::set_source(const std::string& name, const torch::Tensor& value, const std::string& where) {
  auto* parameter = layers_->find(name);
  if (!parameter) throw Error(where + ": \"" + name + "\" is not a parameter of a partitioned decoder layer");
  if (value.sizes().vec() != parameter->shape) {
    std::ostringstream msg;
    msg << where << ": weight \"" << name << "\" has shape " << value.sizes() << ", the config implies "
        << c10::IntArrayRef(parameter->shape);
    throw Error(msg.str());
  }
  parameter->source = value;
  // The value comes from here: the build's chunk of this layer is no longer needed once
  // every parameter has a source.
  auto* layer = layers_->layer(decoder_layer_of(name)->first);
  const bool all = std::all_of(layer->parameters.begin(), layer->parameters.end(),
                               [](const auto& item) { return item.second.source.defined(); });
  if (all) layer->built = torch::Tensor();
}

}  // namespace troupe::models

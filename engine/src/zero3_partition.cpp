/// ZeRO stage 3: the flat-chunk partition of a trained model and its layer hooks.
#include <troupe/engine/zero3.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <regex>
#include <utility>

#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/engine/optimizer.hpp>

namespace troupe::engine {
namespace {

int64_t bytes_of(const torch::Tensor& t) { return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0; }

/// The 0-element tensor a partitioned parameter holds outside a gather (same dtype and
/// device, so set_data accepts the gathered view later).
torch::Tensor placeholder(const torch::Tensor& like) { return torch::empty({0}, like.options()); }

}  // namespace

int64_t Zero3Partition::Flat::gathered_bytes() const { return bytes_of(gathered); }

Zero3Partition::Zero3Partition(models::CausalLM model, Zero3Collectives collectives)
    : model_(std::move(model)), collectives_(std::move(collectives)) {
  const int world = collectives_.world, rank = collectives_.rank;
  if (!model_) throw Error("ZeRO stage 3: no model");
  if (world < 1 || rank < 0 || rank >= world)
    throw Error("ZeRO stage 3: rank " + std::to_string(rank) + " is outside a world of " + std::to_string(world));
  if (!collectives_.all_gather || !collectives_.reduce_scatter_sum || !collectives_.all_reduce_sum)
    throw Error("ZeRO stage 3: needs all_gather, reduce_scatter_sum and all_reduce_sum collectives");
  // Decoder layers by their Hugging Face names: model.layers.3., model.decoder.layers.3.,
  // transformer.h.3.
  static const std::regex layer_name(R"((^|\.)(layers|h)\.(\d+)\.)");
  // Per layer, per (group, dtype): the parameters in model order.
  std::vector<std::map<std::pair<int, int>, std::vector<torch::Tensor>>> by_layer;
  std::vector<std::pair<int, torch::Tensor>> kept_trainable;  // (group, parameter)
  for (const auto& item : unique_named_parameters(*model_)) {
    const auto& parameter = item.value();
    whole_bytes_ += bytes_of(parameter);
    const int group = parameter.requires_grad() ? static_cast<int>(param_group_of(item.key(), parameter)) : kFrozen;
    std::smatch match;
    if (!std::regex_search(item.key(), match, layer_name)) {
      kept_bytes_ += bytes_of(parameter);
      if (parameter.requires_grad()) {
        kept_trainable.emplace_back(group, parameter);
      } else {
        resident_bytes_ += bytes_of(parameter);  // frozen and whole: left as it is
      }
      continue;
    }
    const auto layer = static_cast<size_t>(std::stoll(match[3].str()));
    if (by_layer.size() <= layer) by_layer.resize(layer + 1);
    by_layer[layer][{group, static_cast<int>(parameter.scalar_type())}].push_back(parameter);
  }
  if (by_layer.empty())
    throw Error("ZeRO stage 3: the model has no decoder layer parameters (names with layers.N. or h.N.)");

  torch::NoGradGuard no_grad;
  layers_.resize(by_layer.size());
  for (size_t l = 0; l < by_layer.size(); ++l) {
    if (by_layer[l].empty()) throw Error("ZeRO stage 3: decoder layer " + std::to_string(l) + " has no parameters");
    for (auto& [key, parameters] : by_layer[l]) {
      layers_[l].flats.push_back(make_flat(key.first, std::move(parameters)));
      auto& flat = layers_[l].flats.back();
      for (auto& p : flat.parameters) p.set_data(placeholder(p));  // the whole weight is gone until gathered
      flat.gathered = torch::Tensor();
    }
  }
  for (auto& [group, parameter] : kept_trainable) {
    kept_.push_back(make_flat(group, {parameter}, /*keep_whole=*/true));
    auto& flat = kept_.back();
    // The whole value stays, as a view of the gathered buffer the step's all-gather fills.
    flat.parameters[0].set_data(flat.gathered.narrow(0, 0, flat.numel).view(flat.shapes[0]));
  }
  for (const auto& flat : kept_) masters_[static_cast<size_t>(flat.group)].push_back(flat.master);
  for (const auto& layer : layers_)
    for (const auto& flat : layer.flats)
      if (flat.group != kFrozen) masters_[static_cast<size_t>(flat.group)].push_back(flat.master);
  peak_bytes_ = resident_bytes_;

  models::CausalLMImpl::LayerHooks hooks;
  hooks.before = [this](int64_t layer) { gather(layer); };
  hooks.after = [this](int64_t layer) { release(layer); };
  hooks.after_backward = [this](int64_t layer) { after_backward(layer); };
  model_->set_layer_hooks(std::move(hooks));
}

Zero3Partition::~Zero3Partition() {
  if (model_) model_->set_layer_hooks({});
}

Zero3Partition::Flat Zero3Partition::make_flat(int group, std::vector<torch::Tensor> parameters, bool keep_whole) {
  const int64_t world = collectives_.world;
  Flat flat;
  flat.group = group;
  for (const auto& p : parameters) {
    flat.shapes.push_back(p.sizes().vec());
    flat.offsets.push_back(flat.numel);
    flat.numel += p.numel();
  }
  flat.chunk = (flat.numel + world - 1) / world;
  const auto& first = parameters.front();
  flat.gathered = torch::zeros({flat.chunk * world}, first.options().requires_grad(false));  // (world * C)
  for (size_t i = 0; i < parameters.size(); ++i)
    flat.gathered.narrow(0, flat.offsets[i], parameters[i].numel()).copy_(parameters[i].detach().reshape({-1}));
  // (C) this rank's chunk: its own storage in a layer (the gathered buffer goes), a view
  // of the whole buffer in a kept-whole parameter (the step updates the whole value's
  // own slice in place, and the all-gather finds it there).
  flat.master = flat.gathered.narrow(0, collectives_.rank * flat.chunk, flat.chunk);
  if (!keep_whole) flat.master = flat.master.clone();
  if (group != kFrozen) flat.master.requires_grad_(true);
  flat.parameters = std::move(parameters);
  resident_bytes_ += keep_whole ? flat.gathered_bytes() : bytes_of(flat.master);
  // Padding sits in the last chunks; count what this rank's chunk holds of it.
  const int64_t begin = collectives_.rank * flat.chunk;
  padding_bytes_ += std::max<int64_t>(0, std::min(flat.chunk, begin + flat.chunk - flat.numel)) *
                    static_cast<int64_t>(flat.master.element_size());
  return flat;
}

int64_t Zero3Partition::largest_layer_bytes() const {
  int64_t largest = 0;
  for (const auto& layer : layers_) {
    int64_t bytes = 0;
    for (const auto& flat : layer.flats) bytes += flat.chunk * collectives_.world * flat.master.element_size();
    largest = std::max(largest, bytes);
  }
  return largest;
}

void Zero3Partition::add_resident(int64_t bytes) {
  resident_bytes_ += bytes;
  peak_bytes_ = std::max(peak_bytes_, resident_bytes_);
}

Zero3Partition::Layer& Zero3Partition::layer_at(int64_t layer, const char* where) {
  if (layer < 0 || layer >= layer_count())
    throw Error(std::string("ZeRO stage 3 ") + where + ": layer " + std::to_string(layer) + " of " +
                std::to_string(layer_count()));
  return layers_[static_cast<size_t>(layer)];
}

void Zero3Partition::gather_flat(Flat& flat) {
  collectives_.all_gather(flat.master.detach(), flat.gathered);
  TORCH_CHECK(flat.gathered.numel() == flat.chunk * collectives_.world, "all_gather changed the flat's size");
  received_bytes_ += flat.chunk * (collectives_.world - 1) * flat.master.element_size();  // the other ranks' chunks
}

void Zero3Partition::gather(int64_t index) {
  auto& layer = layer_at(index, "gather");
  if (layer.holds++ > 0) return;  // already whole (a FullParameters scope)
  torch::NoGradGuard no_grad;
  for (auto& flat : layer.flats) {
    flat.gathered = torch::empty({flat.chunk * collectives_.world}, flat.master.options().requires_grad(false));
    gather_flat(flat);
    for (size_t i = 0; i < flat.parameters.size(); ++i)
      flat.parameters[i].set_data(
          flat.gathered.narrow(0, flat.offsets[i], c10::multiply_integers(flat.shapes[i])).view(flat.shapes[i]));
    add_resident(flat.gathered_bytes());
  }
}

void Zero3Partition::release(int64_t index) {
  auto& layer = layer_at(index, "release");
  if (layer.holds <= 0) throw Error("ZeRO stage 3: layer " + std::to_string(index) + " released but not gathered");
  if (--layer.holds > 0) return;
  torch::NoGradGuard no_grad;
  for (auto& flat : layer.flats) {
    for (auto& p : flat.parameters) p.set_data(placeholder(p));
    resident_bytes_ -= flat.gathered_bytes();
    flat.gathered = torch::Tensor();
  }
}

void Zero3Partition::reduce_scatter_flat(Flat& flat) {
  torch::NoGradGuard no_grad;
  auto buffer = torch::zeros({flat.chunk * collectives_.world}, flat.master.options().requires_grad(false));  // (world * C)
  for (size_t i = 0; i < flat.parameters.size(); ++i) {
    auto& p = flat.parameters[i];
    if (!p.grad().defined()) continue;
    buffer.narrow(0, flat.offsets[i], p.grad().numel()).copy_(p.grad().reshape({-1}));
    p.mutable_grad() = torch::Tensor();  // the full gradient goes now; its share lives in the chunk
  }
  auto share = torch::empty({flat.chunk}, buffer.options());  // (C)
  collectives_.reduce_scatter_sum(buffer, share);
  share.div_(static_cast<double>(collectives_.world));
  auto& grad = flat.master.mutable_grad();
  if (grad.defined()) {
    grad.add_(share);
  } else {
    grad = share;
  }
}

void Zero3Partition::after_backward(int64_t index) {
  auto& layer = layer_at(index, "after_backward");
  for (auto& flat : layer.flats)
    if (flat.group != kFrozen) reduce_scatter_flat(flat);
  release(index);
}

void Zero3Partition::reduce_scatter_kept_gradients() {
  if (kept_.empty()) return;
  torch::NoGradGuard no_grad;
  // Which kept parameters have a gradient on some rank: those reduce-scatter (zeros
  // where a rank has none); the others stay without one.
  auto flags = torch::zeros({static_cast<int64_t>(kept_.size())}, torch::kFloat32);  // (kept)
  auto flag = flags.accessor<float, 1>();
  for (size_t i = 0; i < kept_.size(); ++i)
    if (kept_[i].parameters[0].grad().defined()) flag[static_cast<int64_t>(i)] = 1.0f;
  // On the parameters' device: a GPU group's collectives take GPU tensors.
  auto present = flags.to(kept_.front().master.device());
  collectives_.all_reduce_sum(present);
  const auto summed = present.cpu();
  const auto anywhere = summed.accessor<float, 1>();
  for (size_t i = 0; i < kept_.size(); ++i)
    if (anywhere[static_cast<int64_t>(i)] != 0.0f) reduce_scatter_flat(kept_[i]);
}

double Zero3Partition::clip_gradients(double max_norm) {
  torch::NoGradGuard no_grad;
  const auto device = layers_.front().flats.front().master.device();
  auto squares = torch::zeros({1}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
  for (const auto& group : masters_)
    for (const auto& master : group)
      if (master.grad().defined()) squares += master.grad().to(torch::kFloat64).pow(2).sum();
  collectives_.all_reduce_sum(squares);
  const double norm = std::sqrt(squares.item<double>());
  const double coefficient = max_norm / (norm + 1e-6);
  if (coefficient < 1.0)
    for (auto& group : masters_)
      for (auto& master : group)
        if (master.grad().defined()) master.mutable_grad().mul_(coefficient);
  return norm;
}

void Zero3Partition::gather_kept_parameters() {
  torch::NoGradGuard no_grad;
  for (auto& flat : kept_) gather_flat(flat);  // the parameter is a view of flat.gathered
}

Zero3Partition::FullParameters Zero3Partition::gather_full_parameters(bool write_back) {
  return FullParameters(*this, write_back);
}

Zero3Partition::FullParameters::FullParameters(Zero3Partition& owner, bool write_back)
    : owner_(&owner), write_back_(write_back) {
  int64_t gathered = 0;
  try {
    for (; gathered < owner.layer_count(); ++gathered) owner.gather(gathered);
  } catch (...) {
    for (int64_t l = 0; l < gathered; ++l) owner.release(l);
    throw;
  }
}

Zero3Partition::FullParameters::FullParameters(FullParameters&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), write_back_(other.write_back_) {}

Zero3Partition::FullParameters::~FullParameters() {
  if (!owner_) return;
  torch::NoGradGuard no_grad;
  if (write_back_) {
    const int64_t begin = owner_->collectives_.rank;
    auto write_back = [&](Flat& flat) {
      for (size_t i = 0; i < flat.parameters.size(); ++i) {
        // A loader may have replaced the parameter's storage instead of writing into the view.
        auto slot = flat.gathered.narrow(0, flat.offsets[i], c10::multiply_integers(flat.shapes[i]));
        const auto& p = flat.parameters[i];
        if (p.data_ptr() != slot.data_ptr()) slot.copy_(p.detach().reshape({-1}));
      }
      flat.master.detach().copy_(flat.gathered.narrow(0, begin * flat.chunk, flat.chunk));
    };
    for (auto& layer : owner_->layers_)
      for (auto& flat : layer.flats) write_back(flat);
    for (auto& flat : owner_->kept_) {
      write_back(flat);
      // Back to a view of the buffer, in case the loader replaced the storage.
      flat.parameters[0].set_data(flat.gathered.narrow(0, 0, flat.numel).view(flat.shapes[0]));
    }
  }
  for (int64_t l = 0; l < owner_->layer_count(); ++l) owner_->release(l);
}

}  // namespace troupe::engine

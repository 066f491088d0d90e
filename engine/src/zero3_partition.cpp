/// ZeRO stage 3: the flat-chunk partition of a trained model and its layer hooks.
#include <troupe/engine/zero3.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <cstring>
#include <exception>
#include <tuple>
#include <utility>

#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/engine/host_memory.hpp>
#include <troupe/engine/optimizer.hpp>
#include <troupe/models/safetensors.hpp>

namespace troupe::engine {
namespace {

int64_t bytes_of(const torch::Tensor& t) { return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0; }

/// The 0-element tensor a partitioned parameter holds outside a gather (same dtype and
/// device, so set_data accepts the gathered view later).
torch::Tensor placeholder(const torch::Tensor& like) { return torch::empty({0}, like.options()); }

}  // namespace

int64_t Zero3Partition::Flat::gathered_bytes() const { return bytes_of(gathered); }

Zero3Partition::Zero3Partition(models::CausalLM model, Zero3Collectives collectives,
                               std::shared_ptr<models::PartitionedLayers> built, int prefetch_layers)
    : model_(std::move(model)), collectives_(std::move(collectives)), prefetch_layers_(prefetch_layers) {
  const int world = collectives_.world, rank = collectives_.rank;
  if (!model_) throw Error("ZeRO stage 3: no model");
  if (prefetch_layers < 0)
    throw Error("ZeRO stage 3: zero3_prefetch_layers must be 0 (off) or more, got " + std::to_string(prefetch_layers));
  if (world < 1 || rank < 0 || rank >= world)
    throw Error("ZeRO stage 3: rank " + std::to_string(rank) + " is outside a world of " + std::to_string(world));
  if (!collectives_.all_gather || !collectives_.reduce_scatter_sum || !collectives_.all_reduce_sum)
    throw Error("ZeRO stage 3: needs all_gather, reduce_scatter_sum and all_reduce_sum collectives");
  if (built && (built->rank() != rank || built->world() != world))
    throw Error("ZeRO stage 3: the model was built partitioned as rank " + std::to_string(built->rank()) + " of " +
                std::to_string(built->world()) + ", not " + std::to_string(rank) + " of " + std::to_string(world));
  // Per layer, per (group, dtype): the parameters in model order.
  std::vector<std::map<std::pair<int, int>, std::vector<Member>>> by_layer;
  std::vector<std::tuple<int, torch::Tensor, std::string>> kept_trainable;  // (group, parameter, name)
  for (const auto& item : unique_named_parameters(*model_)) {
    const auto& parameter = item.value();
    // A placeholder of a partitioned build counts with its whole shape.
    const auto* record = built && parameter.numel() == 0 ? built->find(item.key()) : nullptr;
    if (parameter.numel() == 0 && !record)
      throw Error("ZeRO stage 3: " + item.key() + " is a placeholder of a partitioned build, and no values for it were "
                  "passed in (give the partition the build's PartitionedLayers)");
    auto shape = record ? record->shape : parameter.sizes().vec();
    const int64_t bytes = c10::multiply_integers(shape) * static_cast<int64_t>(parameter.element_size());
    whole_bytes_ += bytes;
    const auto meta = torch::empty(shape, torch::TensorOptions().device(torch::kMeta));  // its shape, no memory
    const int group = parameter.requires_grad() ? static_cast<int>(param_group_of(item.key(), meta)) : kFrozen;
    const auto layer = models::decoder_layer_of(item.key());
    if (!layer) {
      kept_bytes_ += bytes;
      if (parameter.requires_grad()) {
        kept_trainable.emplace_back(group, parameter, item.key());
      } else {
        resident_bytes_ += bytes;  // frozen and whole: left as it is
      }
      continue;
    }
    const auto index = static_cast<size_t>(layer->first);
    if (by_layer.size() <= index) by_layer.resize(index + 1);
    by_layer[index][{group, static_cast<int>(parameter.scalar_type())}].push_back({parameter, item.key(), std::move(shape)});
  }
  if (by_layer.empty())
    throw Error("ZeRO stage 3: the model has no decoder layer parameters (names with layers.N. or h.N.)");

  torch::NoGradGuard no_grad;
  layers_.resize(by_layer.size());
  for (size_t l = 0; l < by_layer.size(); ++l) {
    if (by_layer[l].empty()) throw Error("ZeRO stage 3: decoder layer " + std::to_string(l) + " has no parameters");
    // A layer built partitioned is whole here once, from every rank's build chunk, while
    // this rank takes its chunks of the flats below; a loaded one is read from its source.
    torch::Tensor whole_built;  // (world * C) the layer's build flat
    auto* record = built ? built->layer(static_cast<int64_t>(l)) : nullptr;
    if (record && record->built.defined()) {
      // On the parameters' device: a GPU group's collectives take GPU tensors.
      const auto chunk = record->built.to(by_layer[l].begin()->second.front().parameter.device());  // (C)
      whole_built = torch::empty({record->chunk * world}, chunk.options());
      collectives_.all_gather(chunk, whole_built);
    }
    for (auto& [key, members] : by_layer[l]) {
      std::vector<torch::Tensor> values;
      for (const auto& member : members) values.push_back(value_of(member, built.get(), whole_built));
      layers_[l].flats.push_back(make_flat(key.first, members, values));
      auto& flat = layers_[l].flats.back();
      for (auto& p : flat.parameters) p.set_data(placeholder(p));  // the whole weight is gone until gathered
    }
    if (built) built->release(static_cast<int64_t>(l));
  }
  for (auto& [group, parameter, name] : kept_trainable) {
    kept_.push_back(make_flat(group, {{parameter, name, parameter.sizes().vec()}}, {parameter}, /*keep_whole=*/true));
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
  hooks.before = [this](int64_t layer) { gather(layer, +1); };
  hooks.before_backward = [this](int64_t layer) { gather(layer, -1); };
  hooks.after = [this](int64_t layer) { release(layer); };
  hooks.after_backward = [this](int64_t layer) { after_backward(layer); };
  model_->set_layer_hooks(std::move(hooks));
}

Zero3Partition::~Zero3Partition() {
  if (model_) model_->set_layer_hooks({});
  try {
    finish_prefetches();  // nothing may still write into the buffers about to go
  } catch (...) {
    // A failed gather: the other ranks see the failure in their own collectives.
  }
}

torch::Tensor Zero3Partition::value_of(const Member& member, models::PartitionedLayers* built,
                                       const torch::Tensor& whole_built) {
  if (member.parameter.numel() == c10::multiply_integers(member.shape)) return member.parameter.detach();
  const auto* record = built->find(member.name);  // the constructor found it
  if (record->source.defined()) return record->source;
  if (!whole_built.defined()) throw Error("ZeRO stage 3: the partitioned build has no values for " + member.name);
  return whole_built.narrow(0, record->offset, c10::multiply_integers(member.shape)).view(member.shape);
}

Zero3Partition::Flat Zero3Partition::make_flat(int group, const std::vector<Member>& members,
                                               const std::vector<torch::Tensor>& values, bool keep_whole) {
  const int64_t world = collectives_.world;
  Flat flat;
  flat.group = group;
  for (const auto& member : members) {
    flat.parameters.push_back(member.parameter);
    flat.names.push_back(member.name);
    flat.shapes.push_back(member.shape);
    flat.offsets.push_back(flat.numel);
    flat.numel += c10::multiply_integers(member.shape);
  }
  flat.chunk = (flat.numel + world - 1) / world;
  const auto options = members.front().parameter.options().requires_grad(false);
  const int64_t begin = collectives_.rank * flat.chunk;
  if (keep_whole) {
    // (C) a view of the whole buffer: the step updates the whole value's own slice in
    // place, and the all-gather finds it there.
    flat.gathered = torch::zeros({flat.chunk * world}, options);  // (world * C)
    for (size_t i = 0; i < values.size(); ++i)
      flat.gathered.narrow(0, flat.offsets[i], values[i].numel()).copy_(values[i].reshape({-1}));
    flat.master = flat.gathered.narrow(0, begin, flat.chunk);
  } else {
    // (C) this rank's chunk in its own storage, copied element range by element range:
    // a value read from a mapped checkpoint is read only where this chunk needs it.
    flat.master = torch::zeros({flat.chunk}, options);
    for (size_t i = 0; i < values.size(); ++i) {
      const int64_t offset = flat.offsets[i], numel = c10::multiply_integers(flat.shapes[i]);
      const int64_t from = std::max(begin, offset), to = std::min(begin + flat.chunk, offset + numel);
      if (from < to)
        flat.master.narrow(0, from - begin, to - from).copy_(values[i].reshape({-1}).narrow(0, from - offset, to - from));
      models::release_mapped_pages(values[i]);  // a checkpoint's pages go once copied
    }
  }
  if (group != kFrozen) flat.master.requires_grad_(true);
  resident_bytes_ += keep_whole ? flat.gathered_bytes() : bytes_of(flat.master);
  // Padding sits in the last chunks; count what this rank's chunk holds of it.
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

void Zero3Partition::gather(int64_t index, int ahead) {
  auto& layer = layer_at(index, "gather");
  if (layer.holds > 0) {  // already whole (a FullParameters scope)
    ++layer.holds;
    return;
  }
  torch::NoGradGuard no_grad;
  if (!in_flight_.empty() && in_flight_.front() == index) {
    in_flight_.pop_front();  // the pass continues as the prefetch foresaw
  } else {
    finish_prefetches();  // another pass, or a layer out of turn: what was started ahead goes first
    start_gather(index, /*ahead=*/false);
  }
  finish_gather(layer);
  use_gathered(layer);
  layer.holds = 1;
  if (ahead == 0) return;
  for (int64_t next = index + ahead, n = 0; n < prefetch_layers_ && next >= 0 && next < layer_count(); next += ahead, ++n) {
    const bool on_its_way = std::find(in_flight_.begin(), in_flight_.end(), next) != in_flight_.end();
    if (on_its_way || layers_[static_cast<size_t>(next)].holds > 0) continue;  // or whole already
    start_gather(next, /*ahead=*/true);
    in_flight_.push_back(next);
  }
}

void Zero3Partition::start_gather(int64_t index, bool ahead) {
  auto& layer = layers_[static_cast<size_t>(index)];
  layer.arrivals.clear();
  try {
    for (auto& flat : layer.flats) {
      flat.gathered = empty_in_huge_pages(flat.chunk * collectives_.world, flat.master.options().requires_grad(false));
      add_resident(flat.gathered_bytes());
      if (ahead && collectives_.start_all_gather) {
        layer.arrivals.push_back(collectives_.start_all_gather(flat.master.detach(), flat.gathered));
        received_bytes_ += flat.chunk * (collectives_.world - 1) * flat.master.element_size();
      } else {
        gather_flat(flat);  // arrived already
      }
    }
  } catch (...) {
    try {
      finish_gather(layer);  // the flats started before the failure; frees the layer's buffers
    } catch (...) {
    }
    free_gathered(layer);
    throw;
  }
}

void Zero3Partition::finish_gather(Layer& layer) {
  auto arrivals = std::move(layer.arrivals);
  layer.arrivals.clear();
  std::exception_ptr failure;
  for (auto& arrival : arrivals) {
    try {
      arrival();  // every one, even after a failure: none may still write into a freed buffer
    } catch (...) {
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) {
    free_gathered(layer);
    std::rethrow_exception(failure);
  }
}

void Zero3Partition::use_gathered(Layer& layer) {
  for (auto& flat : layer.flats) {
    TORCH_CHECK(flat.gathered.numel() == flat.chunk * collectives_.world, "all_gather changed the flat's size");
    for (size_t i = 0; i < flat.parameters.size(); ++i)
      flat.parameters[i].set_data(
          flat.gathered.narrow(0, flat.offsets[i], c10::multiply_integers(flat.shapes[i])).view(flat.shapes[i]));
  }
}

void Zero3Partition::free_gathered(Layer& layer) {
  for (auto& flat : layer.flats) {
    for (auto& p : flat.parameters) p.set_data(placeholder(p));
    resident_bytes_ -= flat.gathered_bytes();
    flat.gathered = torch::Tensor();
  }
}

void Zero3Partition::finish_prefetches() {
  torch::NoGradGuard no_grad;
  std::exception_ptr failure;
  while (!in_flight_.empty()) {
    auto& layer = layers_[static_cast<size_t>(in_flight_.front())];
    in_flight_.pop_front();
    try {
      finish_gather(layer);
    } catch (...) {
      if (!failure) failure = std::current_exception();
      continue;  // freed already
    }
    free_gathered(layer);
  }
  if (failure) std::rethrow_exception(failure);
}

void Zero3Partition::release(int64_t index) {
  auto& layer = layer_at(index, "release");
  if (layer.holds <= 0) throw Error("ZeRO stage 3: layer " + std::to_string(index) + " released but not gathered");
  if (--layer.holds > 0) return;
  torch::NoGradGuard no_grad;
  free_gathered(layer);
}

void Zero3Partition::reduce_scatter_flat(Flat& flat) {
  torch::NoGradGuard no_grad;
  auto buffer = empty_in_huge_pages(flat.chunk * collectives_.world, flat.master.options().requires_grad(false));  // (world * C)
  buffer.zero_();  // a parameter without a gradient, and the padding, reduce as zeros
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
  if (sliced_) throw Error("ZeRO stage 3: a backward pass while the layers are tensor-parallel slices");
  auto& layer = layer_at(index, "after_backward");
  for (auto& flat : layer.flats)
    if (flat.group != kFrozen) reduce_scatter_flat(flat);
  release(index);
}

void Zero3Partition::reduce_scatter_kept_gradients() {
  finish_prefetches();
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
  finish_prefetches();
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
  finish_prefetches();
  torch::NoGradGuard no_grad;
  for (auto& flat : kept_) gather_flat(flat);  // the parameter is a view of flat.gathered
}

Zero3Partition::FullParameters Zero3Partition::gather_full_parameters(bool write_back) {
  return FullParameters(*this, write_back);
}

Zero3Partition::FullParameters::FullParameters(Zero3Partition& owner, bool write_back)
    : owner_(&owner), write_back_(write_back) {
  if (owner.sliced_) throw Error("ZeRO stage 3: the whole parameters were asked for while the layers are tensor-parallel slices");
  owner.finish_prefetches();
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

const Zero3Partition::SlicePlan& Zero3Partition::slice_plan(Flat& flat, int world) {
  auto found = flat.slice_plans.find(world);
  if (found != flat.slice_plans.end()) return found->second;
  SlicePlan result;
  std::vector<placement::ShardingLayout> to;
  for (size_t i = 0; i < flat.parameters.size(); ++i) {
    const auto slice = models::tensor_parallel_slice(*model_, flat.names[i]);
    to.push_back(slice.whole() ? placement::ShardingLayout::replicated(world)
                               : placement::ShardingLayout::tp_partition(world, slice.dim, slice.blocks));
    auto shape = flat.shapes[i];
    if (!slice.whole()) shape[static_cast<size_t>(slice.dim)] /= world;
    result.shapes.push_back(std::move(shape));
  }
  const int ranks = collectives_.world;
  result.plan = placement::plan_flat_reshard({flat.shapes, flat.offsets, flat.chunk, ranks}, to, "ZeRO stage 3 layer flat");
  result.runs.assign(static_cast<size_t>(ranks), std::vector<std::vector<placement::Transfer>>(static_cast<size_t>(world)));
  result.counts.assign(static_cast<size_t>(ranks), std::vector<int64_t>(static_cast<size_t>(world), 0));
  for (const auto& t : result.plan.transfers) {
    result.runs[static_cast<size_t>(t.src_rank)][static_cast<size_t>(t.dst_rank)].push_back(t);
    result.counts[static_cast<size_t>(t.src_rank)][static_cast<size_t>(t.dst_rank)] += t.count;
  }
  result.whole_flat = world == 1 && result.plan.local_sizes[0] == flat.numel;
  for (const auto& t : result.plan.transfers)
    result.whole_flat = result.whole_flat && t.dst_offset == t.src_rank * flat.chunk + t.src_offset;
  return flat.slice_plans.emplace(world, std::move(result)).first->second;
}

namespace {

/// Copies the runs `transfers` name between two flat buffers of one element size:
/// `to_destination` copies src_offset -> dst_offset, else the other way. Plain memcpy
/// on the CPU (a dim-1 slice is one run per row); tensor copies elsewhere.
void copy_runs(const torch::Tensor& from, torch::Tensor& to, const std::vector<placement::Transfer>& transfers,
               bool to_destination, int64_t base = 0) {
  int64_t packed = base;  // the other side: the runs laid end to end
  if (from.is_cpu() && to.is_cpu()) {
    const auto size = static_cast<int64_t>(from.element_size());
    const auto* source = static_cast<const char*>(from.data_ptr());
    auto* target = static_cast<char*>(to.data_ptr());
    for (const auto& t : transfers) {
      const int64_t read = to_destination ? packed : t.src_offset, write = to_destination ? t.dst_offset : packed;
      std::memcpy(target + write * size, source + read * size, static_cast<size_t>(t.count * size));
      packed += t.count;
    }
    return;
  }
  for (const auto& t : transfers) {
    const int64_t read = to_destination ? packed : t.src_offset, write = to_destination ? t.dst_offset : packed;
    to.narrow(0, write, t.count).copy_(from.narrow(0, read, t.count));
    packed += t.count;
  }
}

/// The runs one rank sends another (or receives from it), laid end to end as the
/// all-to-all's stream between the two: copies any piece of that stream out of, or into,
/// the flat buffer the runs index.
class RunStream {
 public:
  RunStream(const std::vector<placement::Transfer>& runs, bool destination_side) : runs_(&runs), destination_(destination_side) {
    starts_.reserve(runs.size() + 1);
    int64_t at = 0;
    for (const auto& t : runs) {
      starts_.push_back(at);
      at += t.count;
    }
    starts_.push_back(at);
  }

  /// Sending side: elements [offset, offset + count) of the stream, from `flat` into `out`.
  void pack(const char* flat, int64_t element, int64_t offset, int64_t count, char* out) const {
    for_each_piece(offset, count, [&](int64_t at_flat, int64_t at_stream, int64_t n) {
      std::memcpy(out + at_stream * element, flat + at_flat * element, static_cast<size_t>(n * element));
    });
  }

  /// Receiving side: elements [offset, offset + count) of the stream, from `in` into `flat`.
  void unpack(char* flat, int64_t element, int64_t offset, int64_t count, const char* in) const {
    for_each_piece(offset, count, [&](int64_t at_flat, int64_t at_stream, int64_t n) {
      std::memcpy(flat + at_flat * element, in + at_stream * element, static_cast<size_t>(n * element));
    });
  }

 private:
  /// Calls fn(flat element, element within [offset, offset + count), n) for each run's part.
  template <typename Fn>
  void for_each_piece(int64_t offset, int64_t count, Fn&& fn) const {
    // The run holding `offset`: the last that starts at or before it.
    auto run = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end() - 1, offset) - starts_.begin()) - 1;
    for (int64_t done = 0; done < count; ++run) {
      const auto& t = (*runs_)[run];
      const int64_t within = offset + done - starts_[run];
      const int64_t n = std::min(t.count - within, count - done);
      fn((destination_ ? t.dst_offset : t.src_offset) + within, done, n);
      done += n;
    }
  }

  const std::vector<placement::Transfer>* runs_;
  bool destination_;
  std::vector<int64_t> starts_;  // where each run starts in the stream, then the total
};

}  // namespace

void Zero3Partition::gather_slices(Flat& flat, int world, int tp_rank) {
  const int me = collectives_.rank, ranks = collectives_.world;
  const auto& sliced = slice_plan(flat, world);
  const auto& runs = sliced.runs;
  const auto options = flat.master.options().requires_grad(false);
  const auto master = flat.master.detach();
  const auto& offsets = sliced.plan.local_offsets[static_cast<size_t>(tp_rank)];
  auto view_parameters = [&] {
    for (size_t i = 0; i < flat.parameters.size(); ++i) {
      const auto& shape = sliced.shapes[i];
      flat.parameters[i].set_data(flat.gathered.narrow(0, offsets[i], c10::multiply_integers(shape)).view(shape));
    }
  };
  if (sliced.whole_flat) {  // every rank's chunk straight into place, as a layer's gather for training
    flat.gathered = empty_in_huge_pages(flat.chunk * ranks, options);  // (world * C)
    add_resident(flat.gathered_bytes());
    collectives_.all_gather(master, flat.gathered);
    received_bytes_ += flat.chunk * (ranks - 1) * flat.master.element_size();
    view_parameters();
    return;
  }
  flat.gathered = empty_in_huge_pages(sliced.plan.local_sizes[static_cast<size_t>(tp_rank)], options);  // (this rank's slices)
  add_resident(flat.gathered_bytes());
  // What every rank s sends this one (its runs for this rank's slices, end to end), in
  // rank order. Rank d of the ZeRO group is rank d % world of its generation group.
  std::vector<int64_t> receive_counts(static_cast<size_t>(ranks));
  int64_t receive_total = 0;
  for (int s = 0; s < ranks; ++s)
    receive_total += receive_counts[static_cast<size_t>(s)] = sliced.counts[static_cast<size_t>(s)][static_cast<size_t>(tp_rank)];
  if (collectives_.all_to_all_streams && master.is_cpu()) {
    // Packed from the chunk and unpacked into the slices where the collective's data is.
    std::vector<int64_t> send_counts(static_cast<size_t>(ranks));
    std::vector<RunStream> sends, receives;
    for (int d = 0; d < ranks; ++d) {
      send_counts[static_cast<size_t>(d)] = sliced.counts[static_cast<size_t>(me)][static_cast<size_t>(d % world)];
      sends.emplace_back(runs[static_cast<size_t>(me)][static_cast<size_t>(d % world)], /*destination_side=*/false);
      receives.emplace_back(runs[static_cast<size_t>(d)][static_cast<size_t>(tp_rank)], /*destination_side=*/true);
    }
    const int64_t element = master.element_size();
    const auto* chunk = static_cast<const char*>(master.data_ptr());
    auto* slices = static_cast<char*>(flat.gathered.data_ptr());
    collectives_.all_to_all_streams(
        master.scalar_type(), send_counts, receive_counts,
        [&](int d, int64_t offset, int64_t count, void* out) {
          sends[static_cast<size_t>(d)].pack(chunk, element, offset, count, static_cast<char*>(out));
        },
        [&](int s, int64_t offset, int64_t count, const void* in) {
          receives[static_cast<size_t>(s)].unpack(slices, element, offset, count, static_cast<const char*>(in));
        });
    for (int s = 0; s < ranks; ++s)
      if (s != me) received_bytes_ += receive_counts[static_cast<size_t>(s)] * element;
    view_parameters();
    return;
  }
  auto receive = torch::empty({receive_total}, options);  // (this rank's slices, by source)
  if (collectives_.all_to_all) {
    std::vector<int64_t> send_counts(static_cast<size_t>(ranks));
    int64_t send_total = 0;
    for (int d = 0; d < ranks; ++d)
      send_total += send_counts[static_cast<size_t>(d)] = sliced.counts[static_cast<size_t>(me)][static_cast<size_t>(d % world)];
    auto send = torch::empty({send_total}, options);  // (what every rank needs of this chunk)
    int64_t at = 0;
    for (int d = 0; d < ranks; ++d) {
      copy_runs(master, send, runs[static_cast<size_t>(me)][static_cast<size_t>(d % world)], /*to_destination=*/false, at);
      at += send_counts[static_cast<size_t>(d)];
    }
    collectives_.all_to_all(send, send_counts, receive, receive_counts);
    for (int s = 0; s < ranks; ++s)
      if (s != me) received_bytes_ += receive_counts[static_cast<size_t>(s)] * flat.master.element_size();
  } else {  // no all-to-all: the whole flat arrives, and each rank's part is cut from it
    auto whole = torch::empty({flat.chunk * ranks}, options);  // (world * C)
    collectives_.all_gather(master, whole);
    received_bytes_ += flat.chunk * (ranks - 1) * flat.master.element_size();
    int64_t at = 0;
    for (int s = 0; s < ranks; ++s) {
      copy_runs(whole.narrow(0, s * flat.chunk, flat.chunk), receive, runs[static_cast<size_t>(s)][static_cast<size_t>(tp_rank)],
                /*to_destination=*/false, at);
      at += receive_counts[static_cast<size_t>(s)];
    }
  }
  int64_t at = 0;
  for (int s = 0; s < ranks; ++s) {
    copy_runs(receive, flat.gathered, runs[static_cast<size_t>(s)][static_cast<size_t>(tp_rank)], /*to_destination=*/true, at);
    at += receive_counts[static_cast<size_t>(s)];
  }
  view_parameters();
}

int64_t Zero3Partition::tensor_parallel_minimum_bytes(int world) {
  const int me = collectives_.rank;
  int64_t bytes = 0;
  for (auto& layer : layers_)
    for (auto& flat : layer.flats) {
      for (const auto& t : slice_plan(flat, world).plan.transfers)
        if (t.dst_rank == me % world && t.src_rank != me) bytes += t.count * flat.master.element_size();
    }
  return bytes;
}

Zero3Partition::TensorParallelSlices Zero3Partition::gather_tensor_parallel_slices(const models::TensorParallelRank& group) {
  return TensorParallelSlices(*this, group);
}

Zero3Partition::TensorParallelSlices::TensorParallelSlices(Zero3Partition& owner, const models::TensorParallelRank& group)
    : owner_(&owner) {
  const int rank = owner.collectives_.rank;
  if (group.world < 1 || owner.collectives_.world % group.world != 0 || group.rank != rank % group.world)
    throw Error("ZeRO stage 3: tensor-parallel rank " + std::to_string(group.rank) + " of " + std::to_string(group.world) +
                " for ZeRO rank " + std::to_string(rank) + " of " + std::to_string(owner.collectives_.world) +
                " (generation groups are consecutive ranks)");
  owner.finish_prefetches();
  for (const auto& layer : owner.layers_)
    if (layer.holds > 0) throw Error("ZeRO stage 3: tensor-parallel slices asked for while a layer is gathered whole");
  torch::NoGradGuard no_grad;
  int64_t done = 0;
  try {
    for (; done < owner.layer_count(); ++done) {
      auto& layer = owner.layers_[static_cast<size_t>(done)];
      for (auto& flat : layer.flats) owner.gather_slices(flat, group.world, group.rank);
      layer.holds = 1;  // the layer hooks find it resident
    }
  } catch (...) {
    for (int64_t l = 0; l <= done && l < owner.layer_count(); ++l) {
      auto& layer = owner.layers_[static_cast<size_t>(l)];
      layer.holds = std::max(layer.holds, 1);
      for (auto& flat : layer.flats)
        if (!flat.gathered.defined()) flat.gathered = torch::empty({0}, flat.master.options());
      owner.release(l);
    }
    throw;
  }
  owner.sliced_ = true;
}

Zero3Partition::TensorParallelSlices::TensorParallelSlices(TensorParallelSlices&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)) {}

Zero3Partition::TensorParallelSlices::~TensorParallelSlices() {
  if (!owner_) return;
  owner_->sliced_ = false;
  for (int64_t l = 0; l < owner_->layer_count(); ++l) owner_->release(l);
}

}  // namespace troupe::engine

/// A frozen model's decoder layers partitioned over data-parallel ranks (ZeRO stage 3).
#include <troupe/actors/frozen_partition.hpp>

#include <regex>

#include <torch/torch.h>

#include <troupe/actors/data_parallel.hpp>
#include <troupe/common/error.hpp>

namespace troupe::actors {

FrozenPartition::FrozenPartition(models::CausalLM model, std::shared_ptr<DataParallel> group)
    : model_(std::move(model)), group_(std::move(group)) {
  if (!model_ || !group_) throw Error("FrozenPartition: needs a model and a data-parallel group");
  // Decoder layers by their Hugging Face names: model.layers.3., model.decoder.layers.3.,
  // transformer.h.3.
  static const std::regex layer_name(R"((^|\.)(layers|h)\.(\d+)\.)");
  const int world = group_->world(), rank = group_->rank();
  torch::NoGradGuard no_grad;
  for (auto& item : model_->named_parameters()) {
    auto& parameter = item.value();
    whole_bytes_ += parameter.numel() * parameter.element_size();
    std::smatch match;
    if (!std::regex_search(item.key(), match, layer_name)) {
      kept_bytes_ += parameter.numel() * parameter.element_size();
      continue;
    }
    const auto layer = static_cast<size_t>(std::stoll(match[3].str()));
    if (layers_.size() <= layer) layers_.resize(layer + 1);
    Piece piece;
    piece.parameter = parameter;
    piece.shape = parameter.sizes().vec();
    piece.numel = parameter.numel();
    const int64_t chunk = (piece.numel + world - 1) / world;
    auto flat = torch::zeros({chunk * world}, parameter.options());
    flat.narrow(0, 0, piece.numel).copy_(parameter.reshape({-1}));
    piece.chunk = flat.narrow(0, rank * chunk, chunk).clone();
    kept_bytes_ += piece.chunk.numel() * piece.chunk.element_size();
    parameter.set_data(torch::empty({0}, parameter.options()));  // the whole weight is gone until gathered
    layers_[layer].push_back(std::move(piece));
  }
  model_->set_layer_hooks({[this](int64_t layer) { gather(layer); }, [this](int64_t layer) { release(layer); }});
}

FrozenPartition::~FrozenPartition() {
  if (model_) model_->set_layer_hooks({});
}

int FrozenPartition::world() const { return group_->world(); }

int64_t FrozenPartition::resident_bytes() const { return kept_bytes_; }

void FrozenPartition::gather(int64_t layer) {
  torch::NoGradGuard no_grad;
  for (auto& piece : layers_.at(static_cast<size_t>(layer))) {
    auto all = group_->all_gather(piece.chunk);  // (W, chunk)
    piece.parameter.set_data(all.reshape({-1}).narrow(0, 0, piece.numel).view(piece.shape));
  }
}

void FrozenPartition::release(int64_t layer) {
  torch::NoGradGuard no_grad;
  for (auto& piece : layers_.at(static_cast<size_t>(layer)))
    piece.parameter.set_data(torch::empty({0}, piece.parameter.options()));
}

}  // namespace troupe::actors

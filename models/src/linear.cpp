#include <troupe/models/linear.hpp>

#include <cmath>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <troupe/common/error.hpp>

#include "recast_linear.hpp"

namespace troupe::models {
namespace {

/// A frozen weight stored narrower than the input (frozen_weights.hpp) computes in its
/// own dtype when autocast is not already casting: the input goes in narrowed and the
/// output comes back in the input's dtype.
bool computes_narrower(const torch::Tensor& x, const torch::Tensor& weight) {
  return weight.scalar_type() != x.scalar_type() && !at::autocast::is_autocast_enabled(x.device().type());
}

/// x (..., in) times a weight stored (out, in), or (in, out) when `transposed`, plus the bias.
torch::Tensor dense(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias, bool transposed) {
  if (!transposed) return torch::nn::functional::linear(x, weight, bias);
  auto rows = x.reshape({-1, x.size(-1)});                                     // (N, in)
  auto y = bias.defined() ? torch::addmm(bias, rows, weight) : torch::mm(rows, weight);  // (N, out)
  auto shape = x.sizes().vec();
  shape.back() = weight.size(1);
  return y.view(shape);
}

}  // namespace

LinearImpl::LinearImpl(LinearOptions options) : options_(std::move(options)) {
  const auto in = options_.in_features(), out = options_.out_features();
  if (options_.tied_weight()) {
    weight = register_parameter("weight", *options_.tied_weight());
  } else {
    auto w = options_.transposed() ? torch::empty({in, out}) : torch::empty({out, in});
    torch::nn::init::normal_(w, 0.0, 0.02);
    weight = register_parameter("weight", w);
  }
  if (options_.bias()) bias = register_parameter("bias", torch::zeros({out}));
}

bool LinearImpl::uses_packed() const {
  return packed_ && !is_training() && !torch::GradMode::is_enabled();
}

torch::Tensor LinearImpl::forward_activated(const torch::Tensor& x, kernels::Activation activation) {
  if (uses_packed() && !(shard_ && shard_->split == LinearShard::Split::Row)) return packed_forward(x, activation);
  return kernels::reference::apply_activation(forward(x), activation);
}

torch::Tensor LinearImpl::packed_forward(const torch::Tensor& x, kernels::Activation activation) {
  if (!shard_ || shard_->split == LinearShard::Split::Column) return kernels::decode_linear(x, *packed_, activation);
  // Row split: the partial sums are completed over the group before the bias.
  auto y = kernels::decode_linear(x, *packed_);
  if (shard_->world > 1) shard_->all_reduce_sum(y);
  if (bias.defined()) y = y + bias;
  return kernels::reference::apply_activation(y, activation);
}

std::pair<torch::Tensor, torch::Tensor> LinearImpl::weight_to_pack() const {
  torch::NoGradGuard no_grad;
  auto w = effective_weight(lora_enabled_);  // (out, in)
  auto b = bias.defined() ? bias.detach() : torch::Tensor();
  if (!shard_) return {w, b};
  const auto& s = *shard_;
  if (s.local) return {w, s.split == LinearShard::Split::Row ? torch::Tensor() : b};  // already the slice
  if (s.split == LinearShard::Split::Row) {
    const int64_t k = options_.in_features() / s.world;
    return {w.narrow(1, s.rank * k, k), torch::Tensor()};  // (out, in / W); bias after the sum
  }
  const int64_t block = options_.out_features() / s.fused_blocks, k = block / s.world;
  std::vector<torch::Tensor> rows, biases;
  for (int i = 0; i < s.fused_blocks; ++i) {
    rows.push_back(w.narrow(0, i * block + s.rank * k, k));
    if (b.defined()) biases.push_back(b.narrow(0, i * block + s.rank * k, k));
  }
  return {torch::cat(rows, 0), b.defined() ? torch::cat(biases, 0) : torch::Tensor()};  // (blocks * out / W, in)
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  if (uses_packed()) return packed_forward(x, kernels::Activation::None);
  if (shard_) return sharded_forward(x);
  // x: (..., in) -> (..., out)
  auto y = recasts_under_autocast(x, weight) ? recast_linear(x, weight, bias, options_.transposed())
           : computes_narrower(x, weight)
               ? dense(x.to(weight.scalar_type()), weight, bias.defined() ? bias.to(weight.scalar_type()) : bias,
                       options_.transposed())
                     .to(x.scalar_type())
               : dense(x, weight, bias, options_.transposed());
  if (has_lora() && lora_enabled_ && !lora_fused_) {
    auto h = x;
    if (lora_dropout_ > 0 && is_training()) h = torch::dropout(h, lora_dropout_, true);
    y = y + torch::nn::functional::linear(torch::nn::functional::linear(h, lora_A), lora_B) * lora_scale_;
  }
  return y;
}

void LinearImpl::set_shard(std::optional<LinearShard> shard) {
  if (shard) {
    const bool row = shard->split == LinearShard::Split::Row;
    const auto features = row ? options_.in_features() : options_.out_features();
    const int blocks = row ? 1 : shard->fused_blocks;
    const std::string what = row ? "input" : "output";
    if (shard->world < 1 || shard->rank < 0 || shard->rank >= shard->world)
      throw Error("tensor parallelism: rank " + std::to_string(shard->rank) + " of " + std::to_string(shard->world));
    if (blocks < 1 || features % (static_cast<int64_t>(blocks) * shard->world) != 0)
      throw Error("tensor parallelism: " + std::to_string(features) + " " + what + " features (" + std::to_string(blocks) +
                  " fused block(s)) do not divide into " + std::to_string(shard->world) + " slices");
    if (row && shard->world > 1 && !shard->all_reduce_sum)
      throw Error("tensor parallelism: a row-split layer needs an all-reduce");
    const int dim = row != options_.transposed() ? 1 : 0;  // the split dim of the stored weight
    if (shard->local && weight.size(dim) != features / shard->world)
      throw Error("tensor parallelism: a local slice's weight has " + std::to_string(weight.size(dim)) + " " + what +
                  " features, expected " + std::to_string(features / shard->world));
  }
  shard_ = std::move(shard);
}

torch::Tensor LinearImpl::sharded_forward(const torch::Tensor& x) {
  namespace F = torch::nn::functional;
  const auto& s = *shard_;
  const bool transposed = options_.transposed();
  // x (..., in) by a weight slice given as (out_k, in_k), whatever the storage.
  auto matmul = [&](const torch::Tensor& input, const torch::Tensor& w, const torch::Tensor& b) {
    if (computes_narrower(input, w)) {
      auto narrow = input.to(w.scalar_type());
      auto narrow_bias = b.defined() ? b.to(w.scalar_type()) : b;
      return (transposed ? (b.defined() ? torch::matmul(narrow, w) + narrow_bias : torch::matmul(narrow, w))
                         : F::linear(narrow, w, narrow_bias))
          .to(input.scalar_type());
    }
    return transposed ? (b.defined() ? torch::matmul(input, w) + b : torch::matmul(input, w)) : F::linear(input, w, b);
  };
  const int out_dim = transposed ? 1 : 0, in_dim = transposed ? 0 : 1;
  const bool lora = has_lora() && lora_enabled_ && !lora_fused_;
  if (s.local) {  // the tensors are this rank's slices: the layer as it is, then the sum
    auto y = matmul(x, weight, s.split == LinearShard::Split::Column ? bias : torch::Tensor());
    if (lora) y = y + F::linear(F::linear(x, lora_A), lora_B) * lora_scale_;
    if (s.split == LinearShard::Split::Column) return y;  // (..., out / W)
    if (s.world > 1) s.all_reduce_sum(y);
    return bias.defined() ? y + bias : y;  // (..., out)
  }
  if (s.split == LinearShard::Split::Column) {  // x: (..., in) -> (..., out / W)
    const int64_t block = options_.out_features() / s.fused_blocks, k = block / s.world;
    std::vector<torch::Tensor> parts;
    for (int i = 0; i < s.fused_blocks; ++i) {
      const int64_t begin = i * block + s.rank * k;
      auto y = matmul(x, weight.narrow(out_dim, begin, k), bias.defined() ? bias.narrow(0, begin, k) : torch::Tensor());
      if (lora) y = y + F::linear(F::linear(x, lora_A), lora_B.narrow(0, begin, k)) * lora_scale_;
      parts.push_back(y);
    }
    return parts.size() == 1 ? parts.front() : torch::cat(parts, -1);
  }
  // x: (..., in / W) -> partial (..., out), summed over the ranks, then the bias.
  const int64_t k = options_.in_features() / s.world, begin = s.rank * k;
  TORCH_CHECK(x.size(-1) == k, "tensor parallelism: a row-split layer expects ", k, " input features, got ", x.size(-1));
  auto y = matmul(x, weight.narrow(in_dim, begin, k), torch::Tensor());
  if (lora) y = y + F::linear(F::linear(x, lora_A.narrow(1, begin, k)), lora_B) * lora_scale_;
  if (s.world > 1) s.all_reduce_sum(y);
  if (bias.defined()) y = y + bias;
  return y;
}

void LinearImpl::enable_lora(int64_t rank, double alpha, double dropout) {
  if (rank <= 0) throw Error("LoRA rank must be positive, got " + std::to_string(rank));
  if (has_lora()) throw Error("LoRA is already enabled on this layer");
  auto opts = torch::TensorOptions().dtype(weight.dtype()).device(weight.device());
  auto a = torch::empty({rank, options_.in_features()}, opts);
  // Kaiming-uniform A and zero B, as LoRA's reference implementation does.
  torch::nn::init::kaiming_uniform_(a, std::sqrt(5.0));
  lora_A = register_parameter("lora_A", a);
  lora_B = register_parameter("lora_B", torch::zeros({options_.out_features(), rank}, opts));
  lora_alpha_ = alpha;
  lora_scale_ = alpha / static_cast<double>(rank);
  lora_dropout_ = dropout;
}

torch::Tensor LinearImpl::lora_delta() const {
  auto delta = torch::mm(lora_B, lora_A) * lora_scale_;  // (out, in)
  return options_.transposed() ? delta.t() : delta;
}

void LinearImpl::fuse_lora() {
  if (!has_lora() || lora_fused_) return;
  torch::NoGradGuard no_grad;
  weight.add_(lora_delta().to(weight.dtype()));
  lora_fused_ = true;
}

void LinearImpl::unfuse_lora() {
  if (!has_lora() || !lora_fused_) return;
  torch::NoGradGuard no_grad;
  weight.sub_(lora_delta().to(weight.dtype()));
  lora_fused_ = false;
}

torch::Tensor LinearImpl::effective_weight(bool with_lora) const {
  torch::NoGradGuard no_grad;
  auto w = weight.detach();
  if (has_lora()) {
    // A base kept narrower than its adapter (frozen_weights.hpp) folds the adapter in at
    // the adapter's precision: added in bf16, a small delta would round away.
    if (w.scalar_type() != lora_A.scalar_type()) w = w.to(lora_A.scalar_type());
    if (with_lora && !lora_fused_) w = w + lora_delta().to(w.dtype());
    if (!with_lora && lora_fused_) w = w - lora_delta().to(w.dtype());
  }
  return options_.transposed() ? w.t() : w;
}

}  // namespace troupe::models

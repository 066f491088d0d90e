/// ZeRO stage 2: the flat-chunk gradient and optimizer partition and its bucketed
/// reduction during the backward.
#include <troupe/engine/zero2.hpp>

#include <algorithm>
#include <cmath>

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/engine/optimizer.hpp>

namespace troupe::engine {
namespace {

int64_t bytes_of(const torch::Tensor& t) { return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0; }

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

/// Runs after autograd accumulated a parameter's gradient (once per backward, a tied
/// weight's uses summed first).
class Zero2Partition::ArrivalHook : public torch::autograd::PostAccumulateGradHook {
 public:
  ArrivalHook(Zero2Partition* owner, size_t slot) : owner_(owner), slot_(slot) {}
  void operator()(const torch::autograd::Variable& /*tensor*/) override { owner_->arrived(slot_); }

 private:
  Zero2Partition* owner_;
  size_t slot_;
};

Zero2Partition::Zero2Partition(models::CausalLM model, Zero2Collectives collectives, int64_t bucket_elements)
    : model_(std::move(model)), collectives_(std::move(collectives)) {
  const int world = collectives_.world, rank = collectives_.rank;
  if (!model_) throw Error("ZeRO stage 2: no model");
  if (world < 1 || rank < 0 || rank >= world)
    throw Error("ZeRO stage 2: rank " + std::to_string(rank) + " is outside a world of " + std::to_string(world));
  if (!collectives_.broadcast || !collectives_.reduce_sum || !collectives_.all_reduce_sum || !collectives_.all_reduce_max)
    throw Error("ZeRO stage 2: needs broadcast, reduce_sum, all_reduce_sum and all_reduce_max collectives");
  if (bucket_elements < 1)
    throw Error("ZeRO stage 2: reduce_bucket_size must be at least 1 element, got " + std::to_string(bucket_elements));

  torch::NoGradGuard no_grad;
  // The flats: one per optimizer group, members in registration order.
  std::array<std::vector<size_t>, 3> members;
  for (const auto& item : unique_named_parameters(*model_)) {
    if (!item.value().requires_grad()) continue;
    if (!slots_.empty() && item.value().scalar_type() != slots_.front().parameter.scalar_type())
      throw Error("ZeRO stage 2: trainable parameters of several dtypes (" + item.key() + " is " +
                  std::string(c10::toString(item.value().scalar_type())) + ")");
    Slot slot;
    slot.parameter = item.value();
    members[static_cast<size_t>(param_group_of(item.key(), item.value()))].push_back(slots_.size());
    slots_.push_back(std::move(slot));
  }
  if (slots_.empty()) throw Error("ZeRO stage 2: the model has no trainable parameter");
  // A value model's own (untied) LM head gets no gradient from its value loss: not waited
  // for, so it holds no bucket back in the first window (were a loss to reach it, it would
  // be reduced late, at the end of the backward). The same on every rank: the model says.
  if (model_->has_value_head() && model_->lm_head) {
    const auto* head = model_->lm_head->weight.unsafeGetTensorImpl();
    if (head != model_->input_embedding_weight().unsafeGetTensorImpl())
      for (auto& slot : slots_)
        if (slot.parameter.unsafeGetTensorImpl() == head) slot.expected = false;
  }
  for (int group = 0; group < 3; ++group) {
    const auto& in_group = members[static_cast<size_t>(group)];
    if (in_group.empty()) continue;
    Flat flat;
    flat.group = group;
    for (const size_t s : in_group) {
      slots_[s].flat = flats_.size();
      slots_[s].offset = flat.numel;
      flat.numel += slots_[s].parameter.numel();
    }
    flat.chunk = ceil_div(flat.numel, world);
    const auto& first = slots_[in_group.front()].parameter;
    // Uninitialised, so its pages are touched one parameter at a time as each one's old
    // storage goes: the flat never costs a second copy of the weights.
    flat.buffer = torch::empty({flat.chunk * world}, first.options().requires_grad(false));  // (world * C)
    flat.buffer.narrow(0, flat.numel, flat.chunk * world - flat.numel).zero_();  // the padding
    for (const size_t s : in_group) {
      auto& p = slots_[s].parameter;
      auto view = flat.buffer.narrow(0, slots_[s].offset, p.numel());
      view.copy_(p.detach().reshape({-1}));
      p.set_data(view.view(p.sizes()));  // the module's parameter now lives in the flat
    }
    flat.master = flat.buffer.narrow(0, rank * flat.chunk, flat.chunk);  // (C)
    masters_[static_cast<size_t>(group)].push_back(flat.master);
    flats_.push_back(std::move(flat));
  }

  // Buckets in reverse registration order, about the order the backward fills them.
  Bucket open;
  int64_t open_elements = 0;
  auto close = [&] {
    if (open.slots.empty()) return;
    buckets_.push_back(std::move(open));
    open = Bucket{};
    open_elements = 0;
  };
  for (size_t s = slots_.size(); s-- > 0;) {
    const int64_t n = slots_[s].parameter.numel();
    if (!open.slots.empty() && open_elements + n > bucket_elements) close();
    slots_[s].bucket = buckets_.size();
    open.slots.push_back(s);
    open_elements += n;
  }
  close();
  for (auto& bucket : buckets_) bucket.packing = packing_of(bucket.slots);

  for (size_t s = 0; s < slots_.size(); ++s)
    torch::autograd::impl::set_post_acc_grad_hooks(slots_[s].parameter, std::make_unique<ArrivalHook>(this, s));
}

Zero2Partition::~Zero2Partition() {
  for (auto& slot : slots_) torch::autograd::impl::post_acc_grad_hooks(slot.parameter).reset();
}

Zero2Partition::Packing Zero2Partition::packing_of(const std::vector<size_t>& slots) const {
  const int world = collectives_.world;
  Packing packing;
  packing.pieces.resize(static_cast<size_t>(world));
  // Each slot's range cut at the chunk boundaries; neighbours of one flat merged.
  for (const size_t s : slots) {
    const auto& slot = slots_[s];
    const int64_t chunk = flats_[slot.flat].chunk;
    int64_t begin = slot.offset;
    const int64_t end = slot.offset + slot.parameter.numel();
    while (begin < end) {
      const int64_t owner = begin / chunk;
      const int64_t stop = std::min(end, (owner + 1) * chunk);
      auto& list = packing.pieces[static_cast<size_t>(owner)];
      if (!list.empty() && list.back().flat == slot.flat && list.back().begin == stop) list.back().begin = begin;
      else if (!list.empty() && list.back().flat == slot.flat && list.back().end == begin) list.back().end = stop;
      else list.push_back(Piece{slot.flat, begin, stop});
      begin = stop;
    }
  }
  // The buffer: rank 0's pieces, then rank 1's, ...; each slot's parts placed in them.
  packing.start.assign(static_cast<size_t>(world) + 1, 0);
  int64_t at = 0;
  for (int r = 0; r < world; ++r) {
    packing.start[static_cast<size_t>(r)] = at;
    for (const auto& piece : packing.pieces[static_cast<size_t>(r)]) {
      for (const size_t s : slots) {
        const auto& slot = slots_[s];
        if (slot.flat != piece.flat) continue;
        const int64_t lo = std::max(piece.begin, slot.offset);
        const int64_t hi = std::min(piece.end, slot.offset + slot.parameter.numel());
        if (lo < hi) packing.copies.push_back(Copy{s, lo - slot.offset, at + lo - piece.begin, hi - lo});
      }
      at += piece.end - piece.begin;
    }
  }
  packing.start[static_cast<size_t>(world)] = at;
  packing.numel = at;
  return packing;
}

void Zero2Partition::start_backward() {
  in_backward_ = true;
  next_bucket_ = 0;
  for (auto& slot : slots_) slot.arrived = slot.late = false;
  for (auto& bucket : buckets_) {
    bucket.waiting = 0;
    for (const size_t s : bucket.slots) bucket.waiting += slots_[s].expected ? 1 : 0;
  }
}

void Zero2Partition::arrived(size_t s) {
  auto& slot = slots_[s];
  // AccumulateGrad calls the hook for an undefined gradient too (a checkpointed layer's
  // outer node passes none: its parameters' gradients came in the recomputation's own
  // backward): nothing arrived then.
  if (!slot.parameter.grad().defined()) return;
  if (!in_backward_) start_backward();
  const bool again = slot.arrived;  // a parameter used in two recomputed layers
  slot.arrived = slot.present = true;
  if (slot.bucket < next_bucket_) {
    slot.late = true;  // its bucket went: reduced alone at the end of the backward
    return;
  }
  auto& bucket = buckets_[slot.bucket];
  pack(s, bucket.packing, bucket.buffer);
  if (slot.expected && !again) --bucket.waiting;
  reduce_ready_buckets();
}

torch::Tensor Zero2Partition::new_buffer(int64_t numel) {
  buffer_bytes_ += numel * static_cast<int64_t>(flats_.front().buffer.element_size());
  // Zeros: a gradient that never comes counts as zeros.
  return torch::zeros({numel}, flats_.front().buffer.options());  // (numel)
}

void Zero2Partition::pack(size_t s, const Packing& packing, torch::Tensor& buffer) {
  torch::NoGradGuard no_grad;
  auto& p = slots_[s].parameter;
  const auto grad = p.grad();
  if (!grad.defined()) return;
  peak_gradient_bytes_ = std::max(peak_gradient_bytes_, partition_gradient_bytes() + buffer_bytes_ + bytes_of(grad));
  const auto flat = grad.reshape({-1});  // (numel of p)
  // A parameter alone in its bucket is packed as it lies (its owners' pieces in rank
  // order): its gradient is the buffer, no copy.
  const bool as_it_lies = flat.numel() == packing.numel &&
                          std::all_of(packing.copies.begin(), packing.copies.end(),
                                      [&](const Copy& c) { return c.slot == s && c.from == c.to; });
  if (!buffer.defined() && as_it_lies && flat.is_contiguous()) {
    buffer = flat;
    buffer_bytes_ += bytes_of(buffer);
  } else {
    if (!buffer.defined()) buffer = new_buffer(packing.numel);
    // Added, not copied: the buffer starts at zeros, and a second gradient of one
    // parameter in one backward adds to its first.
    for (const auto& copy : packing.copies)
      if (copy.slot == s) buffer.narrow(0, copy.to, copy.count).add_(flat.narrow(0, copy.from, copy.count));
  }
  p.mutable_grad() = torch::Tensor();  // packed: the whole gradient goes now
}

void Zero2Partition::reduce_ready_buckets() {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].waiting == 0) {
    auto& bucket = buckets_[next_bucket_];
    ++next_bucket_;
    if (!bucket.buffer.defined()) bucket.buffer = new_buffer(bucket.packing.numel);
    reduce(bucket.packing, bucket.buffer);
    ++reduced_in_backward_;
  }
}

void Zero2Partition::finish_backward() {
  if (!in_backward_) start_backward();
  // What the backward left: the remaining buckets in order, zeros for what never came.
  for (; next_bucket_ < buckets_.size(); ++next_bucket_) {
    auto& bucket = buckets_[next_bucket_];
    if (!bucket.buffer.defined()) bucket.buffer = new_buffer(bucket.packing.numel);
    reduce(bucket.packing, bucket.buffer);
  }
  // A late gradient is possible only for a parameter that was not waited for; the flags
  // say which on every rank's behalf.
  const bool any_unexpected = std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.expected; });
  if (any_unexpected) {
    auto late = torch::zeros({static_cast<int64_t>(slots_.size())}, torch::kFloat32);  // (P)
    for (size_t s = 0; s < slots_.size(); ++s) late[static_cast<int64_t>(s)] = slots_[s].late ? 1.0f : 0.0f;
    collectives_.all_reduce_max(late);
    const auto flags = late.accessor<float, 1>();
    for (size_t s = 0; s < slots_.size(); ++s) {
      if (flags[static_cast<int64_t>(s)] == 0.0f) continue;
      const auto packing = packing_of({s});
      torch::Tensor buffer;  // (numel of the parameter) once packed
      pack(s, packing, buffer);
      if (!buffer.defined()) buffer = new_buffer(packing.numel);
      reduce(packing, buffer);
    }
  }
  in_backward_ = false;
}

void Zero2Partition::ensure_chunk_gradients() {
  for (auto& flat : flats_)
    if (!flat.master.grad().defined()) flat.master.mutable_grad() = torch::zeros_like(flat.master);  // (C)
}

void Zero2Partition::reduce(const Packing& packing, torch::Tensor& buffer) {
  torch::NoGradGuard no_grad;
  ensure_chunk_gradients();
  const int world = collectives_.world, rank = collectives_.rank;
  for (int r = 0; r < world; ++r) {
    const int64_t begin = packing.start[static_cast<size_t>(r)];
    const int64_t count = packing.start[static_cast<size_t>(r) + 1] - begin;
    if (count == 0) continue;
    auto part = buffer.narrow(0, begin, count);  // (count) rank r's pieces
    if (world > 1) collectives_.reduce_sum(part, r);
    if (r != rank) continue;
    int64_t at = 0;
    for (const auto& piece : packing.pieces[static_cast<size_t>(r)]) {
      const auto& flat = flats_[piece.flat];
      const int64_t n = piece.end - piece.begin;
      flat.master.mutable_grad().narrow(0, piece.begin - rank * flat.chunk, n).add_(part.narrow(0, at, n) / world);
      at += n;
    }
  }
  buffer_bytes_ -= bytes_of(buffer);
  buffer = torch::Tensor();
}

int64_t Zero2Partition::partition_gradient_bytes() const {
  int64_t bytes = 0;
  for (const auto& flat : flats_) bytes += flat.chunk * static_cast<int64_t>(flat.buffer.element_size());
  return bytes;
}

int64_t Zero2Partition::largest_bucket_bytes() const {
  int64_t largest = 0;
  const int64_t element = static_cast<int64_t>(flats_.front().buffer.element_size());
  for (const auto& bucket : buckets_) largest = std::max(largest, bucket.packing.numel * element);
  return largest;
}

double Zero2Partition::clip_gradients(double max_norm) {
  torch::NoGradGuard no_grad;
  auto squares = torch::zeros({1}, torch::kFloat64);  // (1)
  // Summed in float64 a slice at a time: a float64 copy of the whole chunk would cost
  // twice its fp32 gradient, for a moment, on top of it.
  constexpr int64_t kSlice = int64_t{1} << 20;
  for (const auto& flat : flats_) {
    if (!flat.master.grad().defined()) continue;
    const auto& grad = flat.master.grad();  // (C)
    for (int64_t begin = 0; begin < grad.numel(); begin += kSlice)
      squares += grad.narrow(0, begin, std::min(kSlice, grad.numel() - begin)).to(torch::kFloat64).square().sum();
  }
  collectives_.all_reduce_sum(squares);
  const double norm = std::sqrt(squares.item<double>());
  const double coefficient = max_norm / (norm + 1e-6);
  if (coefficient < 1.0)
    for (auto& flat : flats_)
      if (flat.master.grad().defined()) flat.master.mutable_grad().mul_(coefficient);
  return norm;
}

void Zero2Partition::step(torch::optim::Optimizer& optimizer) {
  torch::NoGradGuard no_grad;
  const int rank = collectives_.rank;
  // Which parameters got a gradient anywhere in this window; the rest AdamW must skip.
  auto present = torch::zeros({static_cast<int64_t>(slots_.size())}, torch::kFloat32);  // (P)
  for (size_t s = 0; s < slots_.size(); ++s) present[static_cast<int64_t>(s)] = slots_[s].present ? 1.0f : 0.0f;
  collectives_.all_reduce_max(present);
  const auto anywhere = present.accessor<float, 1>();
  struct Kept {
    torch::Tensor view, value;  // this rank's elements of an absent parameter, and their values
  };
  std::vector<Kept> kept;
  for (size_t s = 0; s < slots_.size(); ++s) {
    auto& slot = slots_[s];
    slot.present = false;
    slot.expected = anywhere[static_cast<int64_t>(s)] != 0.0f;
    if (slot.expected) continue;
    const auto& flat = flats_[slot.flat];
    const int64_t lo = std::max(slot.offset, rank * flat.chunk);
    const int64_t hi = std::min(slot.offset + slot.parameter.numel(), (rank + 1) * flat.chunk);
    if (lo >= hi) continue;
    auto view = flat.buffer.narrow(0, lo, hi - lo);
    kept.push_back(Kept{view, view.clone()});
  }
  optimizer.step();
  for (auto& k : kept) k.view.copy_(k.value);
  // The all-gather: each rank's updated chunk into every rank's buffer.
  for (auto& flat : flats_)
    for (int r = 0; r < collectives_.world; ++r) {
      if (collectives_.world == 1) break;
      auto chunk = flat.buffer.narrow(0, r * flat.chunk, flat.chunk);  // (C)
      collectives_.broadcast(chunk, r);
    }
}

}  // namespace troupe::engine

#pragma once
/// ZeRO stage 2 for a trained model, as DeepSpeed lays it out: gradients and AdamW state
/// partitioned over the data-parallel ranks in flat equal chunks, parameters whole on
/// every rank.
///
/// Layout. The trainable parameters of each optimizer group (decay, no-decay, LoRA) are
/// made views of one flat buffer, in registration order, padded with zeros to world * C
/// elements and split into `world` chunks of C; rank r owns chunk r. The optimizer steps
/// the chunk (a view of the buffer, so stepping it updates this rank's slice of the
/// parameters in place) and keeps AdamW's moments for exactly those C elements; after the
/// step every rank broadcasts its chunk into the others' buffers (an all-gather), so every
/// rank again holds the whole updated parameters.
///
/// Gradients. The parameters are cut, in reverse registration order (about the order the
/// backward produces their gradients), into buckets of at most `bucket_elements`
/// (DeepSpeed's reduce_bucket_size; a larger parameter is a bucket alone). A
/// post-accumulate-grad hook on each parameter copies its gradient into its bucket's
/// buffer, packed by owner rank (DeepSpeed's contiguous_gradients), and frees the whole
/// `.grad` at once. When every gradient of the next bucket is in, each owner's part of
/// the buffer is summed onto it (one reduce per owner the bucket touches, as DeepSpeed's
/// average_tensor does: together a reduce-scatter of the bucket), the owner adds it,
/// divided by world, into its chunk's fp32 gradient, and the buffer is freed. A rank's
/// gradient memory is its chunks' gradients, the bucket buffer(s) being filled and the
/// one gradient being copied: never the whole gradient unless one bucket holds it. With
/// gradient accumulation each backward adds into the chunk gradients.
///
/// Buckets are reduced strictly in order, on every rank the same sequence of collectives:
/// a bucket whose parameter got no gradient in this backward waits for the end of the
/// backward (finish_backward()), and reduces zeros for it. A parameter that got no gradient
/// on any rank in the last accumulation window is not waited for in the next, nor is a
/// value model's untied LM head from the start; should one get a gradient after its bucket
/// went, finish_backward() reduces it alone (one all-reduce of a flag per parameter agrees
/// which). In the first window every other parameter is waited for, so one that never
/// gets a gradient holds back the buckets after it in that window's backwards.
///
/// A parameter that got no gradient on any rank in a window is left as it was by the step
/// (its chunk elements restored after it), as AdamW leaves one without a gradient in one
/// process; its moments stay zero. (Its elements do count in the chunk's step count.)
///
/// Every rank must make the same calls in the same order, with models whose trainable
/// parameters have the same names, shapes and one dtype, starting from the same values.
#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include <troupe/models/causal_lm.hpp>

namespace troupe::engine {

/// The collectives ZeRO stage 2 runs on, as callbacks (the engine does not know the
/// transport). Every rank calls each in the same order with tensors of the same shape.
struct Zero2Collectives {
  int rank = 0;
  int world = 1;
  /// In place: every rank ends with rank `root`'s `tensor`.
  std::function<void(torch::Tensor& tensor, int root)> broadcast;
  /// In place on `root`: the sum over the ranks (others: unspecified).
  std::function<void(torch::Tensor& tensor, int root)> reduce_sum;
  /// In place: the element-wise sum / maximum over the ranks.
  std::function<void(torch::Tensor& tensor)> all_reduce_sum, all_reduce_max;
};

/// DeepSpeed's default reduce_bucket_size, in elements (2 GB of fp32 gradients).
inline constexpr int64_t kDefaultReduceBucketElements = 500'000'000;

class Zero2Partition {
 public:
  /// Lays `model`'s trainable parameters out in flat buffers and hooks them. Throws
  /// troupe::Error for a rank outside [0, world), a missing collective, a bucket size
  /// below 1 (naming reduce_bucket_size), or trainable parameters of several dtypes.
  Zero2Partition(models::CausalLM model, Zero2Collectives collectives, int64_t bucket_elements);
  /// Removes the hooks; the parameters stay views of the flat buffers.
  ~Zero2Partition();
  Zero2Partition(const Zero2Partition&) = delete;
  Zero2Partition& operator=(const Zero2Partition&) = delete;

  /// This rank's chunks by ParamGroup (what the optimizer steps): views (C) of the flat
  /// buffers whose gradients hold this rank's share of the averaged gradient.
  const std::array<std::vector<torch::Tensor>, 3>& master_chunks() const { return masters_; }

  /// After each backward: reduces the buckets not reduced during it (in order) and any
  /// gradient that came after its bucket went. Every whole `.grad` is freed.
  void finish_backward();
  /// The global L2 norm over every rank's chunk gradients (an all-reduce of the squared
  /// norms); scales them by max_norm / (norm + 1e-6) when that is below 1, as
  /// torch::nn::utils::clip_grad_norm_ does. Returns the norm before clipping.
  double clip_gradients(double max_norm);
  /// Steps `optimizer` (over master_chunks()), keeps the parameters that got no gradient
  /// anywhere as they were, and all-gathers the updated chunks into every rank's buffers.
  void step(torch::optim::Optimizer& optimizer);

  /// The most gradient bytes this rank has held, measured as each gradient arrives:
  /// chunk gradients, the bucket buffers alive and the gradient being copied.
  int64_t peak_gradient_bytes() const { return peak_gradient_bytes_; }
  /// This rank's chunk gradients (fp32, C per group), allocated or not.
  int64_t partition_gradient_bytes() const;
  /// The largest bucket, in bytes of its gradients.
  int64_t largest_bucket_bytes() const;
  int64_t bucket_count() const { return static_cast<int64_t>(buckets_.size()); }
  /// Buckets reduced during a backward (not at its end), since construction.
  int64_t buckets_reduced_in_backward() const { return reduced_in_backward_; }
  int rank() const { return collectives_.rank; }
  int world() const { return collectives_.world; }

 private:
  /// One optimizer group's parameters, as views of one flat buffer.
  struct Flat {
    int group = 0;  ///< ParamGroup
    torch::Tensor buffer;  // (world * C) the whole parameters, then padding zeros
    torch::Tensor master;  // (C) view of this rank's chunk of `buffer`
    int64_t numel = 0;     ///< unpadded
    int64_t chunk = 0;     ///< C
  };
  /// One trainable parameter: where it lives and what its gradient is doing.
  struct Slot {
    torch::Tensor parameter;
    size_t flat = 0;
    int64_t offset = 0;  ///< into the flat buffer
    size_t bucket = 0;
    bool expected = true;  ///< waited for before its bucket reduces
    bool arrived = false;  ///< its gradient came in this backward
    bool present = false;  ///< it got a gradient in this accumulation window
    bool late = false;     ///< it came after its bucket was reduced in this backward
  };
  /// A run of elements of one flat that one owner rank receives.
  struct Piece {
    size_t flat = 0;
    int64_t begin = 0, end = 0;  ///< in the flat buffer
  };
  /// Where a part of a slot's gradient goes in its bucket's buffer.
  struct Copy {
    size_t slot = 0;
    int64_t from = 0, to = 0, count = 0;  ///< from: into the gradient; to: into the buffer
  };
  /// Some slots' gradients packed by owner rank, and how they get there.
  struct Packing {
    std::vector<std::vector<Piece>> pieces;  ///< by owner rank
    std::vector<int64_t> start;              ///< (world + 1) each owner's part of the buffer
    std::vector<Copy> copies;
    int64_t numel = 0;
  };
  struct Bucket {
    std::vector<size_t> slots;
    Packing packing;
    int64_t waiting = 0;    ///< expected gradients not arrived in this backward
    torch::Tensor buffer;   // (numel) packed by owner, while filling
  };
  class ArrivalHook;

  void arrived(size_t slot);
  /// Reduces buckets from next_bucket_ on while their gradients are all in.
  void reduce_ready_buckets();
  /// Copies the slot's gradient into `buffer` as `packing` says and frees it.
  void pack(size_t slot, const Packing& packing, torch::Tensor& buffer);
  /// Reduces each owner's part of `buffer` onto it, adds this rank's into its chunk
  /// gradients and frees the buffer.
  void reduce(const Packing& packing, torch::Tensor& buffer);
  /// The packing of the flat ranges `slots` cover.
  Packing packing_of(const std::vector<size_t>& slots) const;
  torch::Tensor new_buffer(int64_t numel);
  void ensure_chunk_gradients();
  /// Resets the per-backward state of the buckets and the slots.
  void start_backward();

  models::CausalLM model_;
  Zero2Collectives collectives_;
  std::vector<Flat> flats_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::array<std::vector<torch::Tensor>, 3> masters_;
  size_t next_bucket_ = 0;
  bool in_backward_ = false;
  int64_t buffer_bytes_ = 0;  ///< bucket buffers alive
  int64_t peak_gradient_bytes_ = 0;
  int64_t reduced_in_backward_ = 0;
};

}  // namespace troupe::engine

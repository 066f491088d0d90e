#pragma once
/// ZeRO stage 3 for a trained model: parameters, gradients and AdamW state partitioned
/// over the data-parallel ranks in DeepSpeed's flat-chunk layout, decoder layers gathered
/// just before they run and freed after.
///
/// Layout. For each decoder layer and each optimizer group (decay, no-decay, LoRA; plus
/// the frozen weights, which get no optimizer), the layer's parameters are flattened in
/// order into one buffer padded with zeros to world * C elements and split into `world`
/// equal chunks of C; rank r keeps only chunk r, in the parameters' dtype (the fp32
/// master). Outside a gather the layer's `param.data` are 0-element placeholders. The
/// optimizer steps these chunks; their gradients are reduce-scattered into them.
///
/// Forward: run_layer (models/causal_lm.hpp) calls the hooks set here: all-gather the
/// layer's chunks, point its parameters at views of the gathered buffer, run it without
/// keeping autograd state (checkpointed), free the gathered buffer. Backward of the
/// layer: all-gather again, recompute it with grad, back-propagate, reduce-scatter its
/// full gradients into this rank's chunk gradients (averaged over the ranks), free the
/// gradients and the gathered weights.
///
/// Prefetch (DeepSpeed's stage3_prefetch_bucket_size, counted in layers): when layer i
/// is gathered for the forward, the gathers of layers i+1 .. i+P start and run while it
/// computes (P = prefetch_layers; in the backward, which runs the layers in reverse,
/// i-1 .. i-P); P = 0 gathers each layer only when it runs. Resident parameters: this
/// rank's chunks, the kept-whole parameters below and at most 1 + P whole layers.
/// Why every rank still issues the same collectives in the same order: whether a gather
/// is started ahead, used or waited for and dropped depends only on the layer index, the
/// layer count, P and which layers are whole, which every rank shares; a gather counts
/// as a collective where it starts, not where it is waited for; and every collective
/// that does not continue the pass (the next pass's first layer, a layer out of turn,
/// the gradient and step collectives, a FullParameters or TensorParallelSlices scope,
/// finish_prefetches(), destruction) first waits for and frees the gathers started
/// ahead and unused (a pass that ended early: an exception, a model that stops). A
/// started gather only completes, so waiting for it cannot deadlock: every rank started it.
///
/// The exception: the parameters outside the decoder layers (token and position
/// embeddings, the final norm, OPT's projections, the LM head, the value head) stay
/// whole on every rank, as DeepSpeed keeps small "persistent" parameters; the embedding
/// would otherwise be gathered twice per pass when tied to the LM head. Their gradients
/// and AdamW state are partitioned like the layers' (one flat per parameter), and after
/// each optimizer step their whole values are all-gathered from the chunks (a rank's
/// chunk is a view of its own slice of the whole value). Memory cost: their whole size,
/// instead of 1/N of it, on every rank (for OPT-1.3b the 50272 x 2048 tied embedding
/// and 2050 x 2048 positions, 107 M parameters, 0.43 GB fp32, about 8% of the model),
/// plus their whole gradients between the backward and reduce_scatter_kept_gradients().
///
/// Every rank must make the same calls in the same order (each is a collective), with
/// models that have the same parameter names and shapes. At construction each rank
/// keeps its chunk of its own weights, so the ranks should start from the same model
/// (loaded from the same checkpoint). A model built inside a models::PartitionedInit
/// (DeepSpeed's zero.Init) never was whole on any rank: its layers' values come from the
/// build's PartitionedLayers, one layer whole at a time, or straight from the mapped
/// checkpoint it was loaded from, each rank reading only its chunks' elements.
#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include <troupe/models/causal_lm.hpp>
#include <troupe/models/partitioned_init.hpp>
#include <troupe/models/tensor_parallel.hpp>
#include <troupe/placement/resharding.hpp>

namespace troupe::engine {

/// The data-parallel collectives ZeRO stage 3 runs on, as callbacks: the engine does
/// not know the transport (actors/ passes c10d's). Every rank calls each in the same
/// order with tensors of the same shape and dtype.
struct Zero3Collectives {
  int rank = 0;
  int world = 1;
  /// `flat` (world * C) receives every rank's `chunk` (C), rank r's at [r * C, (r + 1) * C).
  std::function<void(const torch::Tensor& chunk, torch::Tensor& flat)> all_gather;
  /// Optional: all_gather(chunk, flat) started, and what completes it: `flat` holds the
  /// result once the returned function has run (call it once; `chunk` and `flat` must
  /// stay as they are until then). It counts as a collective where it starts, whenever
  /// it is completed. Without it, a prefetch (Zero3Partition's prefetch_layers) runs
  /// all_gather where it starts: the same order of collectives, nothing overlapped.
  std::function<std::function<void()>(const torch::Tensor& chunk, torch::Tensor& flat)> start_all_gather;
  /// `chunk` (C) receives the sum over the ranks of their `flat` (world * C) slices
  /// [rank * C, (rank + 1) * C).
  std::function<void(const torch::Tensor& flat, torch::Tensor& chunk)> reduce_scatter_sum;
  /// In place, the sum over the ranks, the same on every rank.
  std::function<void(torch::Tensor& tensor)> all_reduce_sum;
  /// Optional (the tensor-parallel reshard uses it). `send` holds this rank's elements
  /// for rank 0, then rank 1, ... (`send_counts[r]` each); `receive` gets what every rank
  /// s sent to this one, in rank order (`receive_counts[s]` each).
  std::function<void(const torch::Tensor& send, const std::vector<int64_t>& send_counts, torch::Tensor& receive,
                     const std::vector<int64_t>& receive_counts)>
      all_to_all;
  /// Optional, preferred over all_to_all by the tensor-parallel reshard: the same exchange
  /// without the packed `send` and `receive` buffers (transport::AllToAllStreams):
  /// `pack(d, offset, count, out)` writes elements [offset, offset + count) of what this
  /// rank sends rank d into `out`, `unpack(s, offset, count, in)` takes those rank s sent
  /// this one from `in`; the collective calls them piece by piece where its data is.
  using PackPiece = std::function<void(int peer, int64_t offset, int64_t count, void* out)>;
  using UnpackPiece = std::function<void(int peer, int64_t offset, int64_t count, const void* in)>;
  std::function<void(torch::ScalarType dtype, const std::vector<int64_t>& send_counts,
                     const std::vector<int64_t>& receive_counts, const PackPiece& pack, const UnpackPiece& unpack)>
      all_to_all_streams;
};

/// Decoder layers a pass gathers ahead of the one it runs, by default (DeepSpeed-Chat's
/// stage3_prefetch_bucket_size, 3e7 elements, is most of one OPT-1.3b layer, 5e7).
constexpr int kDefaultZero3PrefetchLayers = 1;

class Zero3Partition {
 public:
  /// Partitions `model`'s parameters and sets its layer hooks. `built`: what a
  /// models::PartitionedInit left on this rank when the model was built in one (its
  /// layer values are taken and released here). Throws troupe::Error for a rank outside
  /// [0, world), a missing collective, a model without recognisable decoder layers
  /// (parameter names with `layers.N.` or `h.N.`), placeholders without `built`, or a
  /// negative `prefetch_layers` (gathers started ahead of the running layer; 0 = none).
  Zero3Partition(models::CausalLM model, Zero3Collectives collectives,
                 std::shared_ptr<models::PartitionedLayers> built = nullptr,
                 int prefetch_layers = kDefaultZero3PrefetchLayers);
  /// Removes the hooks. The layers stay partitioned: materialise them first (a
  /// write-back-free gather_full_parameters() and a copy) if the model must outlive this.
  ~Zero3Partition();
  Zero3Partition(const Zero3Partition&) = delete;
  Zero3Partition& operator=(const Zero3Partition&) = delete;

  /// This rank's trainable master chunks by ParamGroup (what the optimizer steps): leaf
  /// tensors (C) whose gradients hold this rank's share of the averaged gradient.
  const std::array<std::vector<torch::Tensor>, 3>& master_chunks() const { return masters_; }

  /// After each backward: the kept-whole parameters' gradients are summed into their
  /// chunks (averaged over the ranks, added to what earlier micro-batches left) and
  /// freed. A parameter that got no gradient on any rank keeps none, so AdamW skips it
  /// as it would in one process. (In a decoder layer a missing gradient counts as zeros.)
  void reduce_scatter_kept_gradients();
  /// The global L2 norm over every rank's chunk gradients (an all-reduce of the squared
  /// norm); scales them by max_norm / (norm + 1e-6) when that is below 1, as
  /// torch::nn::utils::clip_grad_norm_ does. Returns the norm before clipping.
  double clip_gradients(double max_norm);
  /// After the optimizer step: the kept-whole parameters take their new values from the
  /// chunks (all-gather). The decoder layers need nothing: their chunks are the masters.
  void gather_kept_parameters();

  /// Every parameter whole while it lives (saving a checkpoint, entering generation):
  /// the layers are gathered at construction (a collective: every rank constructs it)
  /// and released when it ends. With `write_back`, each rank's chunks first take the
  /// values the whole parameters hold at the end, so a loader can write into them.
  class FullParameters {
   public:
    FullParameters(FullParameters&& other) noexcept;
    FullParameters& operator=(FullParameters&&) = delete;
    ~FullParameters();

   private:
    friend class Zero3Partition;
    FullParameters(Zero3Partition& owner, bool write_back);
    Zero3Partition* owner_;
    bool write_back_;
  };
  [[nodiscard]] FullParameters gather_full_parameters(bool write_back = false);

  /// Every decoder layer as this rank's tensor-parallel slice while it lives (the Hybrid
  /// Engine's generation with inference_tp_size W): each rank receives from the others'
  /// chunks exactly the elements of its Megatron slice of every layer (one all-to-all
  /// per flat, planned by placement::plan_flat_reshard), never a whole layer. The layers'
  /// parameters are those slices, shaped as models::tensor_parallel_slice() says, for
  /// models::enter_tensor_parallel_slices(); parameters outside the
  /// layers stay whole. A collective: every rank of the ZeRO group constructs it. The
  /// generation groups are consecutive ranks: `group.rank` must be rank % group.world.
  /// Without an all_to_all collective each layer is all-gathered whole and cut.
  class TensorParallelSlices {
   public:
    TensorParallelSlices(TensorParallelSlices&& other) noexcept;
    TensorParallelSlices& operator=(TensorParallelSlices&&) = delete;
    ~TensorParallelSlices();

   private:
    friend class Zero3Partition;
    explicit TensorParallelSlices(Zero3Partition& owner, const models::TensorParallelRank& group);
    Zero3Partition* owner_;
  };
  [[nodiscard]] TensorParallelSlices gather_tensor_parallel_slices(const models::TensorParallelRank& group);
  /// The elements this rank needs to receive for its slices under a tensor-parallel
  /// group of `world`: its slice of every layer minus what its own chunks hold (the
  /// least any reshard can move), in bytes.
  int64_t tensor_parallel_minimum_bytes(int world);

  int prefetch_layers() const { return prefetch_layers_; }
  /// Layers whose gathers were started ahead and not yet used (0 outside a pass).
  int64_t layers_in_flight() const { return static_cast<int64_t>(in_flight_.size()); }
  /// Waits for and frees the gathers a pass started ahead and did not use (one that
  /// stopped early, e.g. on an exception). Starts no collective; the next collective of
  /// this partition does the same first. TrainEngine calls it when a pass throws.
  void finish_prefetches();

  /// This rank's parameter bytes now: master chunks, kept-whole parameters and any
  /// gathered or in-flight layer (none outside a pass or a FullParameters scope).
  int64_t param_resident_bytes() const { return resident_bytes_; }
  /// The most param_resident_bytes() has been since construction or reset_peak().
  int64_t peak_param_resident_bytes() const { return peak_bytes_; }
  void reset_peak() { peak_bytes_ = resident_bytes_; }
  /// Bytes this rank has received from the other ranks' chunks in all-gathers since
  /// construction (what a whole-model gather for generation moves, per rank).
  int64_t received_bytes() const { return received_bytes_; }
  int64_t whole_param_bytes() const { return whole_bytes_; }   ///< every parameter whole, once
  int64_t kept_whole_bytes() const { return kept_bytes_; }     ///< the exception, whole
  int64_t padding_bytes() const { return padding_bytes_; }     ///< zeros added to this rank's chunks
  int64_t largest_layer_bytes() const;                         ///< one decoder layer gathered (padded)
  int64_t layer_count() const { return static_cast<int64_t>(layers_.size()); }
  int rank() const { return collectives_.rank; }
  int world() const { return collectives_.world; }

 private:
  /// A flat's reshard into tensor-parallel slices of one world size, planned once.
  struct SlicePlan {
    placement::FlatReshardPlan plan;
    /// [source rank][destination tensor-parallel rank]: the plan's transfers, in order,
    /// and their element count (what the source sends there).
    std::vector<std::vector<std::vector<placement::Transfer>>> runs;
    std::vector<std::vector<int64_t>> counts;
    std::vector<std::vector<int64_t>> shapes;  ///< each parameter's slice shape
    /// Every rank's slices are the whole flat in its own layout (a tensor-parallel world
    /// of 1): an all-gather of the chunks is the result, nothing to rearrange.
    bool whole_flat = false;
  };
  /// One flat buffer: parameters of one layer (or one kept parameter) and one group.
  struct Flat {
    int group = 0;  ///< ParamGroup, or kFrozen
    std::vector<torch::Tensor> parameters;
    std::vector<std::string> names;
    std::vector<std::vector<int64_t>> shapes;
    std::vector<int64_t> offsets;
    int64_t numel = 0;       ///< unpadded
    int64_t chunk = 0;       ///< C = padded numel / world
    torch::Tensor master;    // (C) this rank's chunk
    torch::Tensor gathered;  // (world * C) while gathered, (this rank's slices) while sliced, else undefined
    int64_t gathered_bytes() const;
    std::map<int, SlicePlan> slice_plans;  ///< by tensor-parallel world
  };
  struct Layer {
    std::vector<Flat> flats;
    int holds = 0;  ///< open gathers: a pass's hook and FullParameters may overlap
    /// A gather started ahead: what completes each flat's, until waited for.
    std::vector<std::function<void()>> arrivals;
  };
  static constexpr int kFrozen = 3;
  /// A parameter going into a flat, with its whole shape (a placeholder has none).
  struct Member {
    torch::Tensor parameter;
    std::string name;
    std::vector<int64_t> shape;
  };

  /// The member's whole value to copy its chunk elements from: the parameter itself, or
  /// for a placeholder of a partitioned build its source or its view of `whole_built`.
  static torch::Tensor value_of(const Member& member, models::PartitionedLayers* built, const torch::Tensor& whole_built);
  Flat make_flat(int group, const std::vector<Member>& members, const std::vector<torch::Tensor>& values,
                 bool keep_whole = false);
  /// The flat's tensor-parallel plan for a group of `world` (cached per flat and world).
  const SlicePlan& slice_plan(Flat& flat, int world);
  /// Fills flat.gathered with this rank's slices (tp rank `tp_rank` of `world`) and
  /// points the parameters at them.
  void gather_slices(Flat& flat, int world, int tp_rank);
  void gather_flat(Flat& flat);
  /// Sums the flat's parameter gradients into its chunk gradient (averaged) and frees them.
  void reduce_scatter_flat(Flat& flat);
  /// Makes `layer` whole (for a pass when `ahead` is +1 forward or -1 backward: then
  /// also starts the gathers of the next prefetch_layers in that direction).
  void gather(int64_t layer, int ahead = 0);
  /// Allocates the layer's gathered buffers and gathers into them: started and left
  /// running when `ahead` (a prefetch, with start_all_gather), else done before it returns.
  void start_gather(int64_t layer, bool ahead);
  /// Waits for the layer's started gathers; frees its buffers if one fails.
  void finish_gather(Layer& layer);
  /// Points the layer's parameters at its gathered buffers.
  void use_gathered(Layer& layer);
  /// Frees the layer's gathered buffers; its parameters become placeholders.
  void free_gathered(Layer& layer);
  void release(int64_t layer);
  void after_backward(int64_t layer);
  Layer& layer_at(int64_t layer, const char* where);
  void add_resident(int64_t bytes);

  models::CausalLM model_;
  Zero3Collectives collectives_;
  std::vector<Layer> layers_;
  std::vector<Flat> kept_;  ///< trainable parameters outside the layers, one flat each, always gathered
  std::array<std::vector<torch::Tensor>, 3> masters_;
  int prefetch_layers_ = kDefaultZero3PrefetchLayers;
  std::deque<int64_t> in_flight_;  ///< layers gathered ahead, in the order their gathers started
  int64_t whole_bytes_ = 0;
  int64_t kept_bytes_ = 0;
  int64_t padding_bytes_ = 0;
  int64_t resident_bytes_ = 0;
  int64_t peak_bytes_ = 0;
  int64_t received_bytes_ = 0;
  bool sliced_ = false;  ///< a TensorParallelSlices scope is open
};

}  // namespace troupe::engine

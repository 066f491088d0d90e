#pragma once
/// Building a model whose decoder layers are partitioned over data-parallel ranks as
/// they are built, as DeepSpeed's `zero.Init` context does: no rank ever holds the
/// whole model.
///
/// While a PartitionedInit lives on a thread, make_causal_lm (and load_pretrained, which
/// builds through it) hands each decoder layer over right after building it. Its
/// parameters, flattened in module order and padded with zeros to `world` equal chunks,
/// leave only chunk `rank` on this rank, and become 0-element placeholders that keep
/// their dtype, device and requires_grad (what LoRA, dtype changes and `to()` act on
/// until the partition takes over). The layer is built whole first, drawing the same
/// random numbers as a whole build, so the same seed gives the same full weights.
///
/// load_pretrained under the scope keeps no built values: it records, for each layer
/// parameter, its tensor in the memory-mapped checkpoint, and engine::Zero3Partition later
/// reads only the elements of this rank's chunks from it.
///
/// engine::Zero3Partition (TrainEngine::set_zero3) takes the PartitionedLayers and builds
/// its own flats layer by layer (one layer whole at a time, an all-gather of the built
/// chunks); a model built in the scope cannot run before that.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

namespace troupe::models {

/// "model.decoder.layers.3.fc1.weight" -> {3, "fc1.weight"}: the decoder layer a
/// parameter belongs to (Hugging Face names: `layers.N.` or GPT-2's `h.N.`), else nullopt.
std::optional<std::pair<int64_t, std::string>> decoder_layer_of(const std::string& name);

/// What the decoder layers built in a PartitionedInit left on this rank.
class PartitionedLayers {
 public:
  struct Parameter {
    std::vector<int64_t> shape;  ///< the whole parameter's
    int64_t offset = 0;          ///< where it starts in its layer's build flat
    /// The whole value to read this rank's elements from (a view of a mapped checkpoint,
    /// nothing read until used); undefined: the value is in the layer's build chunks.
    torch::Tensor source;
  };
  struct Layer {
    std::map<std::string, Parameter> parameters;  ///< by name within the layer ("fc1.weight")
    int64_t numel = 0;                            ///< the build flat, unpadded
    int64_t chunk = 0;                            ///< C: the flat padded to world * C
    torch::Tensor built;                          // (C) this rank's chunk of the built values; undefined when loaded
  };

  PartitionedLayers(int rank, int world) : rank_(rank), world_(world) {}
  int rank() const { return rank_; }
  int world() const { return world_; }

  /// The record of a full parameter name, or null when it is not in a partitioned layer.
  Parameter* find(const std::string& name);
  /// Layer `index`, or null when none was built partitioned.
  Layer* layer(int64_t index);
  /// Frees what layer `index` holds here (its values have been taken).
  void release(int64_t index);
  /// Bytes of built values this rank holds now (its chunks).
  int64_t held_bytes() const;

 private:
  friend class PartitionedInit;
  int rank_, world_;
  std::map<int64_t, Layer> layers_;
};

/// The scope: partitioned construction on this thread for its lifetime.
class PartitionedInit {
 public:
  /// Throws troupe::Error for a rank outside [0, world) or when a scope is already open
  /// on this thread.
  PartitionedInit(int rank, int world);
  ~PartitionedInit();
  PartitionedInit(const PartitionedInit&) = delete;
  PartitionedInit& operator=(const PartitionedInit&) = delete;

  /// What the layers built so far left on this rank; engine::Zero3Partition takes it.
  const std::shared_ptr<PartitionedLayers>& layers() const { return layers_; }

  /// This thread's open scope, or null.
  static PartitionedInit* current();

  /// Called by the model families with each decoder layer just built: records it and
  /// leaves placeholders (keeping this rank's chunk of its values unless they will be
  /// loaded). Nothing outside a scope.
  static void take_built_layer(torch::nn::Module& layer, int64_t index);

  /// load_pretrained: the layers built from here on keep no values (they come from a
  /// checkpoint through set_source).
  void expect_loaded_values() { keep_built_values_ = false; }
  /// A loader's whole value for the partitioned parameter `name`; throws troupe::Error
  /// when its shape is not the parameter's.
  void set_source(const std::string& name, const torch::Tensor& value, const std::string& where);

 private:
  void take(torch::nn::Module& layer, int64_t index);

  std::shared_ptr<PartitionedLayers> layers_;
  bool keep_built_values_ = true;
};

}  // namespace troupe::models

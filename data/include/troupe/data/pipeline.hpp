#pragma once
/// The data pipeline, from `SCHEMA=PATH` files to training batches.
///
/// How the training loops pull data (steps 1-2 in engine/, step 3 in rl/ + actors/):
///
///   data::PipelineOptions opt;
///   opt.data_path = {data::parse_dataset_spec("Dahoas/rm-static=/data/rm-static")};
///   opt.tokenizer_dir = model_dir;  opt.cache_dir = output_dir / "data_cache";
///   opt.rank = rank;  opt.world_size = world;      // rank 0 builds, the others wait
///   data::PhaseData d = data::load_phase_data(opt, /*phase=*/1);
///   const auto pad = data::pad_token_id(*tokenizer);
///   // each rank's batches of an epoch, as DistributedSampler gives them (sampler.hpp):
///   data::SamplerOptions so;  so.seed = seed;  so.epoch = epoch;  so.rank = rank;  so.world_size = world;
///   for (const auto& idx : data::distributed_batches(d.train.size(), per_device_batch, so)) {
///     // then collate (collate.hpp):
///     auto b1 = data::make_step1_batch(d.train, idx, opt.lengths.max_seq_len, pad);  // (B, T) right padded
///     auto b2 = data::make_step2_batch(d.train, idx, opt.lengths.max_seq_len, pad);  // (2B, T) chosen then rejected
///     auto b3 = data::make_step3_batch(d.train, idx, opt.lengths.max_prompt_seq_len, pad);  // (B, P) left padded
///   }
///   // mixture training (unsupervised.hpp):
///   auto blocks = data::make_unsupervised_blocks(data::read_text_corpus(path), *tokenizer, P + A);
///   auto bu = data::make_unsupervised_batch(blocks, idx);  // labels = input_ids
///
/// `PhaseDataset` is a memory-mapped cache file, keyed by everything that changes its
/// content (cache_key); a changed input gets a new file, an unchanged one is reused.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <troupe/data/dataset.hpp>
#include <troupe/data/phase_samples.hpp>
#include <troupe/data/sampler.hpp>
#include <troupe/data/token_cache.hpp>
#include <troupe/data/tokenize.hpp>

namespace troupe::data {

struct PipelineOptions {
  std::vector<DatasetSpec> data_path;           ///< blended for all phases
  std::vector<DatasetSpec> sft_only_data_path;  ///< whole, step 1 only
  SplitOptions split;
  ReadOptions read;
  LengthOptions lengths;
  std::filesystem::path tokenizer_dir;  ///< a model directory with tokenizer files
  std::filesystem::path cache_dir;      ///< created when missing
  int rank = 0;
  int world_size = 1;
  double wait_timeout_s = 1800;  ///< ranks > 0 wait this long for rank 0's cache
  double poll_interval_s = 0.2;
};

/// A phase's tokenized train and eval sets plus what reading and tokenizing found.
struct PhaseData {
  PhaseDataset train, eval;
  PhaseStats train_stats, eval_stats;
  std::vector<DatasetPhaseReport> reports;
  bool built = false;  ///< this call built the cache (rank 0, key not found)
};

/// The cache key of a phase split ("train" or "eval"): JSON text of the format version,
/// phase, split, seed, every source file with its size and mtime, the tokenizer files'
/// content hash, the lengths and skip_bad_samples.
std::string cache_key(const PipelineOptions& options, int phase, const std::string& split);

/// Where the cache file of that key lives: cache_dir/phase<P>_<split>_<hash>.trpdata.
std::filesystem::path cache_path(const PipelineOptions& options, int phase, const std::string& split);

/// Loads (or, on rank 0, builds) a phase's tokenized data. Ranks > 0 poll for rank 0's
/// files and throw troupe::Error after wait_timeout_s.
PhaseData load_phase_data(const PipelineOptions& options, int phase);

/// A 64-bit FNV-1a hash of the tokenizer files in `dir` (names and contents).
std::string tokenizer_fingerprint(const std::filesystem::path& dir);

}  // namespace troupe::data

#pragma once
/// The samples of one training phase: each dataset split 9:1 into train/eval when it
/// has no eval file, each side cut into the `--data_split` chunks, the phase's chunks
/// of all datasets blended, and (step 1 only) the `--sft_only_data_path` datasets
/// added whole. The order matches DeepSpeed-Chat's `create_prompt_dataset`.
#include <cstdint>
#include <string>
#include <vector>

#include <troupe/data/dataset.hpp>
#include <troupe/data/sample.hpp>

namespace troupe::data {

struct SplitOptions {
  std::vector<double> data_split{2, 4, 4};  ///< weights of phases 1, 2, 3
  uint32_t seed = 1234;                     ///< DeepSpeed-Chat's default
};

/// What one dataset gave a phase.
struct DatasetPhaseReport {
  std::string dataset;          ///< SCHEMA=PATH
  bool sft_only = false;
  bool eval_split_from_train = false;  ///< no eval file: 9:1 from train
  int64_t train_total = 0, eval_total = 0;  ///< before the phase split
  int64_t train = 0, eval = 0;              ///< in this phase
  ReadReport read;
};

struct PhaseSamples {
  int phase = 1;
  std::vector<Sample> train, eval;
  std::vector<DatasetPhaseReport> reports;
};

/// The phase's samples from datasets already read. Throws troupe::Error when the
/// split leaves a dataset's train chunk for this phase empty. An eval chunk may be
/// empty (small eval sets, as in DeepSpeed-Chat); the caller skips evaluation then.
PhaseSamples select_phase(const std::vector<RawDataset>& datasets, const std::vector<RawDataset>& sft_only,
                          const SplitOptions& split, int phase);

/// Train and eval samples of one dataset before the phase split (9:1 when no eval file).
std::pair<std::vector<Sample>, std::vector<Sample>> train_eval_samples(const RawDataset& dataset, uint32_t seed);

}  // namespace troupe::data

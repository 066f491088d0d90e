// Walks the mode-consistency table (mode_table.hpp): every model family in every mode
// against transformers' logits and log-probs, one CHECK per cell, the whole table
// printed once. Adding a mode means one function in rows_<group>.cpp and one line in
// kModes.
#include <catch2/catch.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <cstdio>
#include <exception>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <troupe/models/safetensors.hpp>

#include "../models/model_fixtures.hpp"
#include "mode_table.hpp"

namespace troupe::test {
namespace {

const std::vector<std::string> kFamilies = {"opt", "opt_postln", "gpt2", "llama"};

/// A mode with its tolerances: fp32 modes as the CPU and CUDA parity tests bound them
/// (test_hf_parity.cpp 1e-4, models/test_gpu.cpp 1e-3). bf16 modes are bounded by a
/// multiple of the error transformers' own bf16 model makes against its fp32 logits
/// on the family (expected_bf16.safetensors, tests/reference/make_bf16_fixtures.py:
/// 0.16 to 0.38 on these fixtures), as test_inference_layout.cpp bounds bf16.
struct ModeSpec {
  const char* name;
  ModeFn run;
  double cpu_tolerance;
  double cuda_tolerance;
  bool times_transformers_bf16_error = false;
};

// The bf16 modes reach at most 1.1 times transformers' bf16 error (opt_postln in
// autocast); a wrong weight or mask is off by the logits' own scale (~10).
const std::vector<ModeSpec> kModes = {
    {"whole", run_whole, 1e-4, 1e-3},
    {"tp2", run_tensor_parallel_2, 1e-4, 1e-3},
    {"lora_fused", run_lora_fused, 1e-4, 1e-3},
    {"lora_unfused", run_lora_unfused, 1e-4, 1e-3},
    {"checkpointed", run_checkpointed, 1e-4, 1e-3},
    {"bf16_autocast", run_bf16_autocast, 2, 2, true},
    {"kv_decode", run_kv_decode, 1e-4, 1e-3},
    {"packed_fp32", run_packed_fp32, 1e-4, 1e-3},
    {"packed_bf16", run_packed_bf16, 2, 2, true},
    {"zero3", run_zero3_2, 1e-4, 1e-3},
    {"seq_packed", run_sequence_packing, 1e-4, 1e-3},
};

/// Largest |bf16 - fp32| of transformers' logits on the family's left-padded batch,
/// over real positions.
double transformers_bf16_error(const std::string& family) {
  auto fp32 = models::read_safetensors(fixture_dir(family) / "expected.safetensors");
  auto bf16 = models::read_safetensors(fixture_dir(family) / "expected_bf16.safetensors");
  const auto real = (fp32.at("forward_left.attention_mask") != 0).unsqueeze(-1).expand_as(fp32.at("forward_left.logits"));
  return max_abs_diff(bf16.at("forward_left.logits").masked_select(real),
                      fp32.at("forward_left.logits").masked_select(real));
}

std::vector<ModeRow> mode_rows(torch::Device device) {
  std::vector<ModeRow> rows;
  for (const auto& family : kFamilies) {
    const double bf16_error = transformers_bf16_error(family);
    for (const auto& mode : kModes) {
      double tolerance = device.is_cuda() ? mode.cuda_tolerance : mode.cpu_tolerance;
      if (mode.times_transformers_bf16_error) tolerance *= bf16_error;
      rows.push_back({family, mode.name, device, tolerance, mode.run});
    }
  }
  return rows;
}

/// The family's left-padded batch and transformers' logits on it.
ModeInput load_input(const std::string& family, torch::Device device) {
  auto expected = models::read_safetensors(fixture_dir(family) / "expected.safetensors");
  return {family, device, expected.at("forward_left.input_ids"), expected.at("forward_left.attention_mask"),
          expected.at("forward_left.logits")};
}

/// log_softmax(logits[:, :-1])[ids[:, 1:]] (B, T - 1) in float64.
torch::Tensor reference_logprobs(const torch::Tensor& logits, const torch::Tensor& ids) {
  const int64_t t = ids.size(1) - 1;
  auto log_softmax = torch::log_softmax(logits.narrow(1, 0, t).to(torch::kDouble), -1);  // (B, T - 1, V)
  return log_softmax.gather(-1, ids.narrow(1, 1, t).unsqueeze(-1)).squeeze(-1);
}

/// One cell: each quantity's max |ours - reference| over real positions.
struct Cell {
  std::vector<std::pair<std::string, double>> diffs;  // "logits", "logprobs", then the mode's extras
  std::vector<std::string> failures;                  // an exception, a wrong shape, a vacuous comparison
};

Cell run_cell(const ModeRow& row, const ModeInput& input) {
  Cell cell;
  ModeRun run;
  try {
    run = row.run(input);
  } catch (const std::exception& e) {
    cell.failures.push_back(std::string("threw: ") + e.what());
    return cell;
  }
  const auto& expected = run.expected_logits.defined() ? run.expected_logits : input.logits;  // (B, T, V)
  const auto& ids = input.input_ids;
  const auto& mask = input.attention_mask;
  const int64_t t = ids.size(1) - 1;
  if (run.logits.sizes() != expected.sizes() || run.logprobs.sizes() != std::vector<int64_t>{ids.size(0), t}) {
    std::ostringstream why;
    why << "shapes: logits " << run.logits.sizes() << " (want " << expected.sizes() << "), log-probs "
        << run.logprobs.sizes();
    cell.failures.push_back(why.str());
    return cell;
  }
  // Logits at padding positions depend on how a backend masks a row with no visible
  // key; a log-prob is real when its position and its target are.
  const auto real = (mask != 0).unsqueeze(-1).expand_as(expected);                    // (B, T, V)
  const auto scored = (mask.narrow(1, 0, t) != 0).logical_and(mask.narrow(1, 1, t) != 0);  // (B, T - 1)
  cell.diffs.emplace_back("logits", max_abs_diff(run.logits.masked_select(real), expected.masked_select(real)));
  cell.diffs.emplace_back("logprobs", max_abs_diff(run.logprobs.masked_select(scored),
                                                   reference_logprobs(expected, ids).masked_select(scored)));
  for (const auto& extra : run.extra) cell.diffs.push_back(extra);
  for (const auto& why : run.vacuous) cell.failures.push_back("vacuous: " + why);
  return cell;
}

bool within(const Cell& cell, double tolerance) {
  if (!cell.failures.empty()) return false;
  for (const auto& [what, diff] : cell.diffs)
    if (!(diff <= tolerance)) return false;  // NaN fails too
  return true;
}

std::string format_double(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.2e", value);
  return buffer;
}

std::string table_line(const ModeRow& row, const Cell& cell) {
  char line[160];
  auto diff = [&](const char* what) {
    for (const auto& [name, value] : cell.diffs)
      if (name == what) return format_double(value);
    return std::string("-");
  };
  std::string extras;
  for (size_t i = 2; i < cell.diffs.size(); ++i)
    extras += (extras.empty() ? "" : " ") + cell.diffs[i].first + " " + format_double(cell.diffs[i].second);
  std::snprintf(line, sizeof line, "%-11s %-14s %-10s %-10s %-24s %-9s %s", row.family.c_str(), row.mode.c_str(),
                diff("logits").c_str(), diff("logprobs").c_str(), extras.empty() ? "-" : extras.c_str(),
                format_double(row.tolerance).c_str(), within(cell, row.tolerance) ? "ok" : "FAIL");
  std::string out = line;
  for (const auto& why : cell.failures) out += "\n    " + why;
  return out;
}

/// Runs every row of `device`, CHECKs each cell and prints the table once.
void walk(torch::Device device) {
  std::map<std::string, ModeInput> inputs;
  std::ostringstream table;
  table << "mode-consistency table on " << device << ": max |ours - reference| over real positions\n";
  char header[160];
  std::snprintf(header, sizeof header, "%-11s %-14s %-10s %-10s %-24s %-9s %s", "family", "mode", "logits",
                "logprobs", "other", "tolerance", "result");
  table << header << "\n";
  int failed = 0;
  const auto rows = mode_rows(device);
  for (const auto& row : rows) {
    if (!inputs.count(row.family)) inputs.emplace(row.family, load_input(row.family, device));
    const auto cell = run_cell(row, inputs.at(row.family));
    table << table_line(row, cell) << "\n";
    failed += !within(cell, row.tolerance);

    INFO("family " << row.family << ", mode " << row.mode << " on " << device);
    for (const auto& why : cell.failures) FAIL_CHECK(why);
    for (const auto& [what, diff] : cell.diffs) {
      INFO(what << ": max abs diff " << diff << ", tolerance " << row.tolerance);
      CHECK(diff <= row.tolerance);
    }
  }
  table << rows.size() - static_cast<size_t>(failed) << " of " << rows.size() << " cells within tolerance\n";
  std::cout << table.str() << std::flush;
  CHECK(rows.size() == kFamilies.size() * kModes.size());
}

}  // namespace

TEST_CASE("mode table: every family in every mode gives transformers' logits and log-probs", "[engine][mode_table]") {
  walk(torch::kCPU);
}

TEST_CASE("mode table on CUDA: every family in every mode gives transformers' logits and log-probs",
          "[gpu][engine][mode_table]") {
  if (!torch::cuda::is_available()) {
    WARN("no CUDA device: the mode table's CUDA rows are skipped");
    return;
  }
  walk(torch::Device(torch::kCUDA, 0));
}

}  // namespace troupe::test

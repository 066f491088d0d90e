#pragma once
// The kernel-consistency table, as llama.cpp's test-backend-ops: every kernel is run
// against its LibTorch reference over rows of (op, shape, dtype, device), compared by
// normalised error with NaN/inf checks. Adding a kernel means adding rows: a
// rows_<op>.cpp file registers its rows with TROUPE_CONSISTENCY_ROWS; the one test in
// test_consistency.cpp walks them all.
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace troupe::test {

/// The outputs of one run: kernel and reference, in the same order, same shapes.
struct ConsistencyOutputs {
  std::vector<torch::Tensor> kernel;
  std::vector<torch::Tensor> reference;
};

struct ConsistencyRow {
  std::string op;      // "decode_linear"
  std::string shape;   // "M=3 N=50 K=33 relu"
  std::string dtype;   // "fp32", "bf16"
  std::string device;  // "cpu" or "cuda" (cuda rows run only where a GPU is)
  /// Largest normalised error allowed: sum((a - b)^2) / sum(b^2) per output
  /// (sum((a - b)^2) when the reference is all zeros). 0 demands exact equality.
  double max_nmse = 1e-10;
  std::function<ConsistencyOutputs()> run;
};

std::vector<ConsistencyRow>& consistency_rows();

struct ConsistencyRegistrar {
  explicit ConsistencyRegistrar(const std::function<void(std::vector<ConsistencyRow>&)>& add) {
    add(consistency_rows());
  }
};

/// Normalised error of `actual` against `expected` as ConsistencyRow::max_nmse defines
/// it, in double.
double normalised_error(const torch::Tensor& actual, const torch::Tensor& expected);

}  // namespace troupe::test

#define TROUPE_CONSISTENCY_CAT2(a, b) a##b
#define TROUPE_CONSISTENCY_CAT(a, b) TROUPE_CONSISTENCY_CAT2(a, b)
/// TROUPE_CONSISTENCY_ROWS(rows) { rows.push_back({...}); }
#define TROUPE_CONSISTENCY_ROWS(rows)                                                                   \
  static void TROUPE_CONSISTENCY_CAT(add_consistency_rows_, __LINE__)(std::vector<troupe::test::ConsistencyRow>&); \
  static const troupe::test::ConsistencyRegistrar TROUPE_CONSISTENCY_CAT(consistency_registrar_, __LINE__)(  \
      TROUPE_CONSISTENCY_CAT(add_consistency_rows_, __LINE__));                                          \
  static void TROUPE_CONSISTENCY_CAT(add_consistency_rows_, __LINE__)(std::vector<troupe::test::ConsistencyRow> & rows)

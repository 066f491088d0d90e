/// `troupe data inspect`: what each dataset gives each phase, before any training.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <memory>
#include <sstream>

#include <troupe/common/error.hpp>
#include <troupe/data/dataset.hpp>
#include <troupe/data/phase_samples.hpp>
#include <troupe/data/split.hpp>
#include <troupe/data/tokenize.hpp>
#include <troupe/models/tokenizer.hpp>

#include "commands.hpp"

namespace troupe::apps {
namespace {

struct InspectArgs {
  std::vector<std::string> data_path;
  std::vector<std::string> sft_only_data_path;
  std::string data_split = "2,4,4";
  std::string tokenizer;
  uint32_t seed = 1234;
  data::LengthOptions lengths;
  bool skip_bad_samples = false;
  int samples = 3;
};

/// One line, newlines shown as \n, cut to `limit` characters.
std::string render(const std::string& text, size_t limit = 240) {
  std::string out;
  for (char c : text) {
    if (out.size() >= limit) return out + "...";
    if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

/// Nearest-rank percentile of sorted values.
int64_t percentile(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

const char* phase_sequence(int phase) {
  switch (phase) {
    case 1: return "prompt+chosen+EOS";
    case 2: return "prompt+chosen+EOS and prompt+rejected+EOS";
    default: return "prompt";
  }
}

void print_samples(const std::vector<data::Sample>& samples, int phase, int count) {
  int shown = 0;
  for (const auto& s : samples) {
    if (shown == count) break;
    if (!data::usable_in_phase(s, phase)) continue;
    std::cout << "      [" << shown++ << "]";
    if (phase == 3) {
      std::cout << " prompt: \"" << render(*s.prompt) << "\"\n";
    } else {
      std::cout << " \"" << render(data::joined_text(s.prompt, s.chosen)) << "\"\n";
      if (phase == 2) std::cout << "          rejected: \"" << render(data::joined_text(s.prompt, s.rejected)) << "\"\n";
    }
  }
}

void print_tokens(const std::vector<data::Sample>& samples, int phase, const models::Tokenizer& tokenizer,
                  const data::LengthOptions& lengths) {
  if (samples.empty()) {
    std::cout << "      none\n";
    return;
  }
  auto t = data::tokenize_phase(samples, phase, tokenizer, lengths);
  auto sorted = t.full_lengths;
  std::sort(sorted.begin(), sorted.end());
  std::cout << "      tokens (" << phase_sequence(phase) << "): p50 " << percentile(sorted, 50) << ", p90 "
            << percentile(sorted, 90) << ", p99 " << percentile(sorted, 99) << ", max "
            << (sorted.empty() ? 0 : sorted.back()) << "\n";
  const auto& st = t.stats;
  std::cout << "      kept " << st.kept << " of " << st.samples;
  if (phase == 3) {
    std::cout << "; dropped: " << st.no_prompt << " without prompt, " << st.prompt_too_long
              << " prompts over max_prompt_seq_len " << lengths.max_prompt_seq_len << "\n";
  } else {
    std::cout << "; dropped: " << st.no_chosen << " without chosen";
    if (phase == 2) std::cout << ", " << st.no_rejected << " without rejected";
    std::cout << "; cut at max_seq_len " << lengths.max_seq_len << ": " << st.truncated << "\n";
  }
}

void print_untokenized_drops(const std::vector<data::Sample>& samples, int phase) {
  int64_t unusable = 0;
  for (const auto& s : samples) unusable += !data::usable_in_phase(s, phase);
  std::cout << "      dropped: " << unusable << " without "
            << (phase == 1 ? "chosen" : phase == 2 ? "chosen or rejected" : "prompt")
            << " (give --tokenizer for token lengths and over-long counts)\n";
}

void inspect_dataset(const data::RawDataset& ds, bool sft_only, const data::SplitOptions& split,
                     const models::Tokenizer* tokenizer, const InspectArgs& args) {
  const auto& r = ds.report;
  std::cout << ds.spec.text() << (sft_only ? " (SFT only)" : "") << "\n"
            << "  files: " << ds.files.train.path.string()
            << (ds.files.eval ? " + " + ds.files.eval->path.string() : std::string(" (no eval file: 9:1 split)")) << "\n"
            << "  rows " << r.rows << ", samples " << r.samples << ", declined by the adapter " << r.declined
            << ", bad " << r.bad << "\n";
  for (const auto& e : r.bad_examples) std::cout << "    bad: " << e << "\n";
  for (int phase = 1; phase <= 3; ++phase) {
    if (sft_only && phase > 1) break;
    data::PhaseSamples p;
    try {
      p = data::select_phase(sft_only ? std::vector<data::RawDataset>{} : std::vector<data::RawDataset>{ds},
                             sft_only ? std::vector<data::RawDataset>{ds} : std::vector<data::RawDataset>{}, split, phase);
    } catch (const Error& e) {
      std::cout << "  phase " << phase << ": empty (" << e.what() << ")\n";
      continue;
    }
    std::cout << "  phase " << phase << ": train " << p.train.size() << ", eval " << p.eval.size() << "\n";
    if (tokenizer) {
      std::cout << "    train:\n";
      print_tokens(p.train, phase, *tokenizer, args.lengths);
      std::cout << "    eval:\n";
      print_tokens(p.eval, phase, *tokenizer, args.lengths);
    } else {
      std::cout << "    train:\n";
      print_untokenized_drops(p.train, phase);
    }
    std::cout << "    samples:\n";
    print_samples(p.train, phase, args.samples);
  }
}

void run_inspect(const InspectArgs& args) {
  data::SplitOptions split;
  split.data_split = data::parse_data_split(args.data_split);
  split.seed = args.seed;
  data::ReadOptions read;
  read.skip_bad_samples = args.skip_bad_samples;
  std::unique_ptr<models::Tokenizer> tokenizer;
  if (!args.tokenizer.empty()) tokenizer = models::load_tokenizer(args.tokenizer);
  std::vector<data::RawDataset> datasets, sft_only;
  for (const auto& spec : args.data_path) datasets.push_back(data::read_dataset(data::parse_dataset_spec(spec), read));
  for (const auto& spec : args.sft_only_data_path)
    sft_only.push_back(data::read_dataset(data::parse_dataset_spec(spec, "--sft_only_data_path"), read));
  std::cout << "data_split " << args.data_split << ", seed " << args.seed << "\n\n";
  for (const auto& ds : datasets) {
    inspect_dataset(ds, false, split, tokenizer.get(), args);
    std::cout << "\n";
  }
  for (const auto& ds : sft_only) {
    inspect_dataset(ds, true, split, tokenizer.get(), args);
    std::cout << "\n";
  }
  if (datasets.size() + sft_only.size() > 1) {
    std::cout << "blended:\n";
    for (int phase = 1; phase <= 3; ++phase) {
      try {
        auto p = data::select_phase(datasets, sft_only, split, phase);
        std::cout << "  phase " << phase << ": train " << p.train.size() << ", eval " << p.eval.size() << "\n";
      } catch (const Error& e) {
        std::cout << "  phase " << phase << ": empty (" << e.what() << ")\n";
      }
    }
  }
  int64_t bad = 0;
  for (const auto* list : {&datasets, &sft_only})
    for (const auto& ds : *list) bad += ds.report.bad;
  if (args.skip_bad_samples) std::cout << "bad samples skipped: " << bad << "\n";
}

}  // namespace

Command add_data_inspect_command(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  auto* cmd = parent_command(app, "data", "Datasets: the bundled demo task, inspection").add_subcommand("inspect", "Per dataset and phase: sample counts, token lengths, drops, examples");
  cmd->add_option("--data_path", args->data_path, "SCHEMA=PATH, e.g. Dahoas/rm-static=/data/rm-static; repeat to blend")
      ->required();
  cmd->add_option("--sft_only_data_path", args->sft_only_data_path, "SCHEMA=PATH used whole, in step 1 only");
  cmd->add_option("--data_split", args->data_split, "Weights of phases 1,2,3")->capture_default_str();
  cmd->add_option("--tokenizer", args->tokenizer, "Model or tokenizer directory, for token lengths")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--seed", args->seed, "Seed of the split permutation")->capture_default_str();
  cmd->add_option("--max_seq_len", args->lengths.max_seq_len, "Steps 1-2 sequence length")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--max_prompt_seq_len", args->lengths.max_prompt_seq_len, "Step 3 prompt length (longer dropped)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("--skip_bad_samples", args->skip_bad_samples, "Count and skip malformed rows instead of failing");
  cmd->add_option("--samples", args->samples, "Samples to show per phase")->capture_default_str()->check(CLI::NonNegativeNumber);
  return {cmd, [args] { run_inspect(*args); }};
}

}  // namespace troupe::apps

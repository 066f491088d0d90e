/// Cache keys, rank-0 build with waiting ranks, and the phase data they give.
#include <troupe/data/pipeline.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>
#include <troupe/models/tokenizer.hpp>

namespace troupe::data {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

uint64_t fnv1a(const std::string& bytes, uint64_t h = 1469598103934665603ULL) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

json file_json(const SourceFile& f) { return {{"path", fs::absolute(f.path).string()}, {"size", f.size}, {"mtime_ns", f.mtime_ns}}; }

json specs_json(const std::vector<DatasetSpec>& specs) {
  json out = json::array();
  for (const auto& spec : specs) {
    const auto files = find_dataset_files(spec);
    json j = {{"schema", spec.schema}, {"train", file_json(files.train)}};
    if (files.eval) j["eval"] = file_json(*files.eval);
    out.push_back(j);
  }
  return out;
}

json stats_json(const PhaseStats& s) {
  return {{"samples", s.samples}, {"kept", s.kept}, {"no_prompt", s.no_prompt}, {"no_chosen", s.no_chosen},
          {"no_rejected", s.no_rejected}, {"prompt_too_long", s.prompt_too_long}, {"truncated", s.truncated}};
}

PhaseStats stats_from(const json& j) {
  PhaseStats s;
  s.samples = j.at("samples");
  s.kept = j.at("kept");
  s.no_prompt = j.at("no_prompt");
  s.no_chosen = j.at("no_chosen");
  s.no_rejected = j.at("no_rejected");
  s.prompt_too_long = j.at("prompt_too_long");
  s.truncated = j.at("truncated");
  return s;
}

json reports_json(const std::vector<DatasetPhaseReport>& reports) {
  json out = json::array();
  for (const auto& r : reports)
    out.push_back({{"dataset", r.dataset}, {"sft_only", r.sft_only}, {"eval_split_from_train", r.eval_split_from_train},
                   {"train_total", r.train_total}, {"eval_total", r.eval_total}, {"train", r.train}, {"eval", r.eval},
                   {"rows", r.read.rows}, {"samples", r.read.samples}, {"declined", r.read.declined},
                   {"bad", r.read.bad}, {"bad_examples", r.read.bad_examples}});
  return out;
}

std::vector<DatasetPhaseReport> reports_from(const json& j) {
  std::vector<DatasetPhaseReport> out;
  for (const auto& r : j) {
    DatasetPhaseReport d;
    d.dataset = r.at("dataset");
    d.sft_only = r.at("sft_only");
    d.eval_split_from_train = r.at("eval_split_from_train");
    d.train_total = r.at("train_total");
    d.eval_total = r.at("eval_total");
    d.train = r.at("train");
    d.eval = r.at("eval");
    d.read.rows = r.at("rows");
    d.read.samples = r.at("samples");
    d.read.declined = r.at("declined");
    d.read.bad = r.at("bad");
    d.read.bad_examples = r.at("bad_examples").get<std::vector<std::string>>();
    out.push_back(std::move(d));
  }
  return out;
}

/// Both files of a phase opened with their keys checked, stats and reports parsed.
PhaseData open_phase(const fs::path& train, const std::string& train_key, const fs::path& eval, const std::string& eval_key) {
  PhaseData d;
  d.train = PhaseDataset::open(train, train_key);
  d.eval = PhaseDataset::open(eval, eval_key);
  try {
    const auto ti = json::parse(d.train.info());
    const auto ei = json::parse(d.eval.info());
    d.train_stats = stats_from(ti.at("stats"));
    d.eval_stats = stats_from(ei.at("stats"));
    d.reports = reports_from(ti.at("datasets"));
  } catch (const json::exception& e) {
    throw Error(train.string() + ": unreadable cache info (" + e.what() + "); delete it to rebuild");
  }
  return d;
}

void build_phase(const PipelineOptions& o, int phase, const fs::path& train_path, const std::string& train_key,
                 const fs::path& eval_path, const std::string& eval_key) {
  std::vector<RawDataset> datasets, sft_only;
  for (const auto& spec : o.data_path) datasets.push_back(read_dataset(spec, o.read));
  if (phase == 1)
    for (const auto& spec : o.sft_only_data_path) sft_only.push_back(read_dataset(spec, o.read));
  const auto samples = select_phase(datasets, sft_only, o.split, phase);
  const auto tokenizer = models::load_tokenizer(o.tokenizer_dir);
  const auto train = tokenize_phase(samples.train, phase, *tokenizer, o.lengths);
  const auto eval = tokenize_phase(samples.eval, phase, *tokenizer, o.lengths);
  const auto reports = reports_json(samples.reports);
  fs::create_directories(o.cache_dir);
  // Eval first: waiting ranks open both once the train file appears.
  write_token_cache(eval_path, eval_key, json{{"stats", stats_json(eval.stats)}, {"datasets", reports}}.dump(), eval);
  write_token_cache(train_path, train_key, json{{"stats", stats_json(train.stats)}, {"datasets", reports}}.dump(), train);
}

}  // namespace

std::string tokenizer_fingerprint(const fs::path& dir) {
  uint64_t h = fnv1a("troupe tokenizer");
  bool any = false;
  for (const char* name : {"tokenizer.json", "vocab.json", "merges.txt", "tokenizer.model", "tokenizer_config.json",
                           "special_tokens_map.json", "added_tokens.json"}) {
    if (!fs::is_regular_file(dir / name)) continue;
    any = true;
    h = fnv1a(name, h);
    h = fnv1a(read_file(dir / name), h);
  }
  if (!any) throw Error(dir.string() + ": no tokenizer files (tokenizer.json, vocab.json + merges.txt or tokenizer.model)");
  return hex(h);
}

std::string cache_key(const PipelineOptions& o, int phase, const std::string& split) {
  json key = {{"format", kCacheFormatVersion},
              {"phase", phase},
              {"split", split},
              {"data_split", o.split.data_split},
              {"seed", o.split.seed},
              {"data_path", specs_json(o.data_path)},
              {"sft_only_data_path", phase == 1 ? specs_json(o.sft_only_data_path) : json::array()},
              {"tokenizer", tokenizer_fingerprint(o.tokenizer_dir)},
              {"max_seq_len", o.lengths.max_seq_len},
              {"max_prompt_seq_len", o.lengths.max_prompt_seq_len},
              {"skip_bad_samples", o.read.skip_bad_samples}};
  return key.dump();
}

namespace {
fs::path path_for_key(const PipelineOptions& o, int phase, const std::string& split, const std::string& key) {
  return o.cache_dir / ("phase" + std::to_string(phase) + "_" + split + "_" + hex(fnv1a(key)) + ".trpdata");
}
}  // namespace

std::filesystem::path cache_path(const PipelineOptions& o, int phase, const std::string& split) {
  return path_for_key(o, phase, split, cache_key(o, phase, split));
}

PhaseData load_phase_data(const PipelineOptions& o, int phase) {
  if (o.cache_dir.empty()) throw Error("load_phase_data: no cache directory given");
  if (o.rank < 0 || o.rank >= std::max(o.world_size, 1))
    throw Error("rank " + std::to_string(o.rank) + " outside world size " + std::to_string(o.world_size));
  const auto train_key = cache_key(o, phase, "train");
  const auto eval_key = cache_key(o, phase, "eval");
  const auto train_path = path_for_key(o, phase, "train", train_key);
  const auto eval_path = path_for_key(o, phase, "eval", eval_key);
  if (o.rank == 0) {
    if (fs::exists(train_path) && fs::exists(eval_path)) {
      try {
        return open_phase(train_path, train_key, eval_path, eval_key);
      } catch (const Error&) {
        // A damaged or colliding file: rebuild it below.
      }
    }
    build_phase(o, phase, train_path, train_key, eval_path, eval_key);
    auto d = open_phase(train_path, train_key, eval_path, eval_key);
    d.built = true;
    return d;
  }
  const auto start = std::chrono::steady_clock::now();
  while (!(fs::exists(train_path) && fs::exists(eval_path))) {
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (waited >= o.wait_timeout_s)
      throw Error("rank " + std::to_string(o.rank) + ": waited " + std::to_string(static_cast<int64_t>(waited)) +
                  " s for the tokenized cache " + train_path.string() +
                  " that rank 0 builds; did rank 0 fail or use other data flags?");
    std::this_thread::sleep_for(std::chrono::duration<double>(o.poll_interval_s));
  }
  return open_phase(train_path, train_key, eval_path, eval_key);
}

}  // namespace troupe::data

/// JSONL files of the demo corpus.
#include <troupe/data/demo_corpus.hpp>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>

namespace troupe::data {
namespace {

std::string single_field_jsonl(const std::vector<std::string>& values, const char* field) {
  std::string out;
  for (const auto& v : values) out += nlohmann::ordered_json{{field, v}}.dump() + "\n";
  return out;
}

}  // namespace

std::string demo_pairs_jsonl(const std::vector<DemoPair>& pairs) {
  std::string out;
  for (const auto& p : pairs) {
    nlohmann::ordered_json row = {
        {"prompt", p.prompt}, {"response", p.response}, {"chosen", p.chosen}, {"rejected", p.rejected}};
    out += row.dump() + "\n";
  }
  return out;
}

std::string demo_prompts_jsonl(const std::vector<std::string>& prompts) { return single_field_jsonl(prompts, "prompt"); }

std::string demo_texts_jsonl(const std::vector<std::string>& texts) { return single_field_jsonl(texts, "text"); }

void write_demo_corpus(const DemoCorpus& corpus, const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    throw Error(dir.string() + ": cannot create the demo corpus folder" + (ec ? " (" + ec.message() + ")" : ""));
  write_file_atomically(dir / "train.jsonl", demo_pairs_jsonl(corpus.train));
  write_file_atomically(dir / "test.jsonl", demo_pairs_jsonl(corpus.test));
  write_file_atomically(dir / "prompts.jsonl", demo_prompts_jsonl(corpus.prompts));
  write_file_atomically(dir / "unsupervised.jsonl", demo_texts_jsonl(corpus.unsupervised));
  if (!corpus.demonstrations.empty()) {
    // A folder of its own: a local/jsonfile dataset for --sft_only_data_path.
    std::string rows;
    for (const auto& d : corpus.demonstrations)
      rows += nlohmann::ordered_json{{"prompt", d.prompt}, {"chosen", d.chosen}}.dump() + "\n";
    std::filesystem::create_directories(dir / "demonstrations");
    write_file_atomically(dir / "demonstrations" / "train.jsonl", rows);
  }
}

}  // namespace troupe::data

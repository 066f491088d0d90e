/// `troupe tokenizer train`: learns a byte-level BPE tokenizer from text or JSONL files
/// and writes a tokenizer.json (plus its config) that troupe and Hugging Face load.
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/models/bpe_trainer.hpp>

#include "commands.hpp"

namespace troupe::apps {
namespace {

struct TokenizerTrainArgs {
  std::vector<std::string> inputs;
  std::vector<std::string> fields = {"text", "prompt", "chosen", "rejected", "response"};
  std::string out;
  models::BpeTrainerOptions trainer;
  std::string bos = "<s>", eos = "</s>", pad = "<pad>", unk = "<unk>";
};

/// Texts of one input: each line of a .txt file, or the listed string fields of each
/// JSON line of a .jsonl file.
void read_texts(const std::string& path, const std::vector<std::string>& fields, std::vector<std::string>& texts) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open");
  const bool jsonl = path.size() > 6 && path.substr(path.size() - 6) == ".jsonl";
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    if (!jsonl) {
      texts.push_back(line);
      continue;
    }
    auto row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (row.is_discarded() || !row.is_object())
      throw Error(path + ":" + std::to_string(number) + ": not a JSON object");
    for (const auto& field : fields)
      if (row.contains(field) && row[field].is_string()) texts.push_back(row[field].get<std::string>());
  }
}

void run_tokenizer_train(TokenizerTrainArgs args) {
  std::vector<std::string> texts;
  for (const auto& input : args.inputs) read_texts(input, args.fields, texts);
  if (texts.empty()) throw Error("--input: no text found in the given files");
  auto& t = args.trainer;
  t.special_tokens = {args.bos, args.eos, args.pad, args.unk};
  t.bos_token = args.bos;
  t.eos_token = args.eos;
  t.pad_token = args.pad;
  t.unk_token = args.unk;
  auto tokenizer = models::train_bpe_tokenizer(texts, t);
  tokenizer->save(args.out);
  std::cout << "tokenizer: " << tokenizer->vocab_size() << " tokens from " << texts.size() << " texts -> " << args.out
            << "\n";
}

}  // namespace

Command add_tokenizer_command(CLI::App& app) {
  auto args = std::make_shared<TokenizerTrainArgs>();
  auto* cmd = parent_command(app, "tokenizer", "Tokenizer tools").add_subcommand("train", "Train a byte-level BPE tokenizer on .txt (a text per line) or .jsonl files");
  cmd->add_option("--input", args->inputs, "Text or JSONL files; repeat for several")->required()->check(CLI::ExistingFile);
  cmd->add_option("--fields", args->fields, "String fields of JSONL rows to learn from")->capture_default_str()->delimiter(',');
  cmd->add_option("--out", args->out, "Directory for tokenizer.json and tokenizer_config.json")->required();
  cmd->add_option("--vocab_size", args->trainer.vocab_size, "Vocabulary size (special + 256 bytes + merges)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{260}, int64_t{1} << 24));
  cmd->add_option("--min_frequency", args->trainer.min_frequency, "Never merge a pair seen fewer times")->capture_default_str();
  cmd->add_option("--bos_token", args->bos, "Beginning-of-sequence token")->capture_default_str();
  cmd->add_option("--eos_token", args->eos, "End-of-sequence token")->capture_default_str();
  cmd->add_option("--pad_token", args->pad, "Padding token")->capture_default_str();
  cmd->add_option("--unk_token", args->unk, "Unknown token")->capture_default_str();
  cmd->add_flag("--add_bos_token", args->trainer.add_bos_token, "Encode with a leading bos token by default");
  return {cmd, [args] { run_tokenizer_train(*args); }};
}

}  // namespace troupe::apps

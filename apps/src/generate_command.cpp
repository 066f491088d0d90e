/// `troupe generate`: completions for text prompts from a Hugging Face model directory.
#include <iostream>
#include <memory>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/models/generation.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/tokenizer.hpp>

#include "commands.hpp"
#include "device_flags.hpp"

namespace troupe::apps {
namespace {

struct GenerateArgs {
  std::string model;
  std::vector<std::string> prompts;
  models::GenerationOptions generation;
  DeviceFlags device;
  bool json = false;
};

/// Left-pads token lists into (B, T) ids and mask.
std::pair<torch::Tensor, torch::Tensor> left_pad(const std::vector<std::vector<int64_t>>& rows, int64_t pad) {
  size_t width = 0;
  for (const auto& r : rows) width = std::max(width, r.size());
  auto ids = torch::full({static_cast<int64_t>(rows.size()), static_cast<int64_t>(width)}, pad, torch::kLong);
  auto mask = torch::zeros_like(ids);
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto offset = static_cast<int64_t>(width - rows[i].size());
    for (size_t j = 0; j < rows[i].size(); ++j) {
      ids[i][offset + j] = rows[i][j];
      mask[i][offset + j] = 1;
    }
  }
  return {ids, mask};
}

void run_generate(const GenerateArgs& args) {
  auto tokenizer = models::load_tokenizer(args.model);
  models::LoadOptions load;
  load.device = args.device.device();
  load.dtype = args.device.dtype();
  auto model = models::load_pretrained(args.model, load);

  std::vector<std::vector<int64_t>> prompt_ids;
  for (const auto& p : args.prompts) {
    prompt_ids.push_back(tokenizer->encode(p, /*add_special_tokens=*/true));
    if (prompt_ids.back().empty()) throw Error("--prompt \"" + p + "\" encodes to no tokens");
  }
  const auto& config = model->config();
  auto options = args.generation;
  if (options.eos_token_ids.empty()) {
    if (auto eos = tokenizer->eos_token_id()) options.eos_token_ids.push_back(*eos);
    else if (config.eos_token_id) options.eos_token_ids.push_back(*config.eos_token_id);
  }
  if (!options.pad_token_id) {
    options.pad_token_id = tokenizer->pad_token_id() ? tokenizer->pad_token_id()
                                                     : (config.pad_token_id ? config.pad_token_id : std::optional<int64_t>(0));
  }
  auto [ids, mask] = left_pad(prompt_ids, *options.pad_token_id);
  auto out = models::generate(*model, ids.to(load.device), mask.to(load.device), options);
  auto sequences = out.sequences.cpu();
  auto out_mask = out.attention_mask.cpu();

  for (size_t i = 0; i < args.prompts.size(); ++i) {
    std::vector<int64_t> completion;
    for (int64_t j = out.prompt_length; j < sequences.size(1); ++j)
      if (out_mask[i][j].item<int64_t>() == 1) completion.push_back(sequences[i][j].item<int64_t>());
    auto text = tokenizer->decode(completion, /*skip_special_tokens=*/true);
    if (args.json) {
      nlohmann::ordered_json line = {{"prompt", args.prompts[i]},
                             {"completion", text},
                             {"prompt_ids", prompt_ids[i]},
                             {"completion_ids", completion}};
      std::cout << line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
    } else {
      std::cout << args.prompts[i] << text << "\n";
    }
  }
}

}  // namespace

Action add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate completions for prompts with a Hugging Face model directory");
  cmd->add_option("--model", args->model, "Model directory (config.json, *.safetensors, tokenizer files)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--prompt", args->prompts, "A prompt; repeat for a batch")->required();
  auto& g = args->generation;
  auto positive = CLI::Validator(
      [](std::string& v) { return std::stod(v) > 0 ? std::string() : "expected a positive number, got " + v; }, "POSITIVE");
  cmd->add_option("--max_new_tokens", g.max_new_tokens, "Tokens to generate at most")->capture_default_str()->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--do_sample", g.do_sample, "Sample (true) or greedy (false)")->capture_default_str();
  cmd->add_option("--temperature", g.temperature, "Sampling temperature")->capture_default_str()->check(positive);
  cmd->add_option("--top_k", g.top_k, "Keep the k most likely tokens (0 = off)")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--top_p", g.top_p, "Keep the most likely tokens up to this probability mass")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", g.seed, "Random seed for sampling")->capture_default_str();
  cmd->add_flag("--json", args->json, "Print one JSON object per prompt: prompt, completion, prompt_ids, completion_ids");
  add_device_flags(*cmd, args->device);
  return [args] { run_generate(*args); };
}

}  // namespace troupe::apps

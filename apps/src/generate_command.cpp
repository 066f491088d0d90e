/// `troupe generate`: completions for text prompts from a Hugging Face model directory.
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include <troupe/common/error.hpp>
#include <troupe/models/pretrained.hpp>
#include <troupe/models/text_generator.hpp>

#include "commands.hpp"
#include "device_flags.hpp"
#include "generation_flags.hpp"

namespace troupe::apps {
namespace {

struct GenerateArgs {
  std::string model;
  std::vector<std::string> prompts;
  models::GenerationOptions generation;
  DeviceFlags device;
  bool json = false;
};

void run_generate(const GenerateArgs& args) {
  models::LoadOptions load;
  load.device = args.device.device();
  load.dtype = args.device.dtype();
  std::shared_ptr<const models::Tokenizer> tokenizer = models::load_tokenizer(args.model);
  models::TextGenerator generator(models::load_pretrained(args.model, load), tokenizer, args.generation);
  auto completions = generator.complete(args.prompts);
  for (size_t i = 0; i < args.prompts.size(); ++i) {
    const auto& c = completions[i];
    if (args.json) {
      nlohmann::ordered_json line = {{"prompt", args.prompts[i]},
                                     {"completion", c.text},
                                     {"prompt_ids", c.prompt_ids},
                                     {"completion_ids", c.completion_ids}};
      std::cout << line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
    } else {
      std::cout << args.prompts[i] << c.text << "\n";
    }
  }
}

}  // namespace

Command add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate completions for prompts with a Hugging Face model directory");
  cmd->add_option("--model", args->model, "Model directory (config.json, *.safetensors, tokenizer files)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--prompt", args->prompts, "A prompt; repeat for a batch")->required();
  add_generation_flags(*cmd, args->generation);
  cmd->add_flag("--json", args->json, "Print one JSON object per prompt: prompt, completion, prompt_ids, completion_ids");
  add_device_flags(*cmd, args->device);
  return {cmd, [args] { run_generate(*args); }};
}

}  // namespace troupe::apps

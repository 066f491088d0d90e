/// `troupe chat`: a multi-turn conversation with a model directory. On a terminal it
/// prompts for each turn; otherwise each stdin line is one turn, so scripts can drive it.
#include <unistd.h>

#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include <troupe/models/chat.hpp>
#include <troupe/models/chat_format.hpp>
#include <troupe/models/inference_layout.hpp>
#include <troupe/models/pretrained.hpp>

#include "commands.hpp"
#include "device_flags.hpp"
#include "generation_flags.hpp"

namespace troupe::apps {
namespace {

struct ChatArgs {
  std::string model;
  models::GenerationOptions generation;
  DeviceFlags device;
  bool json = false;
  std::optional<std::string> chat_format;
};

void run_chat(ChatArgs args) {
  // The format the model was trained in, as its tokenizer_config.json records it.
  const auto format = models::resolve_chat_format(args.model, args.chat_format);
  models::LoadOptions load;
  load.device = args.device.device();
  load.dtype = args.device.dtype();
  std::shared_ptr<const models::Tokenizer> tokenizer = models::load_tokenizer(args.model);
  auto model = models::load_pretrained(args.model, load);
  model->eval();
  // Packed once for the whole session, not at every turn's generate().
  models::ScopedInferenceLayout layout(*model, models::resolve_inference_dtype(*model, args.generation.inference_dtype));
  models::ChatSession chat(models::TextGenerator(model, tokenizer, args.generation), format);

  const bool interactive = isatty(STDIN_FILENO) && !args.json;
  if (interactive) std::cout << "Chatting with " << args.model << ". Type 'clear' to start over, 'quit' to exit.\n";
  std::string line;
  while (true) {
    if (interactive) std::cout << "Human: " << std::flush;
    if (!std::getline(std::cin, line) || line == "quit") break;
    if (line == "clear") {
      chat.clear();
      if (interactive) std::cout << "(history cleared)\n";
      continue;
    }
    auto answer = chat.reply(line);
    if (args.json) {
      nlohmann::ordered_json turn = {
          {"turn", chat.turns()}, {"human", line}, {"assistant", answer}, {"prompt", chat.last_prompt()}};
      std::cout << turn.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << std::endl;
    } else {
      std::cout << "Assistant: " << answer << std::endl;
    }
  }
}

}  // namespace

Command add_chat_command(CLI::App& app) {
  auto args = std::make_shared<ChatArgs>();
  args->generation.max_new_tokens = 128;
  auto* cmd = app.add_subcommand("chat", "Chat with a model, turn by turn ('clear' resets the history, 'quit' exits)");
  cmd->add_option("--model", args->model, "Model directory (config.json, *.safetensors, tokenizer files)")
      ->required()
      ->check(CLI::ExistingDirectory);
  add_generation_flags(*cmd, args->generation);
  cmd->add_flag("--json", args->json,
                "Print one JSON object per turn: turn, human, assistant, and the prompt the model continued");
  cmd->add_option_function<std::string>(
      "--chat_format", [args](const std::string& v) { args->chat_format = v; },
      "Prompt format: troupe or deepspeed_chat (default: the model's chat_template, else troupe)")
      ->check(CLI::IsMember({"troupe", "deepspeed_chat"}));
  add_device_flags(*cmd, args->device);
  return {cmd, [args] { run_chat(*args); }};
}

}  // namespace troupe::apps

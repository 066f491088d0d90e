/// `troupe serve`: an OpenAI-compatible HTTP server with continuous batching and a chat
/// page. The model side is serve_engine.cpp (on models::BatchScheduler), the HTTP side
/// serve_http.cpp; this file holds the flags, loading, and the signal handling.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <troupe/common/error.hpp>
#include <troupe/common/log.hpp>
#include <troupe/models/chat_format.hpp>
#include <troupe/models/inference_layout.hpp>
#include <troupe/models/pretrained.hpp>

#include "commands.hpp"
#include "device_flags.hpp"
#include "serve_engine.hpp"
#include "serve_http.hpp"

namespace troupe::apps {
namespace {

struct ServeArgs {
  std::string model;
  serve::HttpOptions http;
  int64_t max_batch = 8;
  double kv_cache_gib = 0;  // 0: half the machine's memory
  int64_t max_prefill_tokens = 0;
  std::optional<std::string> chat_format;
  std::optional<torch::ScalarType> inference_dtype;
  DeviceFlags device;
};

std::atomic<bool> stop_requested{false};

void on_stop_signal(int) { stop_requested = true; }

int64_t half_of_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page / 2 : 0;
}

void run_serve(ServeArgs args) {
  // The prompt format first: an unknown template is refused before the model loads.
  const auto format = models::resolve_chat_format(args.model, args.chat_format);
  if (args.http.api_key.empty())
    if (const char* key = std::getenv("TROUPE_API_KEY")) args.http.api_key = key;
  if (args.http.served_model_name.empty())
    args.http.served_model_name = std::filesystem::weakly_canonical(args.model).filename().string();

  models::LoadOptions load;
  load.device = args.device.device();
  load.dtype = args.device.dtype();
  std::shared_ptr<const models::Tokenizer> tokenizer = models::load_tokenizer(args.model);
  auto model = models::load_pretrained(args.model, load);

  models::BatchSchedulerOptions options;
  options.max_batch = args.max_batch;
  options.inference_dtype = args.inference_dtype;
  options.max_prefill_tokens = args.max_prefill_tokens;
  options.max_cache_bytes =
      args.kv_cache_gib > 0 ? static_cast<int64_t>(args.kv_cache_gib * (int64_t{1} << 30)) : half_of_memory();
  serve::ServeEngine engine(model, tokenizer, format, options);
  if (engine.max_batch() < args.max_batch)
    log::warn("troupe serve: --max_batch ", args.max_batch, " lowered to ", engine.max_batch(),
              ": the KV cache of more rows would exceed ", options.max_cache_bytes / (1 << 20), " MiB");
  args.http.threads = static_cast<int>(std::max<int64_t>(32, 4 * engine.max_batch() + 8));

  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client gone mid-write must not end the process

  serve::serve_http(engine, args.http, stop_requested, [&](int port) {
    log::info("troupe serve: listening on http://", args.http.host, ":", port, " (model ", args.http.served_model_name,
              ", chat format ", models::chat_format_name(format), ", max_batch ", engine.max_batch(), ", context ",
              engine.context(), ", KV cache ", engine.cache_bytes() / (1 << 20), " MiB",
              args.http.api_key.empty() ? "" : ", API key required", ")");
  });
  engine.close_and_wait();
  log::info("troupe serve: stopped");
}

}  // namespace

Command add_serve_command(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand(
      "serve", "Serve a model over an OpenAI-compatible HTTP API with continuous batching, and a chat page at /");
  cmd->add_option("--model", args->model, "Model directory (config.json, *.safetensors, tokenizer files)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--host", args->http.host, "Address to listen on (loopback unless you say otherwise)")
      ->capture_default_str();
  cmd->add_option("--port", args->http.port, "Port to listen on (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--api_key", args->http.api_key,
                  "Require 'Authorization: Bearer KEY' on the API (default: $TROUPE_API_KEY, else none)");
  cmd->add_option("--max_batch", args->max_batch, "Requests decoded together at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--served_model_name", args->http.served_model_name,
                  "The model name clients use (default: the model directory's name)");
  cmd->add_option_function<std::string>(
      "--chat_format", [args](const std::string& v) { args->chat_format = v; },
      "Prompt format for chat: troupe or deepspeed_chat (default: the model's chat_template, else troupe)")
      ->check(CLI::IsMember({"troupe", "deepspeed_chat"}));
  cmd->add_option("--kv_cache_gib", args->kv_cache_gib,
                  "Memory for the KV cache; fewer rows than --max_batch when it would exceed it (default: half the "
                  "machine's memory)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max_prefill_tokens", args->max_prefill_tokens,
                  "Prompt tokens prefilled between two decode steps at most (whole prompts, one at least; 0: no "
                  "limit): fewer stalls of the running requests when many arrive at once")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max_body_bytes", args->http.max_body_bytes, "Larger request bodies get 413")
      ->capture_default_str();
  cmd->add_option_function<std::string>(
         "--inference_dtype",
         [args](const std::string& v) { args->inference_dtype = models::inference_dtype_from_name(v, "--inference_dtype"); },
         "Dtype of the packed weights and KV cache: fp32 or bf16 (default: the model's, fp32 unless --dtype bf16)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  add_device_flags(*cmd, args->device);
  return {cmd, [args] { run_serve(*args); }};
}

}  // namespace troupe::apps

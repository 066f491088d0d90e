#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>
#include <troupe/placement/model_shape.hpp>

using namespace troupe::placement;

namespace {

/// Elements stored in a Hugging Face checkpoint directory (every *.safetensors header).
int64_t stored_parameters(const std::filesystem::path& dir) {
  int64_t total = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const auto name = entry.path().filename().string();
    if (entry.path().extension() != ".safetensors" || name.rfind("model", 0) != 0) continue;
    const auto bytes = troupe::read_file(entry.path());
    uint64_t header_len = 0;
    std::memcpy(&header_len, bytes.data(), 8);
    const auto header = nlohmann::json::parse(bytes.substr(8, header_len));
    for (const auto& [key, info] : header.items()) {
      if (key == "__metadata__") continue;
      int64_t numel = 1;
      for (const auto& d : info.at("shape")) numel *= d.get<int64_t>();
      total += numel;
    }
  }
  return total;
}

}  // namespace

TEST_CASE("preset parameter counts match the published models", "[placement][model]") {
  // Hugging Face's num_parameters() for each checkpoint.
  CHECK(parameter_count(*find_preset("opt-125m"), Head::LanguageModel) == 125'239'296);
  CHECK(parameter_count(*find_preset("opt-350m"), Head::LanguageModel) == 331'196'416);
  CHECK(parameter_count(*find_preset("opt-1.3b"), Head::LanguageModel) == 1'315'758'080);
  CHECK(parameter_count(*find_preset("gpt2"), Head::LanguageModel) == 124'439'808);
  CHECK(parameter_count(*find_preset("llama-7b"), Head::LanguageModel) == 6'738'415'616);
  CHECK(parameter_count(*find_preset("llama-3-8b"), Head::LanguageModel) == 8'030'261'248);
  // A value model adds v_head (4096 x 1) and keeps its LM head (troupe builds one always).
  CHECK(parameter_count(*find_preset("llama-7b"), Head::Value) == 6'738'415'616 + 4096);
  // OPT-350m's v_head reads the 512-wide projected output, as in DeepSpeed-Chat.
  CHECK(parameter_count(*find_preset("opt-350m"), Head::Value) == 331'196'416 + 512);
  CHECK_FALSE(find_preset("opt-1.4b"));
  CHECK(preset_names().size() >= 10);
}

TEST_CASE("LoRA adapter counts: r * (in + out) over every decoder linear", "[placement][model]") {
  // OPT-1.3B, r = 128: per layer 4 * 128 * (2048 + 2048) + 2 * 128 * (2048 + 8192).
  CHECK(lora_parameter_count(*find_preset("opt-1.3b"), 128) == 24LL * (4 * 128 * 4096 + 2 * 128 * 10240));
  CHECK(lora_parameter_count(*find_preset("opt-1.3b"), 128) == 113'246'208);
  // Llama-3-8B, r = 8: q, o 4096 + 4096; k, v 4096 + 1024; gate, up, down 4096 + 14336.
  CHECK(lora_parameter_count(*find_preset("llama-3-8b"), 8) == 32LL * 8 * (2 * 8192 + 2 * 5120 + 3 * 18432));
  CHECK(lora_parameter_count(*find_preset("opt-1.3b"), 0) == 0);
}

TEST_CASE("shapes from config.json count what Hugging Face checkpoints store", "[placement][model]") {
  const std::filesystem::path fixtures = TROUPE_FIXTURES_DIR "/models";
  for (const auto* name : {"opt", "opt_postln", "gpt2", "llama"}) {
    INFO(name);
    const auto shape = resolve_model_shape((fixtures / name).string());
    CHECK(shape.name == (fixtures / name).string());
    CHECK(parameter_count(shape, Head::LanguageModel) == stored_parameters(fixtures / name));
  }
  const auto llama = resolve_model_shape((fixtures / "llama" / "config.json").string());
  CHECK(llama.kv_heads == 2);
  CHECK_FALSE(llama.tied_embeddings);
  CHECK_FALSE(resolve_model_shape((fixtures / "opt_postln").string()).final_norm);
  CHECK_THROWS_WITH(resolve_model_shape("opt-1.4b"), Catch::Contains("model \"opt-1.4b\": neither a preset (opt-125m"));
  CHECK_THROWS_WITH(model_shape_from_config(nlohmann::json{{"model_type", "bert"}}, "x/config.json"),
                    Catch::Contains("x/config.json"));
}

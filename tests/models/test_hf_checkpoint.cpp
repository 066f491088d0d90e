#include <catch2/catch.hpp>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/common/files.hpp>
#include <troupe/models/safetensors.hpp>

#include "bitwise.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using troupe::models::map_checkpoint;
using troupe::models::read_checkpoint;
using troupe::models::release_mapped_pages;
using troupe::models::read_safetensors;
using troupe::models::TensorMap;
using troupe::models::write_checkpoint;
using troupe::models::write_safetensors;
using troupe::test::first_difference;

namespace {

const fs::path kFixtures = fs::path(TROUPE_FIXTURES_DIR) / "models";

/// Deletes a directory tree without fs::remove_all: libtorch.so exports its own (GCC 13)
/// std::filesystem::remove_all, which wins over the system libstdc++'s when libtorch comes
/// first in the link order and crashes on a non-empty directory (it calls a symbol that
/// GCC 12's libstdc++ lacks).
void remove_tree(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(fs::symlink_status(path, ec))) {
    std::vector<fs::path> children;
    for (const auto& e : fs::directory_iterator(path)) children.push_back(e.path());
    for (const auto& child : children) remove_tree(child);
  }
  fs::remove(path, ec);
}

/// A fresh, empty directory under the test scratch dir.
fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::path(TROUPE_TEST_TMP_DIR) / name;
  remove_tree(dir);
  fs::create_directories(dir);
  return dir;
}

std::set<std::string> file_names(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

int64_t bytes_of(const torch::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }

/// Weights of mixed sizes and dtypes: 400-byte tensors, one 3600-byte tensor that must
/// get a shard of its own at a 1000-byte limit, and small odd ones.
TensorMap sample_weights() {
  torch::manual_seed(3);
  TensorMap t;
  for (int i = 0; i < 5; ++i) t["layers." + std::to_string(i) + ".weight"] = torch::randn({10, 10});  // (10, 10)
  t["embed.weight"] = torch::randn({30, 30});                                                         // (30, 30)
  t["norm.weight"] = torch::randn({8}).to(torch::kBFloat16);
  t["step"] = torch::scalar_tensor(12, torch::kInt64);
  return t;
}

}  // namespace

TEST_CASE("sharded checkpoint round trip; a new save removes the weights of the previous one", "[safetensors]") {
  const auto dir = fresh_dir("checkpoint_round_trip");
  troupe::write_file_atomically(dir / "config.json", std::string("{}"));
  const auto weights = sample_weights();

  write_checkpoint(dir, weights, 1000);
  const auto index = nlohmann::json::parse(troupe::read_file(dir / "model.safetensors.index.json"));
  int64_t total = 0, parameters = 0;
  for (const auto& [name, t] : weights) total += bytes_of(t), parameters += t.numel();
  CHECK(index["metadata"]["total_size"] == total);
  CHECK(index["metadata"]["total_parameters"] == parameters);
  std::set<std::string> shards;
  for (const auto& [name, shard] : index["weight_map"].items()) shards.insert(shard.get<std::string>());
  CHECK(index["weight_map"].size() == weights.size());
  CHECK(shards.size() == 4);  // {embed}, {layers.0, layers.1}, {layers.2, layers.3}, {layers.4, norm, step}
  CHECK(shards.count("model-00001-of-00004.safetensors") == 1);
  CHECK(shards.count("model-00004-of-00004.safetensors") == 1);
  CHECK(index["weight_map"]["embed.weight"] == "model-00001-of-00004.safetensors");
  CHECK(read_safetensors(dir / "model-00001-of-00004.safetensors").size() == 1);
  for (const auto& shard : shards) {
    int64_t bytes = 0;
    for (const auto& [name, t] : read_safetensors(dir / shard)) bytes += bytes_of(t);
    CHECK((bytes <= 1000 || shard == "model-00001-of-00004.safetensors"));
  }
  CHECK_FALSE(fs::exists(dir / "model.safetensors"));
  CHECK(first_difference(read_checkpoint(dir), weights) == "");

  // Under the limit: one file; the shards and index of the sharded save are gone.
  write_checkpoint(dir, weights);
  CHECK(file_names(dir) == std::set<std::string>{"config.json", "model.safetensors"});
  CHECK(first_difference(read_checkpoint(dir), weights) == "");

  // Sharded again, with another shard count: model.safetensors must go, or readers
  // (which prefer it, as transformers does) would load the stale save.
  write_checkpoint(dir, weights, 2000);
  auto names = file_names(dir);
  CHECK(names.count("model.safetensors") == 0);
  CHECK(names.count("model-00001-of-00003.safetensors") == 1);
  CHECK(names.count("model-00001-of-00004.safetensors") == 0);
  CHECK(names.count("config.json") == 1);
  CHECK(first_difference(read_checkpoint(dir), weights) == "");
}

TEST_CASE("checkpoint errors name the directory or index and the missing shard or tensor", "[safetensors]") {
  const auto dir = fresh_dir("checkpoint_errors");
  CHECK_THROWS_WITH(read_checkpoint(dir), Contains(dir.string()) && Contains("model.safetensors") &&
                                              Contains("model.safetensors.index.json") &&
                                              Contains("pytorch_model.bin is not supported"));
  CHECK_THROWS_WITH(read_checkpoint(dir / "nope"), Contains("nope") && Contains("not a directory"));

  const auto index = dir / "model.safetensors.index.json";
  auto write_index = [&](const std::string& text) { troupe::write_file_atomically(index, text); };
  write_index(R"({"weight_map": {"a": "model-00001-of-00002.safetensors"}})");
  CHECK_THROWS_WITH(read_checkpoint(dir), Contains(index.string()) &&
                                              Contains("shard 'model-00001-of-00002.safetensors'") &&
                                              Contains("'a'") && Contains("missing"));
  write_safetensors(dir / "s.safetensors", {{"b", torch::zeros({2})}});
  write_index(R"({"weight_map": {"a": "s.safetensors", "b": "s.safetensors"}})");
  CHECK_THROWS_WITH(read_checkpoint(dir), Contains(index.string()) && Contains("tensor 'a'") &&
                                              Contains("'s.safetensors'"));
  write_index(R"({"weight_map": {"b": "s.safetensors"}})");
  CHECK(read_checkpoint(dir).count("b") == 1);
  write_index(R"({"weight_map": {"b": "../s.safetensors"}})");
  CHECK_THROWS_WITH(read_checkpoint(dir), Contains(index.string()) && Contains("not a file name"));
  write_index(R"({"metadata": {}})");
  CHECK_THROWS_WITH(read_checkpoint(dir), Contains(index.string()) && Contains("weight_map"));
  write_index("{oops");
  CHECK_THROWS_WITH(read_checkpoint(dir), Contains(index.string()) && Contains("not valid JSON"));
  // A corrupt shard's error names the shard file.
  troupe::write_file_atomically(dir / "s.safetensors", std::string("short"));
  write_index(R"({"weight_map": {"b": "s.safetensors"}})");
  CHECK_THROWS_WITH(read_checkpoint(dir), Contains("s.safetensors") && Contains("shorter"));
  CHECK_THROWS_WITH(write_checkpoint(dir, {}, 0), Contains("max_shard_bytes"));
}

TEST_CASE("the fixtures' Hugging Face checkpoints load, single-file and sharded", "[safetensors]") {
  auto opt = read_checkpoint(kFixtures / "opt");
  CHECK(opt.at("model.decoder.embed_tokens.weight").sizes() == torch::IntArrayRef({300, 32}));
  CHECK(opt.at("model.decoder.embed_positions.weight").sizes() == torch::IntArrayRef({66, 32}));  // OPT offset 2
  CHECK(opt.count("lm_head.weight") == 0);  // tied to the embedding, not saved

  auto opt_postln = read_checkpoint(kFixtures / "opt_postln");
  CHECK(opt_postln.at("model.decoder.project_in.weight").sizes() == torch::IntArrayRef({32, 16}));
  CHECK(opt_postln.count("model.decoder.final_layer_norm.weight") == 0);

  auto gpt2 = read_checkpoint(kFixtures / "gpt2");
  CHECK(gpt2.at("transformer.h.0.attn.c_attn.weight").sizes() == torch::IntArrayRef({32, 96}));  // Conv1D: (in, out)

  auto llama = read_checkpoint(kFixtures / "llama");
  CHECK(llama.size() == 21);
  CHECK(llama.at("model.layers.1.self_attn.k_proj.weight").sizes() == torch::IntArrayRef({16, 32}));  // 2 KV heads
  CHECK(llama.at("lm_head.weight").dtype() == torch::kFloat32);
  // The index's union equals the shards read one by one.
  TensorMap by_shard;
  for (int i = 1; i <= 3; ++i)
    for (auto& [name, t] : read_safetensors(kFixtures / "llama" / ("model-0000" + std::to_string(i) + "-of-00003.safetensors")))
      by_shard.emplace(name, t);
  CHECK(first_difference(llama, by_shard) == "");
}

TEST_CASE("fixture checkpoints rewritten by write_checkpoint (checked by check_hf_load.py)", "[safetensors]") {
  // Shard limits that change the layout: llama 3 -> 4 shards, gpt2 single -> sharded.
  const std::vector<std::pair<std::string, int64_t>> models = {
      {"opt", int64_t{5} << 30}, {"opt_postln", int64_t{5} << 30}, {"gpt2", 50000}, {"llama", 40000}};
  for (const auto& [name, max_shard_bytes] : models) {
    INFO(name);
    const auto source = kFixtures / name;
    const auto out = fresh_dir("resaved_" + name);
    for (const auto& e : fs::directory_iterator(source)) {
      const auto file = e.path().filename().string();
      const bool weights = e.path().extension() == ".safetensors" || file == "model.safetensors.index.json";
      if (!weights) fs::copy_file(e.path(), out / file);
    }
    auto weights = read_checkpoint(source);
    write_checkpoint(out, weights, max_shard_bytes);
    CHECK(fs::exists(out / "model.safetensors") == (name.rfind("opt", 0) == 0));
    CHECK(first_difference(read_checkpoint(out), weights) == "");
  }
  CHECK(fs::exists(fs::path(TROUPE_TEST_TMP_DIR) / "resaved_llama" / "model-00004-of-00004.safetensors"));
}

TEST_CASE("a mapped checkpoint holds the same tensors as a read one, also after its pages are dropped",
          "[safetensors]") {
  for (const char* name : {"opt", "gpt2", "llama"}) {
    INFO(name);
    const auto read = read_checkpoint(kFixtures / name);
    auto mapped = map_checkpoint(kFixtures / name);
    REQUIRE(mapped.size() == read.size());
    for (const auto& [key, tensor] : read) {
      INFO(key);
      const auto& view = mapped.at(key);
      REQUIRE(view.sizes() == tensor.sizes());
      CHECK(view.dtype() == tensor.dtype());
      CHECK(torch::equal(view, tensor));
      release_mapped_pages(view);  // dropped from memory, read from the file again when used
      CHECK(torch::equal(view, tensor));
      release_mapped_pages(tensor);  // owned memory: left alone
      CHECK(torch::equal(tensor, read.at(key)));
    }
  }
}

// Staging a role's files on a node without the controller's file system: what the node
// asks for, what it keeps, where the spec's paths point after.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "file_staging.hpp"

#include "../models/model_fixtures.hpp"

using namespace troupe;
namespace fs = std::filesystem;

namespace {

void write_file(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

/// Sends every file the node asked for, as the controller does, reading the
/// controller's files from where they were moved (so that the node does not see them).
void deliver(actors::StagingArea& node, const actors::StageReply& reply, const fs::path& was, const fs::path& now) {
  for (const auto& path : reply.needed) {
    const auto moved = (now / fs::path(path).lexically_relative(was)).string();
    actors::for_each_chunk(moved, [&](actors::FileChunk& chunk) {
      chunk.path = path;
      node.write(chunk);
    }, 1 << 20);
  }
}

}  // namespace

TEST_CASE("staging: a node receives the files it lacks and the spec points at them", "[actors][staging]") {
  const auto root = test::scratch_dir("staging_lacks");
  const auto model = root / "controller" / "model";
  write_file(model / "config.json", R"({"model_type": "llama"})");
  write_file(model / "model.safetensors", std::string(3 * 1024 * 1024 + 17, 'w'));  // 4 chunks of 1 MiB
  write_file(model / "empty.txt", "");
  write_file(model / "checkpoint" / "optimizer.pt", "not read by a role");
  write_file(model / "metrics.jsonl", "{}\n");
  const auto corpus = root / "controller" / "corpus.jsonl";
  write_file(corpus, "{\"text\": \"hello\"}\n");

  actors::RoleSpec spec;
  spec.factory = "step3_actor";
  spec.options = {{"model", model.string()}, {"tokenizer", model.string()}, {"unsupervised_data", corpus.string()},
                  {"seed", "7"}};
  auto offer = actors::staging_request(spec);
  REQUIRE(offer.paths.size() == 3);
  CHECK(offer.paths[0].files == std::vector<std::string>{"config.json", "empty.txt", "model.safetensors"});
  CHECK(offer.paths[2].files == std::vector<std::string>{""});

  // A node that has none of it (another machine): asks for each file once.
  const auto controller = root / "controller", elsewhere = root / "controller_elsewhere";
  fs::rename(controller, elsewhere);
  actors::StagingArea node(root / "node_stage");
  auto reply = node.plan(offer);
  CHECK(reply.needed.size() == 4);
  deliver(node, reply, controller, elsewhere);
  auto local = node.localize(spec);
  const auto staged_model = root / "node_stage" / model.relative_path();
  CHECK(local.options.at("model") == staged_model.string());
  CHECK(local.options.at("tokenizer") == staged_model.string());
  CHECK(local.options.at("seed") == "7");
  CHECK(read_file(staged_model / "model.safetensors") == std::string(3 * 1024 * 1024 + 17, 'w'));
  CHECK(fs::exists(staged_model / "empty.txt"));
  CHECK_FALSE(fs::exists(staged_model / "checkpoint"));
  CHECK(read_file(local.options.at("unsupervised_data")) == "{\"text\": \"hello\"}\n");

  // A later role on the node reuses what arrived.
  actors::StagingArea again(root / "node_stage");
  CHECK(again.plan(offer).needed.empty());
}

TEST_CASE("staging: a node that sees the same files (shared file system) receives nothing", "[actors][staging]") {
  const auto root = test::scratch_dir("staging_shared");
  write_file(root / "model" / "config.json", "{}");
  actors::RoleSpec spec;
  spec.options = {{"model", (root / "model").string()}, {"tokenizer", "no/such/dir"}};
  actors::StagingArea node(root / "node_stage");
  CHECK(node.plan(actors::staging_request(spec)).needed.empty());
  const auto local = node.localize(spec);
  CHECK(local.options.at("model") == (root / "model").string());
  CHECK(local.options.at("tokenizer") == "no/such/dir");  // not a path here: the factory says so
}

TEST_CASE("staging: a node writes only the files it asked for", "[actors][staging]") {
  const auto root = test::scratch_dir("staging_refuse");
  write_file(root / "model" / "config.json", "{}");
  actors::StagingArea node(root / "node_stage");
  actors::FileChunk chunk;
  chunk.path = "/etc/passwd";
  chunk.size = 1;
  chunk.bytes = {'x'};
  CHECK_THROWS_WITH(node.write(chunk), Catch::Contains("/etc/passwd was not asked for"));

  actors::StageRequest request{{{"m", "/elsewhere/model", {"config.json"}, {2}}}};
  auto reply = node.plan(request);
  REQUIRE(reply.needed == std::vector<std::string>{"/elsewhere/model/config.json"});
  chunk.path = reply.needed[0];
  chunk.size = 2;
  chunk.offset = 1;
  chunk.bytes = {'a', 'b'};
  CHECK_THROWS_WITH(node.write(chunk), Catch::Contains("do not fit its 2 bytes"));
  CHECK_FALSE(fs::exists(root / "node_stage" / "elsewhere" / "model" / "config.json"));  // nothing half-written in place

  // Nothing lands outside the staging directory.
  CHECK_THROWS_WITH(node.plan({{{"m", "/x/../../etc", {"passwd"}, {1}}}}), Catch::Contains("not an absolute path of plain names"));
  CHECK_THROWS_WITH(node.plan({{{"m", "/x/model", {"../../passwd"}, {1}}}}), Catch::Contains("not an absolute path of plain names"));
}

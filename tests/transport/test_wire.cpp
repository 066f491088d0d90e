// The wire header: protobuf-lite round trips in a process that also runs torch ops.
#include <catch2/catch.hpp>

#include <torch/torch.h>

#include <troupe/common/error.hpp>
#include <troupe/transport/wire_header.hpp>

using namespace troupe::transport;

TEST_CASE("wire header round-trips next to a torch op (protobuf link check)", "[transport][wire]") {
  // A torch op first, so libtorch_cpu's bundled protobuf is initialised in this process.
  auto a = torch::randn({4, 4});
  auto product = torch::mm(a, a.t());  // (4, 4)
  REQUIRE(product.allclose(product.t()));

  BatchMeta meta;
  meta.ticket = 0xDEADBEEF12345ull;
  meta.tensors.push_back({"sequences", WireDType::kInt64, {2, 3}, 48, "cpu"});
  meta.tensors.push_back({"logits", WireDType::kBFloat16, {2, 3, 5}, 60, "cuda:1"});
  meta.tensors.push_back({"empty", WireDType::kFloat32, {0, 7}, 0, "cpu"});
  auto bytes = encode_batch_meta(meta);
  auto back = decode_batch_meta(bytes.data(), bytes.size(), "test");
  REQUIRE(back.ticket == meta.ticket);
  REQUIRE(back.error.empty());
  REQUIRE(back.tensors.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(back.tensors[i].name == meta.tensors[i].name);
    CHECK(back.tensors[i].dtype == meta.tensors[i].dtype);
    CHECK(back.tensors[i].shape == meta.tensors[i].shape);
    CHECK(back.tensors[i].nbytes == meta.tensors[i].nbytes);
    CHECK(back.tensors[i].device == meta.tensors[i].device);
  }

  PullMeta pull{7, 99, {1, 2, 3, 0, 255}, true};
  auto pull_bytes = encode_pull_meta(pull);
  auto pull_back = decode_pull_meta(pull_bytes.data(), pull_bytes.size(), "test");
  CHECK(pull_back.ticket == 7);
  CHECK(pull_back.request_id == 99);
  CHECK(pull_back.reply_address == pull.reply_address);
  CHECK(pull_back.erase);
  // And torch still works after protobuf did.
  REQUIRE(torch::sum(torch::ones({3})).item<float>() == 3.0f);
}

TEST_CASE("wire header rejects inconsistent metadata", "[transport][wire]") {
  BatchMeta meta;
  meta.tensors.push_back({"x", WireDType::kFloat32, {2, 3}, 20, "cpu"});  // needs 24 bytes
  auto bytes = encode_batch_meta(meta);
  REQUIRE_THROWS_WITH(decode_batch_meta(bytes.data(), bytes.size(), "peer"),
                      Catch::Contains("'x'") && Catch::Contains("claims 20 bytes") && Catch::Contains("needs 24"));

  meta.tensors[0] = {"y", WireDType::kInt32, {-1, 3}, 0, "cpu"};
  bytes = encode_batch_meta(meta);
  REQUIRE_THROWS_WITH(decode_batch_meta(bytes.data(), bytes.size(), "peer"), Catch::Contains("negative dimension"));

  meta.tensors[0] = {"z", static_cast<WireDType>(42), {1}, 1, "cpu"};
  bytes = encode_batch_meta(meta);
  REQUIRE_THROWS_WITH(decode_batch_meta(bytes.data(), bytes.size(), "peer"), Catch::Contains("unknown dtype 42"));

  std::vector<std::uint8_t> garbage{0xFF, 0xFF, 0xFF, 0xFF, 0x0F};
  REQUIRE_THROWS_WITH(decode_batch_meta(garbage.data(), garbage.size(), "peer"), Catch::Contains("malformed"));
}

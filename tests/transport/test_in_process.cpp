// In-process channel and store: hand-overs without copies.
#include <catch2/catch.hpp>

#include <thread>

#include <troupe/common/error.hpp>
#include <troupe/transport/in_process_channel.hpp>
#include <troupe/transport/tensor_store.hpp>

#include "transport_fixtures.hpp"

using namespace troupe::transport;
using troupe::Error;

TEST_CASE("in-process channel hands over the same tensors", "[transport][in_process]") {
  InProcessChannel channel;
  auto batch = troupe::test::all_dtypes_batch(1);
  std::thread producer([&] { channel.send(batch); });
  auto received = channel.receive();
  producer.join();
  REQUIRE(troupe::test::batch_difference(batch, received).empty());
  for (const auto& [name, tensor] : batch) {
    CHECK(received.get(name).data_ptr() == tensor.data_ptr());  // no copy
    CHECK(received.get(name).is_same(tensor));
  }
  REQUIRE(channel.pending() == 0);
}

TEST_CASE("in-process channel keeps order, times out, and checks receive_into", "[transport][in_process]") {
  InProcessChannel channel({std::chrono::milliseconds(50)});
  REQUIRE_THROWS_WITH(channel.receive(), Catch::Contains("no batch arrived within 50 ms"));
  for (int i = 0; i < 3; ++i) channel.send(TensorBatch{{"i", at::full({1}, i, at::kInt)}});
  for (int i = 0; i < 3; ++i) REQUIRE(channel.receive().get("i").item<int>() == i);

  auto source = at::arange(6, at::kFloat).view({2, 3});  // (2, 3)
  channel.send(TensorBatch{{"x", source}});
  auto target = at::zeros({2, 3}, at::kFloat);
  TensorBatch destination{{"x", target}};
  channel.receive_into(destination);
  REQUIRE(target.equal(source));
  REQUIRE(target.data_ptr() != source.data_ptr());

  channel.send(TensorBatch{{"x", source}});
  TensorBatch wrong{{"x", at::zeros({3, 2}, at::kFloat)}};
  REQUIRE_THROWS_WITH(channel.receive_into(wrong), Catch::Contains("'x'") && Catch::Contains("destination"));
}

TEST_CASE("local-only TensorStore pulls by ticket without copying", "[transport][store]") {
  TensorStore store;  // no UCX worker
  REQUIRE(store.address().empty());
  auto batch = troupe::test::all_dtypes_batch(2);
  store.publish(17, batch);
  REQUIRE_THROWS_WITH(store.publish(17, batch), Catch::Contains("ticket 17 is already held"));

  auto pulled = store.pull({}, 17);
  for (const auto& [name, tensor] : batch) CHECK(pulled.get(name).data_ptr() == tensor.data_ptr());
  REQUIRE(store.contains(17));

  PullOptions take;
  take.erase = true;
  store.pull({}, 17, take);
  REQUIRE_FALSE(store.contains(17));
  REQUIRE_THROWS_WITH(store.pull({}, 17), Catch::Contains("ticket 17 is not held here"));
  REQUIRE_THROWS_WITH(store.pull({1, 2, 3}, 5), Catch::Contains("needs a TensorStore with a UcxWorker"));
}

TEST_CASE("TensorBatch names what is missing", "[transport][batch]") {
  TensorBatch batch{{"a", at::ones({2})}, {"b", at::ones({3}, at::kInt)}};
  REQUIRE(batch.nbytes() == 2 * 4 + 3 * 4);
  REQUIRE_THROWS_WITH(batch.get("c"), Catch::Contains("no tensor 'c'") && Catch::Contains("a, b"));
  REQUIRE_THROWS_WITH(batch.insert("u", at::Tensor()), Catch::Contains("'u' is undefined"));
}

// UCX channels and stores between two workers of one process (threads on each side).
#include <catch2/catch.hpp>

#include <future>
#include <thread>

#include <troupe/common/error.hpp>
#include <troupe/transport/tensor_store.hpp>
#include <troupe/transport/ucx_channel.hpp>
#include <troupe/transport/wire_header.hpp>

#include "transport_fixtures.hpp"

using namespace troupe::transport;
using troupe::Error;

namespace {

struct Pair {
  std::shared_ptr<UcxWorker> a = std::make_shared<UcxWorker>();
  std::shared_ptr<UcxWorker> b = std::make_shared<UcxWorker>();
};

TransferOptions quick(int ms) {
  TransferOptions options;
  options.timeout = std::chrono::milliseconds(ms);
  return options;
}

/// Sends `batch` from a to b on a thread and returns what b received.
TensorBatch round_trip(Pair& pair, const TensorBatch& batch, std::uint16_t id) {
  UcxChannel sender(pair.a, pair.b->address(), id, quick(20000));
  UcxChannel receiver(pair.b, pair.a->address(), id, quick(20000));
  auto sent = std::async(std::launch::async, [&] { sender.send(batch); });
  auto received = receiver.receive();
  sent.get();
  return received;
}

}  // namespace

TEST_CASE("UCX channel moves every dtype bit-exactly", "[transport][ucx]") {
  Pair pair;
  REQUIRE_FALSE(pair.a->address().empty());
  auto batch = troupe::test::all_dtypes_batch(3);
  auto received = round_trip(pair, batch, 1);
  REQUIRE(troupe::test::batch_difference(batch, received).empty());
  for (const auto& [name, tensor] : batch) {
    if (tensor.numel() > 0) CHECK(received.get(name).data_ptr() != tensor.data_ptr());
    CHECK(received.get(name).device().is_cpu());
  }
}

TEST_CASE("UCX channel sends non-contiguous tensors as their values", "[transport][ucx]") {
  Pair pair;
  auto base = at::arange(24, at::kFloat).view({4, 6});  // (4, 6)
  TensorBatch batch{{"transposed", base.t()},                       // (6, 4) non-contiguous
                    {"strided", base.index({at::indexing::Slice(), at::indexing::Slice(0, 6, 2)})},  // (4, 3)
                    {"expanded", at::ones({1, 3}, at::kInt).expand({5, 3})}};  // (5, 3), stride 0
  auto received = round_trip(pair, batch, 2);
  for (const auto& [name, tensor] : batch) {
    REQUIRE_FALSE(tensor.is_contiguous());
    CHECK(received.get(name).equal(tensor));
    CHECK(received.get(name).is_contiguous());
  }
}

TEST_CASE("UCX channel keeps batch order and fills receive_into destinations", "[transport][ucx]") {
  Pair pair;
  UcxChannel sender(pair.a, pair.b->address(), 3, quick(20000));
  UcxChannel receiver(pair.b, pair.a->address(), 3, quick(20000));
  auto sent = std::async(std::launch::async, [&] {
    for (int i = 0; i < 4; ++i) sender.send(TensorBatch{{"x", at::full({2, 2}, i, at::kDouble)}});
  });
  for (int i = 0; i < 3; ++i) REQUIRE(receiver.receive().get("x").equal(at::full({2, 2}, i, at::kDouble)));
  auto target = at::zeros({2, 2}, at::kDouble);
  TensorBatch destination{{"x", target}};
  receiver.receive_into(destination);
  sent.get();
  REQUIRE(target.equal(at::full({2, 2}, 3, at::kDouble)));
}

TEST_CASE("UCX channel reports mismatches, truncation and timeouts", "[transport][ucx][errors]") {
  Pair pair;
  SECTION("receive_into a destination of another shape") {
    UcxChannel sender(pair.a, pair.b->address(), 4, quick(3000));
    UcxChannel receiver(pair.b, pair.a->address(), 4, quick(3000));
    auto sent = std::async(std::launch::async, [&] {
      try {
        sender.send(TensorBatch{{"x", at::ones({2, 3})}});
      } catch (const Error&) {  // the receiver never takes the payload
      }
    });
    TensorBatch destination{{"x", at::zeros({3, 2})}};
    REQUIRE_THROWS_WITH(receiver.receive_into(destination),
                        Catch::Contains("'x' arrives as float32[2, 3]") && Catch::Contains("Float[3, 2]"));
    sent.get();
  }
  SECTION("a payload longer than its header says") {
    auto tag = UcxTag::make(UcxTag::kChannel, std::uint64_t{5} << 24, 0);
    BatchMeta meta;
    meta.tensors.push_back({"x", WireDType::kFloat32, {4}, 16, "cpu"});
    auto header = encode_batch_meta(meta);
    std::vector<std::uint8_t> payload(32, 7);
    auto& ep = pair.a->endpoint(pair.b->address());
    std::vector<UcxRequest> requests;
    requests.push_back(pair.a->send(ep, header.data(), header.size(), tag));
    requests.push_back(pair.a->send(ep, payload.data(), payload.size(), tag | 1));
    auto sent = std::async(std::launch::async, [&] {
      try {
        pair.a->wait_all(requests, deadline_after(std::chrono::milliseconds(3000)));
      } catch (const Error&) {
      }
    });
    UcxChannel receiver(pair.b, pair.a->address(), 5, quick(3000));
    REQUIRE_THROWS_WITH(receiver.receive(), Catch::Contains("truncated") && Catch::Contains("'x'"));
    sent.get();
  }
  SECTION("nothing arrives") {
    UcxChannel receiver(pair.b, pair.a->address(), 6, quick(100));
    REQUIRE_THROWS_WITH(receiver.receive(), Catch::Contains("timed out") && Catch::Contains("channel 6"));
  }
  SECTION("a dtype the wire does not carry") {
    UcxChannel sender(pair.a, pair.b->address(), 7, quick(100));
    REQUIRE_THROWS_WITH(sender.send(TensorBatch{{"c", at::zeros({2}, at::kComplexFloat)}}),
                        Catch::Contains("'c'") && Catch::Contains("does not carry"));
  }
}

TEST_CASE("UCX receive of a too-short payload names the byte counts", "[transport][ucx][errors]") {
  Pair pair;
  auto tag = UcxTag::make(UcxTag::kChannel, std::uint64_t{8} << 24, 0);
  BatchMeta meta;
  meta.tensors.push_back({"x", WireDType::kFloat32, {4}, 16, "cpu"});
  auto header = encode_batch_meta(meta);
  std::vector<std::uint8_t> payload(8, 7);
  auto& ep = pair.a->endpoint(pair.b->address());
  std::vector<UcxRequest> requests;
  requests.push_back(pair.a->send(ep, header.data(), header.size(), tag));
  requests.push_back(pair.a->send(ep, payload.data(), payload.size(), tag | 1));
  auto sent = std::async(std::launch::async, [&] { pair.a->wait_all(requests, deadline_after(std::chrono::seconds(5))); });
  UcxChannel receiver(pair.b, pair.a->address(), 8, quick(3000));
  REQUIRE_THROWS_WITH(receiver.receive(), Catch::Contains("received 8 of 16 bytes"));
  sent.get();
}

TEST_CASE("TensorStore serves pulls over UCX", "[transport][ucx][store]") {
  Pair pair;
  TensorStore producer(pair.a);
  TensorStore consumer(pair.b);
  auto batch = troupe::test::all_dtypes_batch(4);
  producer.publish(1001, batch);

  PullOptions options;
  options.timeout = std::chrono::seconds(20);
  auto first = consumer.pull(producer.address(), 1001, options);
  REQUIRE(troupe::test::batch_difference(batch, first).empty());
  REQUIRE(producer.contains(1001));

  options.erase = true;
  auto second = consumer.pull(producer.address(), 1001, options);
  REQUIRE(troupe::test::batch_difference(batch, second).empty());
  REQUIRE_FALSE(producer.contains(1001));
  REQUIRE(producer.served() == 2);

  REQUIRE_THROWS_WITH(consumer.pull(producer.address(), 1001, options),
                      Catch::Contains("ticket 1001 is not held here") && Catch::Contains("sender reports"));

  // Pulling from one's own address is a hand-over.
  consumer.publish(5, batch);
  auto local = consumer.pull(consumer.address(), 5);
  REQUIRE(local.get("f32").data_ptr() == batch.get("f32").data_ptr());
}

TEST_CASE("concurrent consumers pull from one producer", "[transport][ucx][store]") {
  auto producer_worker = std::make_shared<UcxWorker>();
  TensorStore producer(producer_worker);
  for (std::uint64_t t = 0; t < 3; ++t) producer.publish(t, TensorBatch{{"v", at::full({1000}, double(t), at::kDouble)}});
  std::vector<std::future<bool>> consumers;
  for (std::uint64_t t = 0; t < 3; ++t) {
    consumers.push_back(std::async(std::launch::async, [&, t] {
      TensorStore consumer(std::make_shared<UcxWorker>());
      auto batch = consumer.pull(producer.address(), t);
      return batch.get("v").equal(at::full({1000}, double(t), at::kDouble));
    }));
  }
  for (auto& c : consumers) REQUIRE(c.get());
}

TEST_CASE("UCX channel moves a large tensor", "[.slow][transport][ucx]") {
  Pair pair;
  auto big = at::randint(0, 1 << 30, {64 << 20}, at::kInt);  // (64M) int32 = 256 MiB
  auto received = round_trip(pair, TensorBatch{{"big", big}}, 9);
  REQUIRE(troupe::test::bit_equal(received.get("big"), big));
}

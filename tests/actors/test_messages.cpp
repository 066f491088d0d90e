/// Message types survive CAF's binary serialization (what the middleman sends), and
/// the secret handshake's hashes match published test vectors.
#include <catch2/catch.hpp>

#include <caf/all.hpp>

#include <troupe/actors/messages.hpp>
#include "secret.hpp"
#include <troupe/actors/system_config.hpp>

using namespace troupe::actors;

namespace {

/// Serializes `value` with CAF's binary format (what the middleman sends) and reads it
/// back; also checks the type is registered under a portable name, which a remote
/// node needs to rebuild the message.
template <class T>
T round_trip(caf::actor_system& system, const T& value) {
  auto message = caf::make_message(value);
  const auto& name = system.types().portable_name(message.type(0));
  INFO("registered as " << name);
  CHECK(name.rfind("troupe::", 0) == 0);
  std::vector<char> buffer;
  caf::binary_serializer sink{system, buffer};
  REQUIRE_FALSE(sink(const_cast<T&>(value)));
  T back;
  caf::binary_deserializer source{system, buffer};
  auto error = source(back);
  INFO(system.render(error));
  REQUIRE_FALSE(error);
  return back;
}

}  // namespace

TEST_CASE("actors: message types round-trip through CAF serialization", "[actors]") {
  SystemConfig config;
  caf::actor_system system{config};

  // A null actor handle needs the middleman's proxy registry to deserialize, which a
  // bare serializer lacks; tickets here name a local server as CafTicketStore's do.
  auto server = system.spawn([]() -> caf::behavior { return {[](int x) { return x; }}; });
  Ticket ticket{"host:42", 7, {"sequences", "attention_mask"}, {4, 4}, {1, 2, 255}, server};
  auto list = round_trip(system, TicketList{{ticket, Ticket{"other:1", 9, {"values"}, {2}, {}, server}}});
  REQUIRE(list.tickets.size() == 2);
  CHECK(list.tickets[0].node == "host:42");
  CHECK(list.tickets[0].id == 7);
  CHECK(list.tickets[0].names == std::vector<std::string>{"sequences", "attention_mask"});
  CHECK(list.tickets[0].rows == std::vector<int64_t>{4, 4});
  CHECK(list.tickets[0].location == Bytes{1, 2, 255});
  CHECK(list.tickets[1].id == 9);

  TrainRequest request{{TicketList{{ticket}}, TicketList{}}, 12};
  auto request_back = round_trip(system, request);
  CHECK(request_back.step == 12);
  REQUIRE(request_back.batches.size() == 2);
  CHECK(request_back.batches[0].tickets[0].names.size() == 2);

  auto metrics = round_trip(system, Metrics{{{"loss", 0.25}, {"kl", -1.5}}});
  CHECK(metrics.values.at("loss") == 0.25);
  CHECK(metrics.values.at("kl") == -1.5);

  RoleState state{RoleId{"critic", 1, 2}, "host:1", "fake", 3, 1, Metrics{{{"loss", 2.0}}}};
  auto states = round_trip(system, RoleStates{{state}});
  REQUIRE(states.ranks.size() == 1);
  CHECK(describe(states.ranks[0].id) == "role critic rank 1 of 2");
  CHECK(states.ranks[0].failures == 1);
  CHECK(states.ranks[0].last_metrics.values.at("loss") == 2.0);

  auto spec = round_trip(system, RoleSpec{"model", RoleId{"reward", 0, 1}, {{"model", "/m"}}});
  CHECK(spec.factory == "model");
  CHECK(spec.id.role == "reward");
  CHECK(spec.options.at("model") == "/m");

  auto join = round_trip(system, JoinRequest{{1, 2}, {3}, {4, 5, 6}, NodeResources{"n:1", 8, 1 << 30}});
  CHECK(join.proof == Bytes{4, 5, 6});
  CHECK(join.resources.cpu_threads == 8);
  CHECK(join.resources.memory_bytes == (1 << 30));
  caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
}

TEST_CASE("actors: a ticket's producer handle survives serialization", "[actors]") {
  SystemConfig config;
  caf::actor_system system{config};
  auto server = system.spawn([]() -> caf::behavior { return {[](int x) { return x + 1; }}; });
  Ticket ticket{"n:1", 3, {"x"}, {1}, {}, server};
  auto back = round_trip(system, ticket);
  REQUIRE(back.source);
  caf::scoped_actor self{system};
  int answer = 0;
  self->request(back.source, std::chrono::seconds(5), 41).receive([&](int x) { answer = x; }, [](caf::error&) {});
  CHECK(answer == 42);
  caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
}

TEST_CASE("actors: SHA-256 and HMAC-SHA256 match the published vectors", "[actors]") {
  auto hash = [](const std::string& text) {
    auto digest = sha256(reinterpret_cast<const uint8_t*>(text.data()), text.size());
    return to_hex(Bytes(digest.begin(), digest.end()));
  };
  // FIPS 180-4 examples, plus lengths around the one-block padding boundary.
  CHECK(hash("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(hash(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // RFC 4231 test cases 2 and 6 (a key longer than the block).
  const std::string jefe_message = "what do ya want for nothing?";
  CHECK(to_hex(hmac_sha256("Jefe", Bytes(jefe_message.begin(), jefe_message.end()))) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  const std::string long_message = "Test Using Larger Than Block-Size Key - Hash Key First";
  CHECK(to_hex(hmac_sha256(std::string(131, '\xaa'), Bytes(long_message.begin(), long_message.end()))) ==
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");

  auto a = random_nonce(), c = random_nonce();
  CHECK(a != c);
  CHECK(same_bytes(secret_proof("s", "agent", a, c), secret_proof("s", "agent", a, c)));
  CHECK_FALSE(same_bytes(secret_proof("s", "agent", a, c), secret_proof("t", "agent", a, c)));
  CHECK_FALSE(same_bytes(secret_proof("s", "agent", a, c), secret_proof("s", "controller", a, c)));
}

TEST_CASE("actors: a worker process's log prefix names its roles and their rank", "[actors]") {
  CHECK(log_prefix({}).empty());
  CHECK(log_prefix({RoleId{"actor", 1, 2}}) == "actor 1/2");
  CHECK(log_prefix({RoleId{"critic", 0, 1}, RoleId{"reward", 0, 1}}) == "critic+reward");
  CHECK(log_prefix({RoleId{"actor", 1, 2}, RoleId{"reference", 1, 2}}) == "actor+reference 1/2");
  CHECK(log_prefix({RoleId{"actor", 1, 2}, RoleId{"critic", 0, 1}}) == "actor 1/2+critic");
}

/// Data-parallel ranks: averaging gradients over two ranks and stepping gives the update
/// one process makes on the whole batch.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <future>

#include <nlohmann/json.hpp>

#include <troupe/actors/data_parallel.hpp>
#include "host_port.hpp"
#include "step3_role_specs.hpp"
#include "step3_roles.hpp"
#include <troupe/actors/ticket_store.hpp>
#include <troupe/transport/c10d_communicator.hpp>
#include <troupe/engine/losses.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/models/causal_lm.hpp>
#include <troupe/models/config.hpp>

using namespace troupe;

namespace {

models::CausalLM tiny_model() {
  nlohmann::json config = {{"model_type", "llama"}, {"vocab_size", 40}, {"hidden_size", 16},
                           {"num_hidden_layers", 2}, {"num_attention_heads", 2}, {"num_key_value_heads", 2},
                           {"intermediate_size", 32}, {"max_position_embeddings", 32}};
  torch::manual_seed(11);
  return models::make_causal_lm(models::parse_config(config, "test config"));
}

models::CausalLM copy_of(const models::CausalLM& model) {
  auto copy = tiny_model();
  if (model->has_value_head()) copy->add_value_head();
  torch::NoGradGuard no_grad;
  auto from = model->named_parameters(), to = copy->named_parameters();
  for (const auto& item : from) to[item.key()].copy_(item.value());
  return copy;
}

/// One optimizer step on `ids` (every row the same length, so the mean over all tokens
/// is the mean of the ranks' means).
void step(engine::TrainEngine& engine, const torch::Tensor& ids) {
  engine.micro_step([&](models::CausalLMImpl& model) {
    auto logits = model.forward(ids, torch::ones_like(ids));
    return engine::language_model_loss(logits, ids);
  });
}

}  // namespace

TEST_CASE("data parallel: two ranks averaging gradients step as one process on the whole batch", "[actors][dp]") {
  auto collectives = GENERATE(actors::Collectives::kGloo, actors::Collectives::kUcx, actors::Collectives::kShm);
  if (collectives == actors::Collectives::kGloo && !transport::gloo_available()) {
    WARN("this build has no c10d Gloo");
    return;
  }
  INFO("collectives " << actors::collectives_name(collectives));
  auto whole = tiny_model();
  torch::manual_seed(5);
  const auto ids = torch::randint(0, 40, {4, 10}, torch::kLong);
  engine::TrainOptions options;
  options.optimizer.learning_rate = 1e-2;
  // Adam's first step is lr * sign(g) for eps << |g|: a gradient within rounding of zero
  // could flip it. A large eps makes the step proportional to the gradient compared.
  options.optimizer.eps = 1.0;
  options.max_grad_norm = 0.5;  // clipping sees the averaged gradient on every rank
  engine::TrainEngine single(whole, options);
  auto rank_models = std::vector<models::CausalLM>{copy_of(whole), copy_of(whole)};
  step(single, ids);

  actors::Rendezvous rendezvous;
  auto run_rank = [&](int rank) {
    actors::DataParallel group("127.0.0.1", rendezvous.port(), rank, 2, "test", std::chrono::minutes(1), collectives);
    engine::TrainEngine engine(rank_models[static_cast<size_t>(rank)], options);
    engine.set_gradient_sync([&](const std::vector<torch::Tensor>& parameters) { group.average_gradients(parameters); });
    step(engine, ids.slice(0, 2 * rank, 2 * rank + 2));
    std::vector<torch::Tensor> parameters;
    for (const auto& p : engine.model()->parameters()) parameters.push_back(p);
    return group.divergence(parameters);
  };
  auto other = std::async(std::launch::async, run_rank, 1);
  const double divergence = run_rank(0);
  CHECK(other.get() == divergence);
  CHECK(divergence == 0.0);

  for (const auto& item : whole->named_parameters()) {
    INFO(item.key());
    const auto& expected = item.value();
    CHECK(torch::allclose(rank_models[0]->named_parameters()[item.key()], expected, 1e-5, 1e-6));
    CHECK(torch::equal(rank_models[0]->named_parameters()[item.key()], rank_models[1]->named_parameters()[item.key()]));
  }
}

TEST_CASE("data parallel: ZeRO stage 1 and 2 ranks step as one process and each hold part of the optimizer state",
          "[actors][dp][zero]") {
  const int stage = GENERATE(1, 2);
  auto collectives = GENERATE(actors::Collectives::kGloo, actors::Collectives::kUcx, actors::Collectives::kShm);
  INFO("ZeRO stage " << stage);
  if (collectives == actors::Collectives::kGloo && !transport::gloo_available()) {
    WARN("this build has no c10d Gloo");
    return;
  }
  INFO("collectives " << actors::collectives_name(collectives));
  auto whole = tiny_model();
  torch::manual_seed(6);
  const auto batches = std::vector<torch::Tensor>{torch::randint(0, 40, {4, 10}, torch::kLong),
                                                  torch::randint(0, 40, {4, 10}, torch::kLong)};
  engine::TrainOptions options;
  options.optimizer.learning_rate = 1e-2;
  options.optimizer.eps = 1.0;  // steps proportional to the gradients (see the test above)
  options.optimizer.weight_decay = 0.1;
  options.max_grad_norm = 0.5;
  engine::TrainEngine single(whole, options);
  for (const auto& ids : batches) step(single, ids);  // two steps: the second uses the moments
  const int64_t single_state = single.optimizer_state_bytes();

  auto rank_models = std::vector<models::CausalLM>{copy_of(tiny_model()), copy_of(tiny_model())};
  actors::Rendezvous rendezvous;
  auto run_rank = [&](int rank) {
    actors::DataParallel group("127.0.0.1", rendezvous.port(), rank, 2, "zero", std::chrono::minutes(1), collectives);
    engine::TrainEngine engine(rank_models[static_cast<size_t>(rank)], options);
    if (stage == 1)  // stage 2 sums each gradient onto its owner instead
      engine.set_gradient_sync([&](const std::vector<torch::Tensor>& parameters) { group.average_gradients(parameters); });
    engine.set_optimizer_sharding(group.optimizer_sharding(stage));
    for (const auto& ids : batches) step(engine, ids.slice(0, 2 * rank, 2 * rank + 2));
    return engine.optimizer_state_bytes();
  };
  auto other = std::async(std::launch::async, run_rank, 1);
  const int64_t state0 = run_rank(0), state1 = other.get();
  // The state is split between the ranks, nothing held twice (stage 2 pads each group's
  // flat to a multiple of the ranks: < 1 element of 8 bytes a group), neither rank
  // holding most of it.
  CHECK(state0 + state1 >= single_state);
  CHECK(state0 + state1 <= single_state + (stage == 2 ? 3 * 8 : 0));
  CHECK(state0 > 0);
  CHECK(state1 > 0);
  CHECK(std::max(state0, state1) < single_state * 3 / 4);

  for (const auto& item : whole->named_parameters()) {
    INFO(item.key());
    CHECK(torch::allclose(rank_models[0]->named_parameters()[item.key()], item.value(), 1e-5, 1e-6));
    CHECK(torch::equal(rank_models[0]->named_parameters()[item.key()], rank_models[1]->named_parameters()[item.key()]));
  }
}

TEST_CASE("data parallel: a bad rank or collectives are refused", "[actors][dp]") {
  CHECK_THROWS_WITH(actors::DataParallel("127.0.0.1", 1, 2, 2, "critic"), Catch::Contains("rank 2 of 2"));
  CHECK_THROWS_WITH(actors::parse_collectives("mpi", "--dp_collectives"),
                    Catch::Contains("--dp_collectives: collectives 'mpi' is not gloo, ucx, nccl, shm or auto"));
  CHECK(actors::parse_collectives("nccl", "--dp_collectives") == actors::Collectives::kNccl);
  CHECK(actors::parse_collectives("shm", "--dp_collectives") == actors::Collectives::kShm);
  CHECK(actors::parse_collectives("auto", "--dp_collectives") == actors::Collectives::kAuto);
  CHECK(actors::collectives_name(actors::Collectives::kShm) == "shm");
  // NCCL ranks each need a CUDA device of their own.
  CHECK_THROWS_WITH(actors::DataParallel("127.0.0.1", 1, 0, 2, "actor", std::chrono::seconds(1), actors::Collectives::kNccl),
                    Catch::Contains(transport::nccl_available() ? "nccl collectives need the ranks on CUDA devices"
                                                                : "this build has no CUDA parts"));
}

TEST_CASE("data parallel: the default collectives are shared memory for ranks of one machine", "[actors][dp]") {
  CHECK(actors::default_collectives() == actors::Collectives::kAuto);
  actors::Rendezvous rendezvous;
  auto run_rank = [&](int rank) {
    actors::DataParallel group("127.0.0.1", rendezvous.port(), rank, 2, "auto", std::chrono::minutes(1));
    CHECK(group.joined_collectives() == actors::Collectives::kAuto);  // not joined yet
    auto values = torch::full({5}, static_cast<double>(rank + 1));    // (5)
    group.all_reduce_sum(values);
    return std::make_pair(values, group.joined_collectives());
  };
  auto other = std::async(std::launch::async, run_rank, 1);
  auto [values0, joined0] = run_rank(0);
  auto [values1, joined1] = other.get();
  CHECK(joined0 == actors::Collectives::kShm);
  CHECK(joined1 == actors::Collectives::kShm);
  CHECK(torch::equal(values0, torch::full({5}, 3.0)));
  CHECK(torch::equal(values1, torch::full({5}, 3.0)));
}

TEST_CASE("data parallel: a bare cuda device gives each rank its own GPU", "[actors][dp]") {
  CHECK(actors::rank_device(torch::Device("cuda"), 3, 2) == torch::Device("cuda:1"));
  CHECK(actors::rank_device(torch::Device("cuda"), 0, 8) == torch::Device("cuda:0"));
  CHECK(actors::rank_device(torch::Device("cuda:1"), 0, 2) == torch::Device("cuda:1"));  // as given
  CHECK(actors::rank_device(torch::Device("cpu"), 5, 2) == torch::Device("cpu"));
  CHECK(actors::rank_device(torch::Device("cuda"), 1, 0) == torch::Device("cuda"));  // no device here: the load says so
}

TEST_CASE("addresses: HOST:PORT parsing and the local address towards a peer", "[actors][dp]") {
  const auto parsed = actors::parse_host_port("10.0.0.7:29500", "--join");
  CHECK(parsed.host == "10.0.0.7");
  CHECK(parsed.port == 29500);
  CHECK_THROWS_WITH(actors::parse_host_port("10.0.0.7", "--join"), Catch::Contains("--join \"10.0.0.7\": expected HOST:PORT"));
  CHECK_THROWS_WITH(actors::parse_host_port("h:0", "--listen"), Catch::Contains("the port must be 1..65535"));
  CHECK(actors::parse_host_port("h:0", "--listen", true).port == 0);
  // Towards loopback the route leaves from loopback; a name that does not resolve is named.
  CHECK(actors::local_address_towards("127.0.0.1", 29500) == "127.0.0.1");
  CHECK_THROWS_WITH(actors::local_address_towards("no-such-host.invalid", 1),
                    Catch::Contains("the local address towards no-such-host.invalid:1"));
}

TEST_CASE("data parallel: a frozen reward model partitioned over two ranks (ZeRO 3) scores as the whole model",
          "[actors][dp][zero3]") {
  if (!transport::gloo_available()) {
    WARN("this build has no c10d Gloo");
    return;
  }
  auto whole = tiny_model();
  whole->add_value_head();
  torch::manual_seed(6);
  const auto ids = torch::randint(3, 40, {3, 9}, torch::kLong);
  auto mask = torch::ones_like(ids);
  mask[2].narrow(0, 0, 3).zero_();  // a left-padded row
  const actors::TensorBatch all{{"sequences", ids}, {"attention_mask", mask}, {"prompt_length", torch::full({3}, 4L)}};
  actors::RewardRole alone(copy_of(whole));
  const auto want = alone.score(all).at("reward_score");

  actors::Rendezvous rendezvous;
  auto run_rank = [&](int rank) {
    auto group = std::make_shared<actors::DataParallel>("127.0.0.1", rendezvous.port(), rank, 2, "reward",
                                                        std::chrono::minutes(1), actors::Collectives::kGloo);
    actors::RewardRole partitioned(copy_of(whole), group);
    CHECK(partitioned.scores_in_group());
    // Rank 0 scores all rows, rank 1 none (it joins the gathers with a one-token pass),
    // then each scores a share.
    auto first = partitioned.score(rank == 0 ? all : actors::shard_rows(all, 1, 1 << 20));
    auto second = partitioned.score(actors::shard_rows(all, rank, 2));
    const auto* partition = partitioned.partition();
    REQUIRE(partition);
    CHECK(partition->param_resident_bytes() < partition->whole_param_bytes());
    return std::make_tuple(first, second, partitioned.describe());
  };
  auto other = std::async(std::launch::async, run_rank, 1);
  auto [first0, second0, describe0] = run_rank(0);
  auto [first1, second1, describe1] = other.get();
  CHECK(torch::allclose(first0.at("reward_score"), want, 1e-5, 1e-6));
  CHECK(first1.empty());
  CHECK(torch::allclose(torch::cat({second0.at("reward_score"), second1.at("reward_score")}), want, 1e-5, 1e-6));
  // Each rank holds half of every layer (and the whole embedding and heads).
  CHECK_THAT(describe0, Catch::Contains("ZeRO-3: layers partitioned over 2 ranks"));
}

/// The fused kernels inside training: FusedAdamW steps as torch::optim::AdamW and shares
/// its checkpoints; the step-1 loss through the fused log-prob gather equals torch's
/// cross entropy, values and gradients.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <sstream>

#include <troupe/common/error.hpp>
#include <troupe/engine/losses.hpp>
#include <troupe/engine/optimizer.hpp>
#include <troupe/engine/train_engine.hpp>

#include "../models/model_fixtures.hpp"

using namespace troupe;

namespace {

/// Largest max|a - b| / max|b| over the tensors: relative to each tensor's scale (an
/// element near zero after an update of 1e-2 still carries the rounding of the 1e-2).
double max_relative(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>() / b[i].abs().max().item<double>());
  return worst;
}

std::vector<torch::Tensor> detached(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> out;
  for (const auto& t : tensors) out.push_back(t.detach().clone());
  return out;
}

const torch::optim::AdamWParamState& adamw_state(torch::optim::Optimizer& optimizer, const torch::Tensor& p) {
  return static_cast<const torch::optim::AdamWParamState&>(*optimizer.state().at(p.unsafeGetTensorImpl()));
}

/// One language-model step on a fixed batch of the tiny model.
void backward_on_batch(models::CausalLMImpl& model, int64_t seed) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto ids = torch::randint(3, 50, {3, 9}, g, torch::kLong);
  engine::language_model_loss(model.forward(ids, torch::ones_like(ids)), ids).backward();
}

/// Collectives between two threads standing for two ranks: each deposits its tensor,
/// both meet, each reads what it needs, both meet again before the slots are reused.
class TwoRanks {
 public:
  void broadcast(int rank, torch::Tensor& flat, int root) {
    exchange(rank, flat, [&] { if (rank != root) flat.copy_(slots_[root]); });
  }
  void reduce_sum(int rank, torch::Tensor& flat, int root) {
    exchange(rank, flat, [&] { if (rank == root) flat.copy_(slots_[0] + slots_[1]); });
  }
  void all_reduce(int rank, torch::Tensor& t, bool max) {
    exchange(rank, t, [&] { t.copy_(max ? torch::max(slots_[0], slots_[1]) : slots_[0] + slots_[1]); });
  }
  engine::TrainEngine::OptimizerSharding sharding(int rank, int stage) {
    engine::TrainEngine::OptimizerSharding s;
    s.rank = rank;
    s.world = 2;
    s.stage = stage;
    s.broadcast = [this, rank](torch::Tensor& flat, int root) { broadcast(rank, flat, root); };
    s.reduce_sum = [this, rank](torch::Tensor& flat, int root) { reduce_sum(rank, flat, root); };
    s.all_reduce_sum = [this, rank](torch::Tensor& t) { all_reduce(rank, t, false); };
    s.all_reduce_max = [this, rank](torch::Tensor& t) { all_reduce(rank, t, true); };
    return s;
  }

 private:
  void exchange(int rank, torch::Tensor& mine, const std::function<void()>& read) {
    slots_[rank] = mine.clone();  // `read` may overwrite `mine`; the slots stay as deposited
    meet();
    read();
    meet();
  }
  void meet() {
    std::unique_lock<std::mutex> lock(mutex_);
    const int generation = generation_;
    if (++arrived_ == 2) {
      arrived_ = 0;
      ++generation_;
      met_.notify_all();
    } else {
      met_.wait(lock, [&] { return generation_ != generation; });
    }
  }
  torch::Tensor slots_[2];
  std::mutex mutex_;
  std::condition_variable met_;
  int arrived_ = 0, generation_ = 0;
};

}  // namespace

TEST_CASE("FusedAdamW takes torch::optim::AdamW's steps on a small model", "[engine][training][kernels]") {
  auto config = test::tiny_config("llama");
  torch::manual_seed(3);
  auto fused_model = models::make_causal_lm(config);
  torch::manual_seed(3);
  auto torch_model = models::make_causal_lm(config);
  engine::OptimizerOptions options;
  options.learning_rate = 1e-2;
  options.weight_decay = 0.1;
  auto fused = engine::make_adamw(*fused_model, options);
  REQUIRE(dynamic_cast<engine::FusedAdamW*>(fused.get()) != nullptr);
  // torch's AdamW over the same groups of the twin model, found by position.
  auto fused_params = fused_model->parameters(), torch_params = torch_model->parameters();
  auto twin = [&](const torch::Tensor& p) {
    for (size_t i = 0; i < fused_params.size(); ++i)
      if (fused_params[i].unsafeGetTensorImpl() == p.unsafeGetTensorImpl()) return torch_params[i];
    FAIL("parameter not in the model");
    return torch::Tensor();
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (const auto& group : fused->param_groups()) {
    std::vector<torch::Tensor> params;
    for (const auto& p : group.params()) params.push_back(twin(p));
    groups.emplace_back(params, group.options().clone());
  }
  torch::optim::AdamW reference(groups, torch::optim::AdamWOptions(options.learning_rate));

  // lr 1e-2 moves each element by about 1e-2 a step: any real difference in the update
  // crosses 1e-6 of the parameters, while torch's sqrt being 1 ulp off costs ~1e-7. Both
  // get the same gradients (the fused model's), so the rounding does not feed back
  // through the model into diverging gradients.
  const auto start = detached(fused_params);
  for (int64_t step = 1; step <= 5; ++step) {
    INFO("step " << step);
    fused->zero_grad();
    backward_on_batch(*fused_model, step);
    if (step == 3) fused_params[0].mutable_grad() = torch::Tensor();  // a ZeRO rank's unowned parameter
    for (size_t i = 0; i < fused_params.size(); ++i) {
      const auto& g = fused_params[i].grad();
      torch_params[i].mutable_grad() = g.defined() ? g.clone() : torch::Tensor();
    }
    fused->step();
    reference.step();
    CHECK(max_relative(detached(fused_params), detached(torch_params)) < 1e-6);
  }
  CHECK(max_relative(detached(fused_params), start) > 1e-3);  // they did move
  // The state is torch's: same keys, steps and moments.
  REQUIRE(fused->state().size() == reference.state().size());
  for (size_t i = 0; i < fused_params.size(); ++i) {
    INFO("parameter " << i);
    const auto& a = adamw_state(*fused, fused_params[i]);
    const auto& b = adamw_state(reference, torch_params[i]);
    CHECK(a.step() == b.step());
    CHECK(max_relative({a.exp_avg()}, {b.exp_avg()}) < 1e-6);
    CHECK(max_relative({a.exp_avg_sq()}, {b.exp_avg_sq()}) < 1e-6);
  }
  CHECK(adamw_state(*fused, fused_params[0]).step() == 4);

  SECTION("a checkpoint of one loads into the other") {
    std::stringstream saved;
    torch::save(*fused, saved);
    torch::optim::AdamW loaded(groups, torch::optim::AdamWOptions(options.learning_rate));
    torch::load(loaded, saved);
    REQUIRE(loaded.state().size() == fused->state().size());
    for (size_t i = 0; i < fused_params.size(); ++i) {
      const auto& a = adamw_state(*fused, fused_params[i]);
      const auto& b = adamw_state(loaded, torch_params[i]);
      CHECK(a.step() == b.step());
      CHECK(torch::equal(a.exp_avg(), b.exp_avg()));
      CHECK(torch::equal(a.exp_avg_sq(), b.exp_avg_sq()));
    }
  }
  SECTION("amsgrad is refused") {
    static_cast<torch::optim::AdamWOptions&>(fused->param_groups()[0].options()).amsgrad(true);
    CHECK_THROWS_AS(fused->step(), Error);
  }
}

TEST_CASE("FusedAdamW steps a parameter the kernel does not take by the same formula",
          "[engine][training][kernels]") {
  // A transposed (non-contiguous) parameter goes through the LibTorch formula.
  torch::manual_seed(4);
  auto base = torch::randn({6, 5});
  auto fused_p = base.clone().t().detach().requires_grad_();
  auto torch_p = base.clone().t().detach().requires_grad_();
  REQUIRE_FALSE(fused_p.is_contiguous());
  const auto adamw_options = torch::optim::AdamWOptions(1e-2).weight_decay(0.1);
  engine::FusedAdamW fused(std::vector<torch::Tensor>{fused_p}, adamw_options);
  torch::optim::AdamW reference(std::vector<torch::Tensor>{torch_p}, adamw_options);
  for (int step = 0; step < 3; ++step) {
    auto grad = torch::randn({5, 6});
    fused_p.mutable_grad() = grad.clone();
    torch_p.mutable_grad() = grad.clone();
    fused.step();
    reference.step();
    CHECK(torch::equal(fused_p, torch_p));
  }
}

TEST_CASE("the step-1 loss through the fused gather equals torch's cross entropy", "[engine][training][kernels]") {
  torch::manual_seed(6);
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    INFO(toString(dtype));
    auto logits = (torch::randn({3, 11, 1003}) * 3).to(dtype).requires_grad_();  // (B, T, V)
    auto labels = torch::randint(0, 1003, {3, 11}, torch::kLong);
    labels.index_put_({0, torch::indexing::Slice(0, 5)}, -100);  // a masked prompt
    labels.index_put_({2, torch::indexing::Slice(8, torch::indexing::None)}, -100);  // padding
    auto loss = engine::language_model_loss(logits, labels);
    loss.backward();
    auto grad = logits.grad().clone();
    logits.mutable_grad() = torch::Tensor();
    auto want = torch::nn::functional::cross_entropy(
        logits.slice(1, 0, -1).reshape({-1, 1003}).to(torch::kFloat32), labels.slice(1, 1).reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
    want.backward();
    CHECK(loss.scalar_type() == torch::kFloat32);
    CHECK(std::abs(loss.item<double>() - want.item<double>()) <= 1e-6 * std::abs(want.item<double>()));
    REQUIRE(grad.scalar_type() == dtype);
    // fp32: to float rounding; bf16: the gradient itself is rounded to bf16 on both sides.
    const double tol = dtype == torch::kFloat32 ? 1e-6 : 1e-2;
    CHECK(torch::allclose(grad.to(torch::kFloat32), logits.grad().to(torch::kFloat32), tol, 1e-9));
    // Positions whose label is ignored get no gradient; the last position predicts nothing.
    CHECK(grad[0].slice(0, 0, 4).abs().sum().item<double>() == 0);
    CHECK(grad.select(1, 10).abs().sum().item<double>() == 0);
  }
  CHECK_THROWS_AS(engine::language_model_loss(torch::zeros({1, 3, 5}), torch::full({1, 3}, 7, torch::kLong)), Error);
}

TEST_CASE("FusedAdamW under ZeRO 1 and 2: two ranks step as one engine and split the state",
          "[engine][training][kernels]") {
  const int stage = GENERATE(1, 2);
  INFO("ZeRO stage " << stage);
  auto config = test::tiny_config("llama");
  engine::TrainOptions options;
  options.optimizer.learning_rate = 1e-2;
  options.optimizer.weight_decay = 0.1;
  options.max_grad_norm = 0.5;
  auto g = at::make_generator<at::CPUGeneratorImpl>(8);
  const std::vector<torch::Tensor> batches = {torch::randint(3, 50, {4, 9}, g, torch::kLong),
                                              torch::randint(3, 50, {4, 9}, g, torch::kLong)};
  auto step = [](engine::TrainEngine& engine, const torch::Tensor& ids) {
    // Every row as long: the mean over the batch is the mean of the two halves' means.
    engine.micro_step([&](models::CausalLMImpl& model) {
      return engine::language_model_loss(model.forward(ids, torch::ones_like(ids)), ids);
    });
  };
  torch::manual_seed(9);
  auto whole = models::make_causal_lm(config);
  engine::TrainEngine single(whole, options);
  for (const auto& ids : batches) step(single, ids);  // the second step reads the moments

  TwoRanks bus;
  std::vector<models::CausalLM> models_of_rank;
  for (int r = 0; r < 2; ++r) {
    torch::manual_seed(9);
    models_of_rank.push_back(models::make_causal_lm(config));
  }
  auto run_rank = [&](int rank) {
    engine::TrainEngine engine(models_of_rank[static_cast<size_t>(rank)], options);
    if (stage == 1)
      engine.set_gradient_sync([&, rank](const std::vector<torch::Tensor>& parameters) {
        for (const auto& p : parameters) {
          auto grad = p.grad();
          bus.all_reduce(rank, grad, false);
          grad.div_(2);
        }
      });
    engine.set_optimizer_sharding(bus.sharding(rank, stage));
    for (const auto& ids : batches) step(engine, ids.slice(0, 2 * rank, 2 * rank + 2));
    return engine.optimizer_state_bytes();
  };
  auto other = std::async(std::launch::async, run_rank, 1);
  const int64_t state0 = run_rank(0), state1 = other.get();
  // Stage 2's equal chunks pad each group's flat to a multiple of the ranks (< 2 elements
  // of 8 bytes of moments per group, 3 groups at most).
  const int64_t padding = stage == 2 ? 3 * 8 : 0;
  CHECK(state0 + state1 >= single.optimizer_state_bytes());
  CHECK(state0 + state1 <= single.optimizer_state_bytes() + padding);
  CHECK(state0 > 0);
  CHECK(state1 > 0);
  for (const auto& item : whole->named_parameters()) {
    INFO(item.key());
    CHECK(torch::allclose(models_of_rank[0]->named_parameters()[item.key()], item.value(), 1e-5, 1e-6));
    CHECK(torch::equal(models_of_rank[0]->named_parameters()[item.key()],
                       models_of_rank[1]->named_parameters()[item.key()]));
  }
}

/// The RL math on a CUDA device: the same fixtures, the same tolerances.
#include <troupe/rl/ema.hpp>
#include <troupe/rl/experience.hpp>
#include <troupe/rl/log_probs.hpp>
#include <troupe/rl/ppo.hpp>

#include "rl_fixtures.hpp"

using namespace troupe;
using troupe::test::fixture_tensor;

namespace {

bool have_cuda() {
  if (torch::cuda::is_available()) return true;
  WARN("no CUDA device: skipped");
  return false;
}

}  // namespace

TEST_CASE("CUDA: PPO equals the PyTorch reference", "[gpu][ppo]") {
  if (!have_cuda()) return;
  const auto fixture = troupe::test::rl_fixture("ppo.json");
  const auto& in = fixture.at("inputs");
  const auto& expected = fixture.at("cases").at(0);
  const torch::Device cuda(torch::kCUDA);
  auto exp = rl::Experience::from_generation(fixture_tensor(in.at("prompts")), fixture_tensor(in.at("sequences")),
                                             fixture_tensor(in.at("attention_mask")));
  exp.logprobs = fixture_tensor(in.at("logprobs"));
  exp.ref_logprobs = fixture_tensor(in.at("ref_logprobs"));
  exp.values = fixture_tensor(in.at("values"));
  exp.reward_score = fixture_tensor(in.at("reward_score"));
  exp = exp.to(cuda);
  rl::Ppo ppo;
  ppo.compute_advantages(exp);
  CHECK(exp.advantages.device().is_cuda());
  CHECK_CLOSE(exp.advantages.cpu(), fixture_tensor(expected.at("advantages")), 1e-6);
  CHECK_CLOSE(exp.returns.cpu(), fixture_tensor(expected.at("returns")), 1e-6);
  const double actor = ppo.policy_loss(fixture_tensor(in.at("new_logprobs")).to(cuda), exp).item<double>();
  const double critic = ppo.value_loss(fixture_tensor(in.at("new_values")).to(cuda), exp).item<double>();
  CHECK(actor == Approx(expected.at("actor_loss").get<double>()).margin(1e-6));
  CHECK(critic == Approx(expected.at("critic_loss").get<double>()).margin(1e-6));
}

TEST_CASE("CUDA: chunked log-probs equal the plain ones", "[gpu][log_probs]") {
  if (!have_cuda()) return;
  torch::manual_seed(5);
  const auto logits = 4.0 * torch::randn({4, 65, 1000}, torch::kCUDA);                // (B, T, V)
  const auto sequences = torch::randint(0, 1000, {4, 65}, torch::dtype(torch::kLong).device(torch::kCUDA));  // (B, T)
  CHECK_CLOSE(rl::gather_log_probs_chunked(logits, sequences, 16).cpu(),
              rl::gather_log_probs(logits, sequences).cpu(), 1e-5);
  const auto half = logits.to(torch::kBFloat16);
  CHECK_CLOSE(rl::gather_log_probs_chunked(half, sequences, 16).cpu(), rl::gather_log_probs(half, sequences).cpu(), 1e-5);
}

TEST_CASE("CUDA: EMA of GPU parameters kept on the CPU", "[gpu][ema]") {
  if (!have_cuda()) return;
  rl::NamedTensors params;
  params.insert("w", torch::ones({4}, torch::kCUDA));
  rl::EmaOptions options;
  options.beta = 0.75;
  options.device = torch::Device(torch::kCPU);
  rl::Ema ema(params, options);
  CHECK(ema.averages()["w"].device().is_cpu());
  params["w"].fill_(5.0);
  ema.update(params);
  CHECK_CLOSE(ema.averages()["w"], torch::full({4}, 2.0f), 1e-6);  // 0.75 * 1 + 0.25 * 5
}

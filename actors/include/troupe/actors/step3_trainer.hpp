#pragma once
/// Step 3 end to end on the actor runtime: loads the actor, critic, reference and
/// reward, spawns their role actors (in this process, or in worker processes when the
/// topology separates them), and runs the controller's generate-score-train cycle over
/// the prompt data, with evaluation on held-out prompts before and after, metrics, and
/// the final actor (and EMA) and critic saved.
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <troupe/actors/data_parallel.hpp>
#include <troupe/data/pipeline.hpp>
#include <troupe/engine/train_engine.hpp>
#include <troupe/models/generation.hpp>
#include <troupe/rl/algorithm.hpp>

namespace troupe::engine {
class MetricsLog;
class TensorBoardWriter;
}  // namespace troupe::engine

namespace troupe::actors {

struct Step3Config {
  std::filesystem::path actor_model;   ///< --actor_model_name_or_path (step 1's output)
  std::filesystem::path critic_model;  ///< --critic_model_name_or_path (step 2's output)
  /// The reward model; empty = critic_model (DeepSpeed-Chat starts both from step 2).
  std::filesystem::path reward_model;
  /// A registered reward function used instead of the reward model (--reward_function).
  std::string reward_function;
  /// An HTTP endpoint scoring each batch instead of the reward model (--reward_url,
  /// remote_reward_function.hpp); excludes reward_model and reward_function.
  std::string reward_url;
  /// Seconds the reward endpoint may take to connect and to answer (--reward_timeout).
  double reward_timeout = 60;
  /// Whether the reward comes from a model (reward_model, else critic_model), not from a
  /// reward function or endpoint.
  bool reward_from_model() const { return reward_function.empty() && reward_url.empty(); }
  /// A registered function that grades held-out answers in the evaluation (the demo's
  /// gold scorer); empty = none.
  std::string eval_function;
  std::string algorithm = "ppo";
  rl::AlgorithmOptions algorithm_options;

  data::PipelineOptions data;               ///< phase 3 prompts (train: rollouts, eval: held out)
  std::filesystem::path unsupervised_data;  ///< text corpus for mixture training; empty = off
  double unsup_coef = 27.8;

  int64_t generation_batch_size = 16;  ///< --per_device_generation_batch_size
  int64_t training_batch_size = 16;    ///< --per_device_training_batch_size
  /// --max_tokens_per_microbatch: every PPO minibatch runs in micro-batches of at most
  /// this many padded tokens (rows grouped by length), gradients accumulated before its
  /// one optimizer step; 0 = each minibatch in one pass. Needs an algorithm that
  /// supports_micro_batches().
  int64_t max_tokens_per_microbatch = 0;
  int64_t generation_batches = 1;
  int64_t ppo_epochs = 1;
  int64_t epochs = 1;                  ///< --num_train_epochs over the prompts
  int64_t max_steps = 0;               ///< stop after this many cycles (0 = all)
  models::GenerationOptions generation;  ///< rollout sampling; max_new_tokens = max_answer_seq_len
  engine::TrainOptions actor_train, critic_train;
  int64_t actor_lora_dim = 0, critic_lora_dim = 0;
  std::string lora_module_name;
  bool only_optimize_lora = false;
  bool enable_ema = false;
  bool release_inference_cache = false;
  /// The actor's packed generation weights: "fp32" or "bf16" (--inference_dtype).
  std::string inference_dtype = "fp32";
  /// What generation reads (--inference_weights): "packed" copies in inference_dtype,
  /// or "training": the training weights themselves, no copy (HybridEngineOptions).
  std::string inference_weights = "packed";
  /// Keep a frozen-copy reference on the CPU (a shared-base reference is the actor).
  bool offload_reference_model = false;
  /// --offload: ZeRO-Offload of the actor's and the critic's optimizer state (a no-op on
  /// the CPU; refused on GPUs, where it is not built yet).
  bool offload = false;
  bool actor_gradient_checkpointing = false, critic_gradient_checkpointing = false;
  /// Dropout of the actor and critic while training (--dropout); unset = the configs'.
  std::optional<double> dropout;
  torch::Device device = torch::kCPU;
  /// Topology file (--topology): which roles share a process. Empty = all four in this
  /// process. The actor's process is this one; each other process of the plan is a
  /// `troupe worker` started here, and batches move between processes over UCX.
  std::filesystem::path topology;
  /// This machine's resources for the plan (--cluster, one node); empty = detected.
  std::filesystem::path cluster;
  /// The `troupe` executable the workers run; empty = this process's own executable.
  std::filesystem::path worker_program;
  /// Instead of starting workers here, listen on this HOST:PORT and wait for the topology's
  /// worker processes to join (`TROUPE_SECRET=... troupe worker --join HOST:PORT` on any
  /// machine); they take the sets' ranks in the order they join. Needs `secret`.
  std::string listen;
  std::string secret;  ///< the shared secret external workers prove (--listen)
  /// Tensor-parallel size of the actor's generation layout (--inference_tp_size); 0 =
  /// the topology's roles.actor.inference_tp_size. Must divide the actor's ranks.
  int inference_tp_size = 0;
  /// What averages a data-parallel role's gradients across its processes (--dp_collectives).
  Collectives dp_collectives = default_collectives();
  /// --async_rollout: a rollout copy of the actor generates cycle k+1's rollouts on its
  /// own thread while cycle k is scored and trained, with the weights handed over in
  /// process after each update, so rollouts are at most one update stale
  /// (async_rollout.hpp). All roles in this process, one actor rank.
  bool async_rollout = false;
  /// --rollout_is_truncation C: with --async_rollout, each token's policy-gradient loss
  /// is weighted by min(pi_old / pi_rollout, C) (truncated IS; 0 = off).
  double rollout_is_truncation = 0;
  uint64_t seed = 1234;
  std::filesystem::path output_dir;  ///< actor/, critic/, actor_ema/ go here
  int64_t eval_prompts = 64;         ///< held-out prompts evaluated before and after (0 = none)
  int64_t eval_interval = 0;         ///< also evaluate every this many cycles (0 = never)
  /// Write output_dir/checkpoint/ every this many cycles and after the last (0 = never).
  int64_t save_interval = 0;
  /// Continue from output_dir/checkpoint/ (the same flags and topology); without a
  /// complete checkpoint, start from the beginning and say so.
  bool resume = false;
  /// When a worker process dies: respawn the workers this run started (with --listen:
  /// wait for workers to join again, see rejoin_timeout_seconds), reload every role from
  /// the last checkpoint (or start again without one) and go on, at most this many times
  /// (0 = stop with the error naming the lost role).
  int64_t max_restarts = 0;
  /// With --listen: how long the run waits for its worker processes to join
  /// (listen_wait_seconds), and after a lost worker for them to join the restarted run
  /// (--rejoin_timeout): `troupe worker --rejoin` processes come back by themselves, the
  /// lost one's replacement is started by hand or by a supervisor.
  double listen_wait_seconds = 1800;
  double rejoin_timeout_seconds = 600;
  /// How long a data-parallel role's rendezvous and each of its collectives may wait for
  /// the other ranks before failing with an error that names the ranks that did not
  /// arrive (--collective_timeout, seconds).
  int64_t collective_timeout_seconds = 300;
  /// A worker process that answers no heartbeat for this long once its roles are up (hung
  /// or stopped) is lost: one started here is killed and handled as a dead worker
  /// (--max_restarts); one that joined with --listen is reported (--heartbeat_timeout,
  /// seconds; 0 = no heartbeats).
  double heartbeat_timeout_seconds = 60;
  engine::MetricsLog* metrics = nullptr;
  engine::TensorBoardWriter* tensorboard = nullptr;
};

/// Greedy answers to held-out prompts, scored.
struct PolicyEvaluation {
  int64_t prompts = 0;
  double reward_score = std::numeric_limits<double>::quiet_NaN();  ///< mean reward (model or function)
  double gold_score = std::numeric_limits<double>::quiet_NaN();    ///< mean eval_function score
  double kl_per_answer = std::numeric_limits<double>::quiet_NaN(); ///< summed k1 KL to the reference
  double answer_length = 0;
  std::vector<std::pair<std::string, std::string>> examples;  ///< a few (prompt, answer)
};

struct Step3Result {
  PolicyEvaluation before, after;  ///< greedy answers
  /// Answers sampled as the rollouts are (same seed before and after): PPO optimises the
  /// sampling policy, so its gains show here first; greedy answers move only once the
  /// policy's most likely answer changes.
  PolicyEvaluation before_sampled, after_sampled;
  int64_t cycles = 0;
  double seconds = 0;
  double generate_seconds = 0;      ///< inside the hybrid engine's generate()
  int64_t tokens = 0;               ///< sequence tokens processed by the cycles
  std::map<std::string, double> last_metrics;  ///< the last cycle's metrics
  std::string reference_memory;     ///< what the reference policy shares or holds
  /// Where each role ran: "actor+reference in this process; critic+reward in worker
  /// process host:pid".
  std::string placement;
  int64_t remote_fetches = 0;       ///< batches this process pulled from workers over UCX
};

Step3Result run_step3(const Step3Config& config);

}  // namespace troupe::actors

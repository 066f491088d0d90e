#pragma once
/// Step-3 checkpoints: every --save_interval cycles (and at the end, after the evaluation
/// that follows training) the run writes
/// <output_dir>/checkpoint/ with each trainable role's state (actor/rankR, critic/rankR:
/// weights as they train, optimizer, schedule, RNG, counters, the EMA) and state.json
/// (the cycle, the metrics position, the algorithm's state, the evaluation before
/// training, the layout). It is built as checkpoint.tmp, synced to disk and renamed into
/// place, so the last complete checkpoint stays until a newer one is complete.
/// `--resume` restores it and the loop continues with the next cycle, bit for bit on CPU.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include <troupe/actors/step3_plan.hpp>
#include <troupe/actors/step3_runtime.hpp>
#include <troupe/actors/step3_trainer.hpp>

namespace troupe::actors {

/// What the controller carries across a checkpoint.
struct Step3Progress {
  int64_t cycle = 0;          ///< cycles done
  int64_t metrics_bytes = 0;  ///< size of metrics.jsonl when written (rows past it are redone)
  bool finished = false;      ///< every cycle and the evaluation after training done
  PolicyEvaluation before, before_sampled;
  PolicyEvaluation after, after_sampled;  ///< when finished
};

/// Writes <output_dir>/checkpoint/ for `progress` (see above).
void write_step3_checkpoint(const Step3Config& config, const Step3Plan& plan, Step3Runtime& runtime,
                            const Step3Progress& progress);

/// Restores the last complete checkpoint under config.output_dir into the roles and the
/// algorithm and returns where it stood; none (and says so) when no complete checkpoint
/// exists, so the run starts from the beginning. Throws troupe::Error, with the reason,
/// when the checkpoint was written by a run with another layout or length.
std::optional<Step3Progress> restore_step3_checkpoint(const Step3Config& config, const Step3Plan& plan,
                                                      Step3Runtime& runtime);

}  // namespace troupe::actors

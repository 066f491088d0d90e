#!/usr/bin/env bash
# Step 3 with --max_tokens_per_microbatch: `troupe train --step 3 --algo grpo` on the
# fixture GPT-2 and a small demo corpus, once with its minibatch in one pass and once in
# token-budget micro-batches. Both runs sample the same first cycle and train on it in
# two minibatches for two epochs, so its metrics row must agree (the loss, approx_kl and
# the gradient norm); the second run's row says how many passes a step took.
# Usage: step3_micro_batches.sh TROUPE_BINARY WORK_DIR MODEL_DIR
set -euo pipefail
troupe=$1
work=$2
model=$3
source "$(dirname "$0")/step3_common.sh"
fresh_workdir "$work"
"$troupe" data demo --out data --train_pairs 40 --eval_pairs 10 --prompts 8 > /dev/null

run() {
  local out=$1
  shift
  grpo_on_fixture "$troupe" "$model" "$out" --ppo_epochs 2 --actor_learning_rate 1e-4 "$@"
}
run plain
run micro --max_tokens_per_microbatch 120
test -f micro/actor/model.safetensors

python3 - plain/metrics.jsonl micro/metrics.jsonl <<'PY'
import json, sys
def cycle(path):
    rows = [row for row in map(json.loads, open(path)) if row.get("phase") == "step3/train"]
    assert len(rows) == 1, f"{path}: {len(rows)} training rows, expected 1"
    return rows[0]
plain, micro = cycle(sys.argv[1]), cycle(sys.argv[2])
assert "actor_micro_batches" not in plain, plain
assert micro["actor_micro_batches"] > 1, f"one pass per step with --max_tokens_per_microbatch 120: {micro}"
assert micro["reward_score"] == plain["reward_score"], "the two runs sampled different answers"
# fp32 rounding: relative, plus an absolute part for values that are small differences of
# larger terms (the loss sums advantages of both signs; approx_kl squares tiny log-ratios).
for name, absolute in (("actor_loss", 1e-6), ("actor_approx_kl", 1e-9), ("actor_grad_norm", 0.0)):
    a, b = micro[name], plain[name]
    assert abs(a - b) <= 1e-4 * abs(b) + absolute, f"{name}: {a} in micro-batches, {b} in one pass"
print(f"{micro['actor_micro_batches']:g} micro-batches per step; in them / in one pass: " +
      ", ".join(f"{name} {micro[name]:.6g} / {plain[name]:.6g}" for name in ("actor_loss", "actor_approx_kl", "actor_grad_norm")))
PY
echo "step 3 with --max_tokens_per_microbatch: ok"

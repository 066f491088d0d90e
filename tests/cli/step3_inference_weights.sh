#!/usr/bin/env bash
# Step 3 with --inference_weights training: the actor generates with its training weights
# (LoRA adapters unfused, no packed copy). Against a run with the packed copies, the first
# cycle samples the same answers (same seed, same reward score) and its log shows that
# nothing was packed.
# Usage: step3_inference_weights.sh TROUPE_BINARY WORK_DIR MODEL_DIR
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
  TROUPE_LOG_LEVEL=debug grpo_on_fixture "$troupe" "$model" "$out" --actor_lora_dim 4 --only_optimize_lora "$@"
}
run packed
run training --inference_weights training
test -f training/actor/model.safetensors
grep -q "hybrid engine: enter .*(0 layers packed" training.log || { grep "hybrid engine" training.log; echo "expected no packed layers"; exit 1; }
if grep -q "hybrid engine: enter .*(0 layers packed" packed.log; then echo "the packed run packed nothing"; exit 1; fi

python3 - packed/metrics.jsonl training/metrics.jsonl <<'PY'
import json, sys
def cycle(path):
    rows = [row for row in map(json.loads, open(path)) if row.get("phase") == "step3/train"]
    assert len(rows) == 1, f"{path}: {len(rows)} training rows, expected 1"
    return rows[0]
packed, training = cycle(sys.argv[1]), cycle(sys.argv[2])
assert training["reward_score"] == packed["reward_score"], f"different answers: {training['reward_score']} vs {packed['reward_score']}"
print(f"reward score {training['reward_score']:.6g} from the training weights and from the packed copies")
PY
echo "step 3 with --inference_weights training: ok"

#!/usr/bin/env bash
# Evaluation shared by two data-parallel ranks, and DPO at ZeRO stage 3.
# - Steps 1, 2 and DPO on two ranks report the evaluation one process reports (within 1e-6 relative) on an
#   eval set of 5 samples: each rank scores its share (3 and 2 samples; in batches of 2 rank 1 has one batch
#   fewer and runs a padding pass, so that under ZeRO stage 3 it joins rank 0's per-layer gathers), none twice.
# - DPO's evaluation after training on two ranks equals one process's that trained the same steps.
# - DPO over two ranks at ZeRO stage 3 (policy and frozen reference partitioned) trains the weights and logs
#   the metrics of stage 0 (within 1e-5, as the stages agree in data_parallel_steps.sh).
# Usage: data_parallel_eval.sh TROUPE_BINARY WORK_DIR
set -euo pipefail
troupe=$1
work=$2
source "$(dirname "${BASH_SOURCE[0]}")/demo_workdir.sh"
demo_workdir "$troupe" "$work" 96
common=(--data_path Dahoas/rm-static=data --data_split 4,4,2 --max_seq_len 48 --tokenizer tok --seed 7
  --model_name_or_path preset:llama-tiny --learning_rate 1e-3
  --eval_samples 5 --per_device_eval_batch_size 2)

run() {  # OUTPUT_DIR FLAGS...
  local out=$1
  shift
  "$troupe" train "${common[@]}" "$@" --output_dir "$out" 2> "$out.log" \
    || { cat "$out.log"; cat "$out/logs/rank1.log" 2>/dev/null || true; exit 1; }
}
for step in 1 2 dpo; do
  # Steps 1 and 2 stop after two steps (their eval before training is compared); DPO runs its epoch.
  limit=(--per_device_train_batch_size 4 --max_steps 2)
  if [ $step = dpo ]; then limit=(--per_device_train_batch_size 4 --beta 0.2); fi
  run "${step}_one" --step $step "${limit[@]}"
  run "${step}_zero0" --step $step "${limit[@]}" --num_processes 2 --zero_stage 0
  run "${step}_zero3" --step $step "${limit[@]}" --num_processes 2 --zero_stage 3
  grep -q "training and [6-9][0-9]* evaluation samples" "${step}_one.log"  # more than the 5 evaluated
done
grep -q "reference model: a frozen copy, ZeRO-3: layers partitioned over 2 ranks" dpo_zero3.log
# DPO's loss is a mean over pairs, so one process with twice the batch trains what two ranks train (the 38
# pairs split evenly): its evaluation after training, of a model that is no longer its reference, is the
# two ranks' too.
run dpo_one_batch8 --step dpo --beta 0.2 --per_device_train_batch_size 8

python3 - <<'PYEOF'
import json
from safetensors.numpy import load_file
def rows(d, kind):
    return [r for r in map(json.loads, open(f"{d}/metrics.jsonl")) if r["phase"].endswith("/" + kind)]
def close(a, b, relative):
    return abs(a - b) <= relative * max(abs(a), abs(b), 1e-12)
for step in ("1", "2", "dpo"):
    one = rows(f"{step}_one", "eval")[0]
    assert one["step"] == 0, one
    for stage in (0, 3):
        two = rows(f"{step}_zero{stage}", "eval")[0]
        names = [k for k in one if k not in ("phase", "step", "time")]
        assert names and set(names) <= set(two), (one, two)
        for name in names:
            assert close(one[name], two[name], 1e-6), (step, stage, name, one[name], two[name])
        print(f"{step}: eval before training, one process and two ranks at ZeRO stage {stage}:",
              ", ".join(f"{n} {one[n]:.6g}/{two[n]:.6g}" for n in names))

one, two = rows("dpo_one_batch8", "eval")[-1], rows("dpo_zero0", "eval")[-1]
assert one["step"] == two["step"] > 0 and one["rewards/margins"] != 0, (one, two)
for name in ("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"):
    assert close(one[name], two[name], 1e-6), ("dpo after training", name, one[name], two[name])
print("dpo: eval after training, one process of batch 8 and two ranks of batch 4:",
      ", ".join(f"{n} {one[n]:.7g}/{two[n]:.7g}" for n in ("loss", "rewards/margins")))

# DPO at stage 3 against stage 0: the same weights and metrics.
zero0, zero3 = (load_file(f"dpo_zero{s}/model.safetensors") for s in (0, 3))
assert zero0.keys() == zero3.keys()
worst = max(float(abs(zero3[k] - zero0[k]).max()) for k in zero0)
print(f"dpo: ZeRO stage 3 against stage 0: largest weight difference {worst:.3g}")
assert worst < 1e-5, worst
for kind in ("train", "eval"):
    a, b = rows("dpo_zero0", kind), rows("dpo_zero3", kind)
    assert len(a) == len(b) > 0, (kind, len(a), len(b))
    for x, y in zip(a, b):
        for name in x:
            if name in ("phase", "time"):
                continue
            assert abs(x[name] - y[name]) <= 1e-5 * max(1.0, abs(x[name])), (kind, name, x, y)
print("dpo: ZeRO stage 3 logs the metrics of stage 0:", rows("dpo_zero3", "eval")[-1])
PYEOF
echo "data-parallel evaluation: ok"

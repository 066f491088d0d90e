#!/usr/bin/env bash
# Steps 1 and 2 on two data-parallel ranks (`--num_processes 2`) at ZeRO stages 0-3.
# - Every stage trains the same model (stage 2 in small buckets): the stages change where the optimizer state,
#   gradients and parameters live, not the arithmetic (weights agree within 1e-5).
# - The two ranks together train on what one rank with twice the batch trains on.
# - Rank 1 logs to its own file, each line led by "[rank 1/2]"; rank 0 alone writes
#   metrics and the model.
# - A 2-rank ZeRO-3 (and ZeRO-2) run stopped by --max_steps and resumed equals the uninterrupted run.
# - A rank that dies stops the run at once, naming the rank and its log.
# Usage: data_parallel_steps.sh TROUPE_BINARY WORK_DIR
set -euo pipefail
troupe=$1
work=$2
source "$(dirname "${BASH_SOURCE[0]}")/demo_workdir.sh"
demo_workdir "$troupe" "$work" 160
base=(--data_path Dahoas/rm-static=data --data_split 2,4,4 --max_seq_len 48 --tokenizer tok --seed 7
  --model_name_or_path preset:llama-tiny --learning_rate 1e-3 --max_steps 6 --eval_samples 8)
common=("${base[@]}" --per_device_train_batch_size 4)

for stage in 0 1 2 3; do
  # Stage 2 in buckets of 4096 gradient elements: reduced during the backward, many per pass.
  buckets=()
  if [ "$stage" = 2 ]; then buckets=(--reduce_bucket_size 4096); fi
  "$troupe" train --step 1 "${common[@]}" "${buckets[@]}" --num_processes 2 --zero_stage $stage --output_dir "step1_zero$stage" \
    2> "zero$stage.log" || { cat "zero$stage.log"; cat "step1_zero$stage"/logs/rank1.log || true; exit 1; }
  grep -q "2 data-parallel ranks, ZeRO stage $stage" "zero$stage.log"
  grep -q "^\[rank 1/2\] step1: eval at step 0" "step1_zero$stage/logs/rank1.log"  # its lines say whose they are
done

# --max_steps 6 stops before the epoch ends: the models are in the checkpoints.
python3 - <<'EOF'
import sys
from safetensors.numpy import load_file
def weights(stage):
    return load_file(f"step1_zero{stage}/checkpoint/rank0/model.safetensors") if stage < 3 else None
base = weights(0)
for stage in (1, 2):
    other = weights(stage)
    assert other.keys() == base.keys(), stage
    worst = max(float(abs(other[k] - base[k]).max()) for k in base)
    print(f"ZeRO stage {stage} against stage 0: largest weight difference {worst:.3g}")
    assert worst < 1e-5, f"stage {stage} trained another model ({worst})"
EOF

# Stage 3 writes chunks, not model files, in its checkpoints: a run to the end writes the model.
full=(--data_path Dahoas/rm-static=data --data_split 2,4,4 --max_seq_len 48 --tokenizer tok --seed 7
  --model_name_or_path preset:llama-tiny --per_device_train_batch_size 4 --learning_rate 1e-3 --eval_samples 8)
"$troupe" train --step 1 "${full[@]}" --num_processes 2 --zero_stage 3 --output_dir zero3_whole 2> zero3_whole.log \
  || { cat zero3_whole.log; exit 1; }
"$troupe" train --step 1 "${full[@]}" --num_processes 2 --zero_stage 0 --output_dir zero0_whole 2> zero0_whole.log \
  || { cat zero0_whole.log; exit 1; }
"$troupe" train --step 1 "${full[@]}" --num_processes 2 --zero_stage 3 --max_steps 3 --output_dir zero3_resumed \
  2> zero3_part.log || { cat zero3_part.log; exit 1; }
"$troupe" train --step 1 "${full[@]}" --num_processes 2 --zero_stage 3 --resume --output_dir zero3_resumed \
  2> zero3_resumed.log || { cat zero3_resumed.log; exit 1; }
grep -q "step1: resumed from" zero3_resumed.log
test -f zero3_whole/config.json
test "$(grep -c '"phase":"step1/train"' zero3_whole/metrics.jsonl)" -gt 0
python3 - <<'EOF'
from safetensors.numpy import load_file
whole, zero0, resumed = (load_file(f"{d}/model.safetensors") for d in ("zero3_whole", "zero0_whole", "zero3_resumed"))
worst = max(float(abs(whole[k] - zero0[k]).max()) for k in whole)
print(f"ZeRO stage 3 against stage 0, whole epoch: largest weight difference {worst:.3g}")
assert worst < 1e-5, worst
same = all((whole[k] == resumed[k]).all() for k in whole)
print("ZeRO stage 3 stopped and resumed equals the uninterrupted run:", same)
assert same
EOF

# Stage 2 keeps each rank's chunk of AdamW's state in its checkpoint: stopped and resumed
# equals the uninterrupted run.
z2=(--num_processes 2 --zero_stage 2 --reduce_bucket_size 4096)
"$troupe" train --step 1 "${full[@]}" "${z2[@]}" --output_dir zero2_whole 2> zero2_whole.log \
  || { cat zero2_whole.log; exit 1; }
"$troupe" train --step 1 "${full[@]}" "${z2[@]}" --max_steps 3 --output_dir zero2_resumed 2> zero2_part.log \
  || { cat zero2_part.log; exit 1; }
"$troupe" train --step 1 "${full[@]}" "${z2[@]}" --resume --output_dir zero2_resumed 2> zero2_resumed.log \
  || { cat zero2_resumed.log; exit 1; }
grep -q "step1: resumed from" zero2_resumed.log
python3 - <<'EOF'
from safetensors.numpy import load_file
whole, resumed = (load_file(f"{d}/model.safetensors") for d in ("zero2_whole", "zero2_resumed"))
same = all((whole[k] == resumed[k]).all() for k in whole)
print("ZeRO stage 2 stopped and resumed equals the uninterrupted run:", same)
assert same
EOF

# One rank with twice the batch trains on the same samples each step as two ranks do.
"$troupe" train --step 1 "${base[@]}" --per_device_train_batch_size 8 --output_dir one_rank 2> one_rank.log \
  || { cat one_rank.log; exit 1; }
python3 - <<'EOF'
import json
def tokens(d):
    return [r["tokens"] for r in map(json.loads, open(f"{d}/metrics.jsonl")) if r["phase"] == "step1/train"]
one = tokens("one_rank")
two = tokens("step1_zero0")  # rank 0's tokens: about half of each step's
print("tokens per step, one rank of batch 8:", one, " rank 0 of two, batch 4:", two)
assert len(one) == len(two)
assert all(0 < t < o for t, o in zip(two, one))
EOF

# A rank that dies: the run stops at once, naming it.
"$troupe" train --step 1 "${full[@]}" --num_train_epochs 50 --num_processes 2 --output_dir killed 2> killed.log &
launcher=$!
for _ in $(seq 100); do
  grep -q "step1: eval at step 0" killed/logs/rank1.log 2>/dev/null && break
  sleep 0.2
done
rank1=$(cat /proc/"$launcher"/task/*/children)
kill -9 "$rank1"
status=0
timeout 20 tail --pid="$launcher" -f /dev/null || { echo "the launcher did not stop"; kill -9 "$launcher"; exit 1; }
wait "$launcher" || status=$?
test "$status" -ne 0
grep -q "rank 1 ended with signal Killed; stopping the run (its log: killed/logs/rank1.log)" killed.log \
  || { cat killed.log; exit 1; }
echo "data-parallel steps: ok"

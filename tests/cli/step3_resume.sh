#!/usr/bin/env bash
# Step-3 checkpoints: a run killed with SIGKILL after a checkpoint and continued with
# --resume ends with the same actor, EMA and critic files, byte for byte, and the same
# metrics rows (none twice) as the uninterrupted run; in one process, and with a
# data-parallel actor and critic (ZeRO stage 2, then 3) whose second ranks run in a
# worker process.
# Usage: step3_resume.sh TROUPE_BINARY WORK_DIR
set -euo pipefail
troupe=$1
work=$2
topologies=$(cd "$(dirname "$0")/../../placement/examples" && pwd)
source "$(dirname "$0")/step3_common.sh"
fresh_workdir "$work"
sft_and_reward_models "$troupe"

# Rows equal but for timings.
same_metrics() {
  python3 - "$1" "$2" <<'PY'
import json, sys
def rows(path):
    return [{k: v for k, v in json.loads(line).items() if "second" not in k and k != "time"} for line in open(path)]
a, b = rows(sys.argv[1]), rows(sys.argv[2])
if a != b:
    sys.exit(f"metrics differ: {len(a)} rows against {len(b)}; first difference at row "
             f"{next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))}")
PY
}

# The run every case repeats: 6 cycles, a checkpoint every 2.
step3_flags=(--actor_model_name_or_path step1 --critic_model_name_or_path step2 --data_path Dahoas/rm-static=data
             --data_split 2,4,4 --max_prompt_seq_len 32 --max_answer_seq_len 8 --per_device_generation_batch_size 2
             --per_device_training_batch_size 2 --max_steps 6 --enable_ema --actor_learning_rate 1e-4
             --critic_learning_rate 1e-4 --eval_prompts 2 --eval_function demo_gold --do_sample true
             --unsupervised_dataset_name data/unsupervised.jsonl --save_interval 2)

check() {  # NAME [more flags]
  local name=$1
  shift
  local s3=("${step3_flags[@]}" "$@")
  "$troupe" train --step 3 "${s3[@]}" --output_dir "$name.whole" 2> "$name.whole.log" || { cat "$name.whole.log"; exit 1; }
  test -f "$name.whole/checkpoint/state.json"
  # Killed as soon as the first checkpoint is in place (cycle 2 of 6).
  "$troupe" train --step 3 "${s3[@]}" --output_dir "$name.killed" 2> "$name.killed.log" &
  local pid=$!
  for _ in $(seq 12000); do [ -f "$name.killed/checkpoint/state.json" ] && break; sleep 0.005; done
  kill -9 "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
  "$troupe" train --step 3 "${s3[@]}" --output_dir "$name.killed" --resume 2> "$name.resumed.log" \
    || { cat "$name.resumed.log"; exit 1; }
  grep -q "resuming after cycle" "$name.resumed.log"
  for file in actor/model.safetensors actor_ema/model.safetensors critic/model.safetensors; do
    cmp "$name.whole/$file" "$name.killed/$file"
  done
  same_metrics "$name.whole/metrics.jsonl" "$name.killed/metrics.jsonl"
  # A finished run resumes from its last checkpoint and changes nothing.
  "$troupe" train --step 3 "${s3[@]}" --output_dir "$name.killed" --resume 2> /dev/null
  cmp "$name.whole/actor/model.safetensors" "$name.killed/actor/model.safetensors"
}

check one_process

# Killed five times in a row at random moments (loading, generation, training, a
# checkpoint write, the final save), each time continued with --resume, then run to the
# end: still the uninterrupted run's files and rows.
random_kills() {  # NAME [more flags]: against NAME.whole, into NAME.random
  local name=$1
  shift
  local s3=("${step3_flags[@]}" "$@") log="$name.random.log"
  local start whole_ms delay_ms pid
  start=$(date +%s%N)
  "$troupe" train --step 3 "${s3[@]}" --output_dir "$name.timing" 2> /dev/null
  whole_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  for attempt in 1 2 3 4 5; do
    delay_ms=$(( RANDOM % (whole_ms + 1) ))
    "$troupe" train --step 3 "${s3[@]}" --output_dir "$name.random" --resume 2>> "$log" &
    pid=$!
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    kill -9 "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
    echo "kill $attempt after ${delay_ms} ms of a ${whole_ms} ms run" >> "$log"
  done
  "$troupe" train --step 3 "${s3[@]}" --output_dir "$name.random" --resume 2>> "$log" || { cat "$log"; exit 1; }
  for file in actor/model.safetensors actor_ema/model.safetensors critic/model.safetensors; do
    cmp "$name.whole/$file" "$name.random/$file" || { grep "kill\|resum\|checkpoint" "$log"; exit 1; }
  done
  same_metrics "$name.whole/metrics.jsonl" "$name.random/metrics.jsonl" || { grep "kill\|resum\|checkpoint" "$log"; exit 1; }
}
random_kills one_process
# TensorBoard, reading every event file of the run, shows each cycle once, as in the
# uninterrupted run.
python3 - one_process.whole/tensorboard one_process.random/tensorboard <<'PY'
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
def series(log_dir):
    acc = EventAccumulator(log_dir, size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"] if "second" not in tag}
whole, killed = series(sys.argv[1]), series(sys.argv[2])
if whole != killed:
    tag = next(t for t in sorted(set(whole) | set(killed)) if whole.get(t) != killed.get(t))
    sys.exit(f"TensorBoard {tag}: {whole.get(tag)} uninterrupted, {killed.get(tag)} resumed")
PY
# A LoRA actor over a frozen base: its checkpoint holds the adapters, against the base on disk.
check lora --actor_lora_dim 4 --only_optimize_lora
check data_parallel --topology "$topologies/step3_actor_dp2.json"
# Two processes (the actor's second rank in a worker): killing the controller ends its worker too.
random_kills data_parallel --topology "$topologies/step3_actor_dp2.json"
# ZeRO stage 3: each rank checkpoints its chunks.
sed 's/"zero_stage": 2/"zero_stage": 3/' "$topologies/step3_actor_dp2.json" > zero3.json
check zero3 --topology zero3.json

# A worker process killed mid-run: with --max_restarts the run respawns it, every role
# reloads from the last checkpoint, and the run ends as the uninterrupted one did.
s3=("${step3_flags[@]}" --topology "$topologies/step3_two_processes.json")
"$troupe" train --step 3 "${s3[@]}" --output_dir apart.whole 2> apart.whole.log || { cat apart.whole.log; exit 1; }
"$troupe" train --step 3 "${s3[@]}" --max_restarts 2 --output_dir apart.lost 2> apart.lost.log &
pid=$!
for _ in $(seq 12000); do [ -f apart.lost/checkpoint/state.json ] && break; sleep 0.005; done
pkill -9 -P "$pid" -f "worker --join" || true  # this run's workers only (tests run in parallel)
wait "$pid" || { cat apart.lost.log; exit 1; }
for file in actor/model.safetensors actor_ema/model.safetensors critic/model.safetensors; do
  cmp "apart.whole/$file" "apart.lost/$file"
done
if grep -q "step3: restart 1 of 2: lost worker" apart.lost.log; then
  grep -q '"phase":"step3/restart"' apart.lost/metrics.jsonl
  grep -v '"phase":"step3/restart"' apart.lost/metrics.jsonl > apart.lost.rows
  same_metrics apart.whole/metrics.jsonl apart.lost.rows
else
  echo "the worker was killed after the run had finished: no restart to check"
fi

# A worker process that hangs (SIGSTOP) keeps its connection open, so only heartbeats
# notice: the run kills it and restarts as for a dead one, and ends as the uninterrupted run.
"$troupe" train --step 3 "${s3[@]}" --max_restarts 2 --heartbeat_timeout 2 --output_dir apart.stopped \
  2> apart.stopped.log &
pid=$!
for _ in $(seq 12000); do [ -f apart.stopped/checkpoint/state.json ] && break; sleep 0.005; done
pkill -STOP -P "$pid" -f "worker --join" || true
wait "$pid" || { cat apart.stopped.log; exit 1; }
for file in actor/model.safetensors actor_ema/model.safetensors critic/model.safetensors; do
  cmp "apart.whole/$file" "apart.stopped/$file"
done
if grep -q "step3: restart 1 of 2: lost worker" apart.stopped.log; then
  grep -q "no heartbeat answer within 2 s: the process is hung or stopped" apart.stopped.log \
    || { cat apart.stopped.log; exit 1; }
  grep -v '"phase":"step3/restart"' apart.stopped/metrics.jsonl > apart.stopped.rows
  same_metrics apart.whole/metrics.jsonl apart.stopped.rows
else
  echo "the worker was stopped after the run had finished: no restart to check"
fi

# No checkpoint yet: --resume starts from the beginning and says so.
"$troupe" train --step 3 --actor_model_name_or_path step1 --critic_model_name_or_path step2 \
  --data_path Dahoas/rm-static=data --data_split 2,4,4 --max_prompt_seq_len 32 --max_answer_seq_len 8 \
  --per_device_generation_batch_size 2 --per_device_training_batch_size 2 --max_steps 1 --eval_prompts 0 \
  --output_dir fresh --resume 2> fresh.log
grep -q "no complete checkpoint" fresh.log
# Another length than the checkpoint's run is refused with the reason.
if "$troupe" train --step 3 --actor_model_name_or_path step1 --critic_model_name_or_path step2 \
  --data_path Dahoas/rm-static=data --data_split 2,4,4 --max_prompt_seq_len 32 --max_answer_seq_len 8 \
  --per_device_generation_batch_size 2 --per_device_training_batch_size 2 --max_steps 4 --enable_ema --eval_prompts 2 \
  --do_sample true --unsupervised_dataset_name data/unsupervised.jsonl --output_dir one_process.whole --resume 2> refused.log; then
  echo "a resume with another --max_steps was accepted"; exit 1
fi
grep -q "total_cycles" refused.log
echo "step 3 resume: ok"

#!/usr/bin/env bash
# Step 3 with worker processes started by hand (--listen) survives losing one: each
# worker runs `troupe worker --join HOST:PORT --rejoin SECONDS`. One is killed with
# SIGKILL after the first checkpoint and a replacement is started, as a supervisor
# would; the other worker joins the restarted run by itself. The run ends with the
# actor, EMA and critic files of the uninterrupted run, byte for byte, and the same
# metrics rows; afterwards the workers find no controller within --rejoin and exit 0.
# Usage: step3_rejoin.sh TROUPE_BINARY WORK_DIR
set -euo pipefail
troupe=$1
work=$2
source "$(dirname "$0")/step3_common.sh"
fresh_workdir "$work"
sft_and_reward_models "$troupe"

# The actor and reference here; the critic and the reward model in a worker each.
cat > topology.json <<'JSON'
{"precision": "fp32",
 "roles": {"actor": {}, "reference": {}, "critic": {}, "reward": {}},
 "colocate": [["actor", "reference"], ["critic"], ["reward"]]}
JSON
# Three processes with a CPU slot each: more than a 2-core machine has, so say so.
echo '{"nodes": [{"name": "local", "cpu_threads": 8, "memory": "16GiB"}]}' > cluster.json
s3=(--actor_model_name_or_path step1 --critic_model_name_or_path step2 --data_path Dahoas/rm-static=data
    --data_split 2,4,4 --max_prompt_seq_len 32 --max_answer_seq_len 8 --per_device_generation_batch_size 2
    --per_device_training_batch_size 2 --max_steps 6 --enable_ema --actor_learning_rate 1e-4
    --critic_learning_rate 1e-4 --eval_prompts 0 --do_sample true --save_interval 2 --topology topology.json --cluster cluster.json)
"$troupe" train --step 3 "${s3[@]}" --output_dir whole 2> whole.log || { cat whole.log; exit 1; }

export TROUPE_SECRET=rejoin-test-secret
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$troupe" train --step 3 "${s3[@]}" --listen "127.0.0.1:$port" --max_restarts 1 --rejoin_timeout 60 \
  --output_dir lost 2> lost.log &
controller=$!
worker() { "$troupe" worker --join "127.0.0.1:$port" --rejoin 15 2>> "worker$1.log" & }
worker 1
first=$!
worker 2
second=$!
for _ in $(seq 12000); do [ -f lost/checkpoint/state.json ] && break; sleep 0.005; done
kill -9 "$first" 2> /dev/null || true
# The replacement, once the controller has noticed the loss (a supervisor restarting it).
for _ in $(seq 600); do grep -q "step3: restart 1 of 1" lost.log && break; sleep 0.1; done
worker 3
third=$!
wait "$controller" || { cat lost.log worker*.log; exit 1; }
for file in actor/model.safetensors actor_ema/model.safetensors critic/model.safetensors; do
  cmp "whole/$file" "lost/$file"
done
if grep -q "step3: restart 1 of 1: lost worker" lost.log; then
  grep -q "once the worker processes joined again" lost.log
  grep -q "joining again for up to 15 s" worker2.log || { cat worker2.log; exit 1; }
  python3 - whole/metrics.jsonl lost/metrics.jsonl <<'PY'
import json, sys
def rows(path):
    return [{k: v for k, v in json.loads(line).items() if "second" not in k and k != "time"}
            for line in open(path) if '"phase":"step3/restart"' not in line]
a, b = rows(sys.argv[1]), rows(sys.argv[2])
assert a == b, f"metrics differ: {len(a)} rows against {len(b)}"
PY
  echo "the run lost a worker, the others joined again, and it ended as the uninterrupted run"
else
  echo "the worker was killed after the run had finished: no restart to check"
fi
# The surviving workers look for a controller for --rejoin seconds, find none, and exit 0.
wait "$second" || { cat worker2.log; exit 1; }
wait "$third" || { cat worker3.log; exit 1; }
grep -q "no controller at 127.0.0.1:$port within --rejoin 15 s after the last run, exiting" worker2.log \
  || { cat worker2.log; exit 1; }
echo "step 3 with --listen workers that rejoin: ok"

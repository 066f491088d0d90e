#!/usr/bin/env bash
# Step 3 with its rewards from an HTTP endpoint: `troupe train --step 3 --algo grpo
# --reward_url` on the fixture GPT-2 and a small demo corpus against reward_server.py.
# The run finishes; the server got one request per cycle with all of its rows; each
# cycle's reward_score in metrics.jsonl is the mean of the rewards the server gave
# (over the answers kept: an answer that is EOS alone is dropped before training).
# Usage: step3_reward_url.sh TROUPE_BINARY WORK_DIR MODEL_DIR
set -euo pipefail
troupe=$1
work=$2
model=$3
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"
cd "$work"
"$troupe" data demo --out data --train_pairs 40 --eval_pairs 10 --prompts 8 > /dev/null

python3 "$here/reward_server.py" --port_file port --log requests.jsonl &
server=$!
trap 'kill "$server" 2> /dev/null || true' EXIT
for _ in $(seq 100); do [ -s port ] && break; sleep 0.1; done
port=$(cat port)

"$troupe" train --step 3 --algo grpo --actor_model_name_or_path "$model" \
  --reward_url "http://127.0.0.1:$port/score" --reward_timeout 30 \
  --data_path Dahoas/rm-static=data --data_split 2,4,4 --max_prompt_seq_len 48 --max_answer_seq_len 8 \
  --per_device_generation_batch_size 2 --per_device_training_batch_size 4 --max_steps 3 --eval_prompts 0 \
  --actor_learning_rate 1e-4 --output_dir out 2> train.log || { cat train.log; exit 1; }
test -f out/actor/model.safetensors

python3 - requests.jsonl out/metrics.jsonl <<'PY'
import json, sys
requests = [json.loads(line) for line in open(sys.argv[1])]
cycles = [row for row in map(json.loads, open(sys.argv[2])) if row.get("phase") == "step3/train"]
assert len(cycles) == 3, f"{len(cycles)} training rows in metrics.jsonl, expected 3"
assert len(requests) == 3, f"the server got {len(requests)} requests for 3 cycles (one per batch expected)"
for i, (request, cycle) in enumerate(zip(requests, cycles)):
    assert request["rows"] == 8, f"cycle {i}: {request['rows']} rows in one request, expected 2 prompts x 4 answers"
    kept = [r for r, text in zip(request["rewards"], request["responses"]) if text != ""]
    assert request["rows"] - len(kept) == cycle["dropped_answers"], f"cycle {i}: {request} against {cycle}"
    expected = sum(kept) / len(kept)
    assert abs(cycle["reward_score"] - expected) < 1e-4 * max(1.0, abs(expected)), \
        f"cycle {i}: reward_score {cycle['reward_score']} in the metrics, the server gave a mean of {expected}"
print("rewards from the server: " + ", ".join(f"{c['reward_score']:.4f}" for c in cycles))
PY
echo "step 3 with --reward_url: ok"

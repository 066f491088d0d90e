#!/usr/bin/env bash
# Steps 1, 2 and 3 through `troupe train` on a small demo corpus, then a resumed step 1
# and chat with the result. Usage: run_steps.sh TROUPE_BINARY WORK_DIR EXAMPLE_BINARY
set -euo pipefail
troupe=$1
work=$2
example=$3
topologies=$(cd "$(dirname "$0")/../../placement/examples" && pwd)
rm -rf "$work"
mkdir -p "$work"
cd "$work"
"$troupe" data demo --out data --train_pairs 300 --eval_pairs 40 --prompts 10 --unsupervised_docs 40
"$troupe" tokenizer train --input data/train.jsonl --vocab_size 320 --out tok
common=(--data_path Dahoas/rm-static=data --data_split 2,4,4 --max_seq_len 64 --tokenizer tok --seed 7)

"$troupe" train --step 1 --model_name_or_path preset:llama-tiny "${common[@]}" \
  --per_device_train_batch_size 8 --learning_rate 1e-3 --max_steps 4 --output_dir step1_part
"$troupe" train --step 1 --model_name_or_path preset:llama-tiny "${common[@]}" \
  --per_device_train_batch_size 8 --learning_rate 1e-3 --output_dir step1_part --resume
test -f step1_part/config.json
test -f step1_part/tokenizer.json
test -s step1_part/metrics.jsonl
ls step1_part/tensorboard/events.out.tfevents.* > /dev/null

"$troupe" train --step 2 --model_name_or_path step1_part "${common[@]}" \
  --per_device_train_batch_size 8 --learning_rate 5e-4 --output_dir step2
grep -q '"phase":"step2/eval"' step2/metrics.jsonl

"$troupe" train --step 3 --actor_model_name_or_path step1_part --critic_model_name_or_path step2 \
  --data_path Dahoas/rm-static=data --data_split 2,4,4 --max_prompt_seq_len 32 --max_answer_seq_len 6 \
  --per_device_generation_batch_size 4 --per_device_training_batch_size 2 --max_steps 2 --enable_ema \
  --actor_learning_rate 1e-4 --critic_learning_rate 1e-4 --kl_ctl 0.05 --eval_prompts 4 \
  --eval_function demo_gold --output_dir step3
test -f step3/actor/config.json
test -f step3/actor_ema/config.json
test -f step3/critic/config.json

# The same step 3 with critic and reward in a `troupe worker` process started for it;
# batches cross between the processes over UCX. At --log_level debug, which the worker
# logs at too, its lines led by the roles it hosts.
"$troupe" --log_level debug train --step 3 --actor_model_name_or_path step1_part --critic_model_name_or_path step2 \
  --data_path Dahoas/rm-static=data --data_split 2,4,4 --max_prompt_seq_len 32 --max_answer_seq_len 6 \
  --per_device_generation_batch_size 4 --per_device_training_batch_size 2 --max_steps 2 \
  --eval_prompts 4 --topology "$topologies/step3_two_processes.json" --output_dir step3_apart 2> step3_apart.log \
  || { cat step3_apart.log; exit 1; }
grep -q "critic+reward in worker process" step3_apart.log
grep -q "batches pulled from worker processes over UCX" step3_apart.log
grep -qE "^troupe: node [^ ]+ joined \(" step3_apart.log  # the controller's debug line
grep -qE "^\[[a-z+]*critic[a-z+]*\] troupe worker: building role critic rank 0 with role factory" step3_apart.log
grep -qE "^\[(critic\+reward|reward\+critic)\] troupe worker: role (critic|reward) rank 0: " step3_apart.log
test -f step3_apart/critic/config.json

# Workers started by hand (as on other machines): step 3 listens, a worker joins.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export TROUPE_SECRET=cli-test-secret
timeout 300 "$troupe" train --step 3 --actor_model_name_or_path step1_part --critic_model_name_or_path step2 \
  --data_path Dahoas/rm-static=data --data_split 2,4,4 --max_prompt_seq_len 32 --max_answer_seq_len 6 \
  --per_device_generation_batch_size 4 --per_device_training_batch_size 2 --max_steps 2 --eval_prompts 4 \
  --topology "$topologies/step3_two_processes.json" --listen "127.0.0.1:$port" --output_dir step3_listen \
  2> step3_listen.log &
controller=$!
for _ in $(seq 600); do grep -q "waiting for 1 worker" step3_listen.log && break; sleep 0.1; done
timeout 120 "$troupe" worker --join "127.0.0.1:$port" 2> worker.log || { cat worker.log; exit 1; }
wait "$controller" || { cat step3_listen.log; exit 1; }
unset TROUPE_SECRET
grep -q "critic+reward in worker process" step3_listen.log
grep -q "controller at 127.0.0.1:$port gone" worker.log
test -f step3_listen/critic/config.json

# Two hosts: the controller and a worker in network namespaces of their own, joined by a
# veth pair (every connection crosses an interface, UCX over TCP); the actor's two ranks
# train data-parallel and generate tensor-parallel across them. The worker's host does
# not see the models and data (hidden by empty mounts), so the controller sends them.
# Needs root for ip netns.
if ip netns add "troupe_probe$$" 2> /dev/null; then
  ip netns del "troupe_probe$$"
  echo '{"nodes": [{"name": "local", "cpu_threads": 8, "memory": "8GiB"}]}' > machine8.json
  TROUPE_HIDE_ON_SECOND_HOST="step1_part step2 data" timeout 600 "$(dirname "$0")/../../scripts/two_hosts.sh" "$troupe" "$topologies/step3_actor_tp2.json" \
    step3_two_hosts -- --cluster machine8.json --actor_model_name_or_path step1_part --critic_model_name_or_path step2 \
    --data_path Dahoas/rm-static=data --data_split 2,4,4 --max_prompt_seq_len 32 --max_answer_seq_len 6 \
    --per_device_generation_batch_size 4 --per_device_training_batch_size 2 --max_steps 2 --eval_prompts 4 \
    --unsupervised_dataset_name data/unsupervised.jsonl --unsup_coef 0.5 --do_sample true > two_hosts.log 2>&1 \
    || { cat two_hosts.log; exit 1; }
  grep -q "receiving 7 file(s) this node lacks" step3_two_hosts/worker1.log  # the actor's model and corpus
  test -f "step3_two_hosts/staged/$(pwd)/step1_part/model.safetensors"
  grep -q "generating tensor-parallel as rank 1 of 2" step3_two_hosts/worker1.log
  grep -q '"generation_tensor_parallel":2' step3_two_hosts/metrics.jsonl
  grep -q "joined 10.77." step3_two_hosts/worker1.log
  test -f step3_two_hosts/actor/config.json
else
  echo "two hosts: skipped (no network namespaces here: needs root and ip netns)"
fi

# An app with its own RL algorithm (leave-one-out REINFORCE) and reward function, on the step-1 model.
"$example" --actor step1_part --data data --out example --cycles 1
test -f example/actor/config.json
# The same app with its reward function in a worker process: the app is its own worker.
"$example" --actor step1_part --data data --out example_apart --cycles 1 \
  --topology "$topologies/step3_reward_apart.json" > example_apart.log 2>&1 || { cat example_apart.log; exit 1; }
grep -q "reward in worker process" example_apart.log
grep -q "leave_one_out: 1 cycles" example_apart.log

printf 'What is 2 plus 3?\nquit\n' | "$troupe" chat --model step3/actor --max_new_tokens 8 > chat.txt
test -s chat.txt
# The trained models record their prompt format as a chat_template that transformers
# renders as troupe does; troupe chat reads it and prompts in the training format.
python3 "$(dirname "$0")/../reference/check_chat_template.py" step1_part step2 step3/actor
printf 'What is 2 plus 3?\nAnd 4?\nquit\n' | "$troupe" chat --model step3/actor --max_new_tokens 8 --json > chat.jsonl
python3 - chat.jsonl <<'PYEOF'
import json, sys
turns = [json.loads(line) for line in open(sys.argv[1])]
assert len(turns) == 2, turns
assert turns[0]["prompt"] == "\n\nHuman: What is 2 plus 3?\n\nAssistant:", turns[0]
first = turns[0]["prompt"] + " " + turns[0]["assistant"]
assert turns[1]["prompt"] == first + "\n\nHuman: And 4?\n\nAssistant:", turns[1]
assert all("Human:" not in t["assistant"] for t in turns), turns
PYEOF
echo "cli steps: ok"

#!/usr/bin/env bash
# Step 3 over a two-node --cluster: the plan places the actor's two data-parallel ranks
# with STRICT_SPREAD on different nodes, and the worker started by hand (--listen) gets
# its rank by the node it reports (`troupe worker --node`), not by the order it joins.
# The two processes stand in for two hosts. The run ends with the files of the same
# two-rank run on one node. A worker that reports the controller's node is refused,
# naming the rank and the node, and a topology the nodes cannot satisfy is refused with
# the plan's reason, and so is a worker naming a node in a one-node run.
# Usage: step3_cluster_nodes.sh TROUPE_BINARY WORK_DIR
set -euo pipefail
troupe=$1
work=$2
source "$(dirname "$0")/step3_common.sh"
fresh_workdir "$work"
sft_and_reward_models "$troupe"

# Every role on both of the actor's ranks (DeepSpeed-Chat's layout): rank 0 here, rank 1
# in a worker.
topology() {
  cat > "$1" <<JSON
{"precision": "fp32", "strategy": "$2",
 "roles": {"actor": {"devices": $3}, "reference": {"devices": $3}, "critic": {"devices": $3}, "reward": {"devices": $3}},
 "colocate": [["actor", "reference", "critic", "reward"]]}
JSON
}
topology spread.json STRICT_SPREAD 2
topology pack.json PACK 2
topology three.json STRICT_SPREAD 3
echo '{"nodes": [{"name": "local", "cpu_threads": 8, "memory": "16GiB"}]}' > one_node.json
echo '{"nodes": [{"name": "hostA", "cpu_threads": 4, "memory": "16GiB"},
                 {"name": "hostB", "cpu_threads": 4, "memory": "16GiB"}]}' > two_nodes.json
s3=(--actor_model_name_or_path step1 --critic_model_name_or_path step2 --data_path Dahoas/rm-static=data
    --data_split 2,4,4 --max_prompt_seq_len 32 --max_answer_seq_len 8 --per_device_generation_batch_size 2
    --per_device_training_batch_size 2 --max_steps 2 --actor_learning_rate 1e-4 --critic_learning_rate 1e-4
    --eval_prompts 0 --do_sample true)
"$troupe" train --step 3 "${s3[@]}" --topology pack.json --cluster one_node.json --output_dir one_node 2> one_node.log \
  || { cat one_node.log; exit 1; }

export TROUPE_SECRET=cluster-nodes-test-secret
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# listen OUT: a controller over the two nodes in the background ($controller); sets
# $here to the node the plan puts its process (the actor's rank 0) on, once it says so.
listen() {
  "$troupe" train --step 3 "${s3[@]}" --topology spread.json --cluster two_nodes.json --listen "127.0.0.1:$port" \
    --output_dir "$1" > /dev/null 2> "$1.log" &
  controller=$!
  for _ in $(seq 600); do grep -q "which the plan puts on node" "$1.log" 2> /dev/null && break; sleep 0.1; done
  here=$(sed -n 's/.*which the plan puts on node \([A-Za-z]*\).*/\1/p' "$1.log" | head -1)
}

port=$(free_port)
listen spread
case "$here" in hostA) there=hostB ;; hostB) there=hostA ;; *) cat spread.log; exit 1 ;; esac
"$troupe" worker --join "127.0.0.1:$port" --node "$there" 2> worker.log &
wait "$controller" || { cat spread.log worker.log; exit 1; }
grep -q "(node $there)" spread.log || { cat spread.log; exit 1; }
for file in actor/model.safetensors critic/model.safetensors; do cmp "one_node/$file" "spread/$file"; done

# A worker on the controller's node cannot hold rank 1: STRICT_SPREAD wants another node.
port=$(free_port)
listen same_node
"$troupe" worker --join "127.0.0.1:$port" --node "$here" 2> worker_same.log &
if wait "$controller"; then echo "a worker on the controller's node was accepted"; exit 1; fi
grep -q "rank 1 on node $there, but no other worker joined with --node $there" same_node.log \
  || { cat same_node.log; exit 1; }
wait || true

# A worker that names a node in a run planned on one node is refused, not ignored.
port=$(free_port)
"$troupe" train --step 3 "${s3[@]}" --topology pack.json --cluster one_node.json --listen "127.0.0.1:$port" \
  --output_dir one_named > /dev/null 2> one_named.log &
controller=$!
for _ in $(seq 600); do grep -q "waiting for 1 worker" one_named.log 2> /dev/null && break; sleep 0.1; done
"$troupe" worker --join "127.0.0.1:$port" --node hostA 2> worker_named.log &
if wait "$controller"; then echo "a worker naming a node of a one-node run was accepted"; exit 1; fi
grep -q "joined with --node hostA, but this run plans one node, local" one_named.log || { cat one_named.log; exit 1; }
wait || true

# Three ranks on different nodes of two: the plan's reason, before any model is loaded.
if "$troupe" train --step 3 "${s3[@]}" --topology three.json --cluster two_nodes.json --listen "127.0.0.1:$(free_port)" \
  --output_dir three 2> three.log; then echo "three ranks on two nodes were accepted"; exit 1; fi
grep -q "STRICT_SPREAD" three.log || { cat three.log; exit 1; }
echo "step 3 over two cluster nodes: ranks placed by node; wrong node and unsatisfiable strategy refused: ok"

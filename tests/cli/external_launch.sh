#!/usr/bin/env bash
# Step 1 started by an external launcher (torchrun's RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT),
# two processes started by hand:
# - on one machine (one output folder, LOCAL_RANK 0/1: rank 1 waits for rank 0's tokenized cache) and on two
#   "machines" (an output folder each, every rank tokenizing its own), at ZeRO stage 3, each trains the model
#   a `--num_processes 2` run of the same flags trains (weights within 1e-7) and reports the same metrics;
# - stopped by --max_steps and resumed, the two "machines" train what they train uninterrupted;
# - under torchrun (where installed), which hosts the store itself, the same;
# - when a rank dies, the others stop with an error naming it; ranks given different flags say which;
# - a missing, malformed or out-of-range variable, or --num_processes against WORLD_SIZE, is refused by name
#   before any model is built.
# Usage: external_launch.sh TROUPE_BINARY WORK_DIR
set -euo pipefail
troupe=$1
work=$2
source "$(dirname "${BASH_SOURCE[0]}")/demo_workdir.sh"
demo_workdir "$troupe" "$work" 96
# One thread per process in every run: the same arithmetic whoever started the ranks.
export OMP_NUM_THREADS=1
unset RANK WORLD_SIZE MASTER_ADDR MASTER_PORT LOCAL_RANK LOCAL_WORLD_SIZE
common=(--step 1 --data_path Dahoas/rm-static=data --data_split 2,4,4 --max_seq_len 48 --tokenizer tok --seed 7
  --model_name_or_path preset:llama-tiny --per_device_train_batch_size 4 --learning_rate 1e-3
  --eval_samples 5 --per_device_eval_batch_size 2 --zero_stage 3)
flags=("${common[@]}" --max_steps 4 --collective_timeout 60)

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The reference: troupe starts the second rank itself.
"$troupe" train "${flags[@]}" --num_processes 2 --output_dir spawned 2> spawned.log || { cat spawned.log; exit 1; }

# Two processes as a launcher starts them. Args: OUT0 OUT1 EXTRA_ENV0 EXTRA_ENV1 [FLAGS...] (default: $flags)
launch_two() {
  local port out0=$1 out1=$2 env0=$3 env1=$4
  shift 4
  local run_flags=("$@")
  if [ ${#run_flags[@]} -eq 0 ]; then run_flags=("${flags[@]}"); fi
  port=$(free_port)
  env RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT="$port" $env0 \
    "$troupe" train "${run_flags[@]}" --output_dir "$out0" 2> "$out0.log" &
  local rank0=$!
  env RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT="$port" $env1 \
    "$troupe" train "${run_flags[@]}" --output_dir "$out1" 2> "$out1.rank1.log" &
  local rank1=$!
  local status=0
  wait "$rank0" || status=$?
  wait "$rank1" || status=$?
  if [ "$status" -ne 0 ]; then cat "$out0.log" "$out1.rank1.log"; exit 1; fi
}

launch_two one_machine one_machine "LOCAL_RANK=0 LOCAL_WORLD_SIZE=2" "LOCAL_RANK=1 LOCAL_WORLD_SIZE=2"
grep -q "started by a launcher as RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 LOCAL_WORLD_SIZE=2 (rendezvous at 127.0.0.1:" one_machine.log
grep -q "^\[rank 1/2\] step1: eval at step 0" one_machine.rank1.log  # every rank's lines say whose they are
test "$(ls one_machine/data_cache/*.trpdata | wc -l)" -eq 2      # tokenized once, by local rank 0

launch_two machine_a machine_b "" ""
test -f machine_a/config.json && test ! -f machine_b/config.json  # rank 0 writes the model
test -d machine_b/data_cache && test -d machine_b/checkpoint/rank1 # rank 1 has its own data and checkpoint

# Stopped by --max_steps and resumed (each rank from its machine's checkpoint) equals the uninterrupted run.
launch_two resumed_a resumed_b "" "" "${common[@]}" --max_steps 2 --collective_timeout 60
launch_two resumed_a resumed_b "" "" "${flags[@]}" --resume
grep -q "step1: resumed from resumed_a/checkpoint/rank0 at step 2" resumed_a.log
grep -q "step1: resumed from resumed_b/checkpoint/rank1 at step 2" resumed_b.rank1.log
cmp resumed_a/model.safetensors machine_a/model.safetensors

# torchrun itself, where installed: its agent hosts the store at MASTER_PORT, which every rank then joins.
runs="one_machine machine_a"
if command -v torchrun > /dev/null; then
  torchrun --nnodes 1 --nproc_per_node 2 --master_addr 127.0.0.1 --master_port "$(free_port)" --no_python \
    "$troupe" train "${flags[@]}" --output_dir torchrun > torchrun.log 2>&1 || { cat torchrun.log; exit 1; }
  grep -q "(rendezvous at 127.0.0.1:[0-9]*, hosted by torchrun)" torchrun.log
  runs="$runs torchrun"
else
  echo "torchrun is not installed: its run is left out"
fi

RUNS=$runs python3 - <<'PYEOF'
import json, os
from safetensors.numpy import load_file
def metrics(d):
    return [r for r in map(json.loads, open(f"{d}/metrics.jsonl")) if r["phase"].startswith("step1/")]
spawned = load_file("spawned/model.safetensors")
for run in os.environ["RUNS"].split():
    other = load_file(f"{run}/model.safetensors")
    assert other.keys() == spawned.keys(), run
    worst = max(float(abs(other[k] - spawned[k]).max()) for k in spawned)
    print(f"{run} against --num_processes 2: largest weight difference {worst:.3g}")
    assert worst <= 1e-7, (run, worst)
    a, b = metrics("spawned"), metrics(run)
    assert len(a) == len(b) and len(a) > 0, (len(a), len(b))
    for x, y in zip(a, b):
        for name in ("loss", "perplexity"):
            if name in x:
                assert abs(x[name] - y[name]) <= 1e-6 * abs(x[name]), (run, x, y)
PYEOF

# A rank that dies: the launcher owns the processes, so troupe does not watch them, but the rank waiting for
# it at a collective stops with an error naming it (here at once: the dead rank's connection closes; a rank
# that hangs is named when --collective_timeout runs out).
port=$(free_port)
long=("${common[@]}" --num_train_epochs 100 --collective_timeout 20)
env RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT="$port" "$troupe" train "${long[@]}" --output_dir dies \
  2> dies.log &
rank0=$!
env RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT="$port" "$troupe" train "${long[@]}" --output_dir dies \
  2> dies.rank1.log &
rank1=$!
for _ in $(seq 150); do
  grep -q "step1: eval at step 0" dies.rank1.log 2>/dev/null && break
  sleep 0.2
done
{ kill -9 "$rank1" && wait "$rank1"; } 2> /dev/null || true
timeout 40 tail --pid="$rank0" -f /dev/null || { echo "rank 0 did not stop"; kill -9 "$rank0"; exit 1; }
status=0
wait "$rank0" || status=$?
test "$status" -ne 0
grep -q "ranks that did not arrive: 1" dies.log || { cat dies.log; exit 1; }

# Ranks given different flags: both say which flag differs rather than hang at a collective.
port=$(free_port)
env RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT="$port" "$troupe" train "${flags[@]}" --output_dir mixed \
  2> mixed.log &
rank0=$!
status1=0
env RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT="$port" "$troupe" train "${common[@]}" --max_steps 3 \
  --collective_timeout 60 --output_dir mixed 2> mixed.rank1.log || status1=$?
status0=0
wait "$rank0" || status0=$?
test "$status0" -ne 0 && test "$status1" -ne 0
grep -qF -- "--max_steps differs between the ranks (3 to 4)" mixed.log || { cat mixed.log; exit 1; }
grep -qF -- "--max_steps differs between the ranks (3 to 4)" mixed.rank1.log || { cat mixed.rank1.log; exit 1; }

# The launcher's variables are checked before any model is built, each error naming its variable.
expect_refused() {  # EXPECTED_TEXT ENV...
  local expected=$1
  shift
  local status=0
  env "$@" "$troupe" train "${flags[@]}" --output_dir refused > refused.log 2>&1 || status=$?
  test "$status" -ne 0 || { echo "accepted: $*"; exit 1; }
  grep -qF -- "$expected" refused.log || { echo "expected '$expected' for $*:"; cat refused.log; exit 1; }
  if grep -q "eval at step" refused.log; then echo "a model was built before refusing $*"; exit 1; fi
}
expect_refused "WORLD_SIZE is not set" RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500
expect_refused "MASTER_PORT is not set" RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1
expect_refused "RANK=\"one\": not a whole number" RANK=one WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500
expect_refused "WORLD_SIZE=\"2x\": not a whole number" RANK=0 WORLD_SIZE=2x MASTER_ADDR=127.0.0.1 MASTER_PORT=29500
expect_refused "RANK=2: must be in [0, WORLD_SIZE - 1] (WORLD_SIZE=2)" RANK=2 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500
expect_refused "MASTER_PORT=70000: must be in [1, 65535]" RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=70000
expect_refused "LOCAL_RANK=2: must be in [0, LOCAL_WORLD_SIZE - 1]" RANK=0 WORLD_SIZE=4 MASTER_ADDR=127.0.0.1 \
  MASTER_PORT=29500 LOCAL_RANK=2 LOCAL_WORLD_SIZE=2
expect_refused "MASTER_ADDR is empty" RANK=0 WORLD_SIZE=2 MASTER_ADDR= MASTER_PORT=29500
# A MASTER_PORT another program listens on: rank 0 says it cannot host the rendezvous there.
busy=$(free_port)
python3 -c "import socket, sys, time; s = socket.socket(); s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(); time.sleep(60)" \
  "$busy" &
listener=$!
sleep 0.5
status=0
env RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT="$busy" "$troupe" train "${flags[@]}" --output_dir busy \
  > busy.log 2>&1 || status=$?
kill "$listener"
test "$status" -ne 0
grep -qF "MASTER_PORT=$busy: rank 0 cannot host the rendezvous there" busy.log || { cat busy.log; exit 1; }
status=0
env RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 "$troupe" train "${flags[@]}" --num_processes 3 \
  --output_dir refused > refused.log 2>&1 || status=$?
test "$status" -ne 0
grep -qF -- "--num_processes 3 with WORLD_SIZE=2" refused.log || { cat refused.log; exit 1; }
echo "external launch: ok"

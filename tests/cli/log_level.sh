#!/usr/bin/env bash
# `troupe --log_level LEVEL`: debug adds the debug lines (a step's checkpoint saves),
# warn keeps warnings and drops the info lines, the default (info) shows info but not
# debug, and an unknown level, from the flag or from TROUPE_LOG_LEVEL, is refused by name.
# Usage: log_level.sh TROUPE_BINARY WORK_DIR FIXTURES_DIR
set -euo pipefail
troupe=$1
work=$2
fixtures=$3
rm -rf "$work"
mkdir -p "$work"
cd "$work"

step1() {  # step1 OUTPUT_DIR [GLOBAL_FLAGS...] [-- STEP_FLAGS...]: one optimizer step of a tiny model
  local out=$1 globals=() extra=()
  shift
  while (($#)) && [ "$1" != "--" ]; do globals+=("$1"); shift; done
  (($#)) && shift && extra=("$@")
  "$troupe" "${globals[@]}" train --step 1 --model_name_or_path preset:llama-tiny --tokenizer "$fixtures/models/gpt2" \
    --data_path "Dahoas/rm-static=$fixtures/data/rm-static" --data_split 1,0,0 --max_seq_len 32 \
    --per_device_train_batch_size 2 --max_steps 1 --eval_samples 2 --output_dir "$out" "${extra[@]}"
}
fail() { echo "log_level: $*"; exit 1; }

step1 debug --log_level debug 2> debug.log || { cat debug.log; exit 1; }
grep -q "^step1: checkpoint of step 1 (resumes at epoch [0-9]*, batch [0-9]*) saved in debug/checkpoint" debug.log \
  || { cat debug.log; fail "--log_level debug: no debug line"; }
grep -q "^step1: [0-9]* training and [0-9]* evaluation samples" debug.log || fail "--log_level debug: no info line"

# After the subcommand too.
step1 debug_after -- --log_level debug 2> debug_after.log || { cat debug_after.log; exit 1; }
grep -q "^step1: checkpoint of step 1 " debug_after.log || { cat debug_after.log; fail "train ... --log_level debug"; }

step1 default 2> default.log || { cat default.log; exit 1; }
grep -q "^step1: [0-9]* training and [0-9]* evaluation samples" default.log || fail "by default: no info line"
! grep -q "checkpoint of step" default.log || fail "by default: a debug line"

# --offload on the CPU warns that it does nothing; the info lines are gone.
step1 warn --log_level=warn -- --offload 2> warn.log || { cat warn.log; exit 1; }
grep -q "^step1: --offload: a no-op on the CPU" warn.log || { cat warn.log; fail "--log_level warn: no warning"; }
! grep -q "training and\|eval at step\|optimizer steps\|checkpoint of step" warn.log || { cat warn.log; fail "--log_level warn: an info line"; }

if "$troupe" --log_level loud train --step 1 > loud.log 2>&1; then fail "--log_level loud was accepted"; fi
grep -q "^troupe: error: --log_level loud: not a log level (expected trace, debug, info, warn, error or off)" loud.log \
  || { cat loud.log; fail "--log_level loud: not refused by name"; }
if TROUPE_LOG_LEVEL=loud "$troupe" train --step 1 > loud_env.log 2>&1; then fail "TROUPE_LOG_LEVEL=loud was accepted"; fi
grep -q "^troupe: error: TROUPE_LOG_LEVEL loud: not a log level" loud_env.log || { cat loud_env.log; fail "TROUPE_LOG_LEVEL=loud"; }
echo "log_level: ok"

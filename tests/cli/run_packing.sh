#!/usr/bin/env bash
# `troupe train --step 1|2 --packing` on a small demo corpus gives the losses of the
# padded run (the same samples per step, packed into fewer rows), with less padding
# computed. Usage: run_packing.sh TROUPE_BINARY WORK_DIR
set -euo pipefail
troupe=$1
work=$2
source "$(dirname "${BASH_SOURCE[0]}")/demo_workdir.sh"
demo_workdir "$troupe" "$work" 120
# Llama has no dropout, so both runs see the same network at every step.
common=(--data_path Dahoas/rm-static=data --data_split 4,4,2 --max_seq_len 96 --tokenizer tok --seed 7
  --model_name_or_path preset:llama-tiny --per_device_train_batch_size 8 --per_device_eval_batch_size 8
  --eval_samples 16 --learning_rate 1e-3 --max_steps 4)

for step in 1 2; do
  "$troupe" train --step $step "${common[@]}" --output_dir padded$step 2> padded$step.log || { cat padded$step.log; exit 1; }
  "$troupe" train --step $step "${common[@]}" --packing --output_dir packed$step 2> packed$step.log \
    || { cat packed$step.log; exit 1; }
  python3 - padded$step/metrics.jsonl packed$step/metrics.jsonl <<'PYEOF'
import json, sys
padded, packed = ([json.loads(line) for line in open(path)] for path in sys.argv[1:3])
assert len(padded) == len(packed) and len(padded) >= 6, (len(padded), len(packed))
for a, b in zip(padded, packed):
    assert a["phase"] == b["phase"] and a["step"] == b["step"], (a, b)
    for name in ("loss", "accuracy", "chosen_score", "rejected_score"):
        if name in a:
            assert abs(a[name] - b[name]) <= 1e-4 * max(1.0, abs(a[name])), (name, a, b)
    if a["phase"].endswith("/train"):
        # The demo's samples are much shorter than --max_seq_len: packing computes less padding.
        assert b["padding_share"] < a["padding_share"] - 0.05, (a["padding_share"], b["padding_share"])
print(sys.argv[1], "and", sys.argv[2], "agree over", len(padded), "rows")
PYEOF
done

# DPO does not pack yet: refused by name, not ignored.
if "$troupe" train --step dpo "${common[@]}" --packing --output_dir dpo 2> dpo.log; then
  echo "--step dpo --packing should be refused"; exit 1
fi
grep -q "\-\-step dpo with --packing" dpo.log
echo "cli packing: ok"

#!/usr/bin/env bash
# `troupe train --step dpo` on a small demo corpus: a full model (frozen copy as the
# reference) and a LoRA model (its own base as the reference), the model saved, DPO's
# metrics logged. Usage: run_dpo.sh TROUPE_BINARY WORK_DIR
set -euo pipefail
troupe=$1
work=$2
source "$(dirname "${BASH_SOURCE[0]}")/demo_workdir.sh"
demo_workdir "$troupe" "$work" 120
common=(--data_path Dahoas/rm-static=data --data_split 2,4,4 --max_seq_len 48 --tokenizer tok --seed 7
  --model_name_or_path preset:llama-tiny --per_device_train_batch_size 8 --per_device_eval_batch_size 8
  --eval_samples 8 --learning_rate 1e-3)

"$troupe" train --step dpo "${common[@]}" --beta 0.2 --label_smoothing 0.1 --output_dir dpo 2> dpo.log \
  || { cat dpo.log; exit 1; }
grep -q "reference model: frozen copy" dpo.log
test -f dpo/config.json
test -f dpo/model.safetensors
test -f dpo/tokenizer.json
python3 - dpo/metrics.jsonl <<'PYEOF'
import json, math, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
evals = [r for r in rows if r["phase"] == "dpo/eval"]
train = [r for r in rows if r["phase"] == "dpo/train"]
assert len(evals) == 2 and len(train) == 6, rows
names = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"]
for r in evals:
    for name in names + ["loss"]:
        assert name in r, (name, r)
first = evals[0]
# Before training the policy is the reference: loss log 2 whatever the label smoothing.
assert abs(first["loss"] - math.log(2)) < 1e-5, first
assert first["rewards/margins"] == 0 and first["rewards/accuracies"] == 0, first
for r in train:
    for name in names + ["loss", "lr"]:
        assert name in r, (name, r)
PYEOF

"$troupe" train --step dpo "${common[@]}" --lora_dim 4 --only_optimize_lora --lora_learning_rate 1e-2 \
  --output_dir dpo_lora 2> dpo_lora.log || { cat dpo_lora.log; exit 1; }
grep -q "reference model: shares the actor's weights" dpo_lora.log
test -f dpo_lora/config.json
grep -q '"phase":"dpo/eval"' dpo_lora/metrics.jsonl
echo "cli dpo: ok"

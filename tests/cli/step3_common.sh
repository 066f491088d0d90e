# Sourced by the step-3 CLI tests: a fresh work folder and what their runs start from.

# fresh_workdir DIR: an empty DIR, made the current folder.
fresh_workdir() {
  rm -rf "$1"
  mkdir -p "$1"
  cd "$1"
}

# grpo_on_fixture TROUPE MODEL OUT [flags]: one short GRPO run (demo_gold rewards, no
# critic) of the fixture MODEL on ./data (from `troupe data demo`), into OUT; its log is
# OUT.log, printed when the run fails.
grpo_on_fixture() {
  local troupe=$1 model=$2 out=$3
  shift 3
  "$troupe" train --step 3 --algo grpo --actor_model_name_or_path "$model" --reward_function demo_gold \
    --data_path Dahoas/rm-static=data --data_split 2,4,4 --max_prompt_seq_len 48 --max_answer_seq_len 8 \
    --per_device_generation_batch_size 2 --per_device_training_batch_size 4 --max_steps 1 --eval_prompts 0 \
    --output_dir "$out" "$@" 2> "$out.log" || { cat "$out.log"; exit 1; }
}

# sft_and_reward_models TROUPE: ./step1 (SFT) and ./step2 (reward model) of a tiny Llama,
# with ./data, ./tok and the rows of the demo task.
sft_and_reward_models() {
  local troupe=$1
  "$troupe" data demo --out data --train_pairs 200 --eval_pairs 20 --prompts 16 --unsupervised_docs 40 > /dev/null
  "$troupe" tokenizer train --input data/train.jsonl --vocab_size 320 --out tok > /dev/null
  local common=(--data_path Dahoas/rm-static=data --data_split 2,4,4 --max_seq_len 64 --tokenizer tok --seed 7)
  "$troupe" train --step 1 --model_name_or_path preset:llama-tiny "${common[@]}" \
    --per_device_train_batch_size 8 --learning_rate 1e-3 --output_dir step1 2> step1.log
  "$troupe" train --step 2 --model_name_or_path step1 "${common[@]}" \
    --per_device_train_batch_size 8 --learning_rate 5e-4 --output_dir step2 2> step2.log
}

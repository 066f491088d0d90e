# Sourced by the CLI test scripts: a fresh work folder holding a small demo corpus
# (data/) and a tokenizer trained on it (tok/), entered with cd.
# Usage: demo_workdir TROUPE_BINARY WORK_DIR TRAIN_PAIRS
demo_workdir() {
  rm -rf "$2"
  mkdir -p "$2"
  cd "$2"
  "$1" data demo --out data --train_pairs "$3" --eval_pairs 16 --prompts 4 --unsupervised_docs 8
  "$1" tokenizer train --input data/train.jsonl --vocab_size 320 --out tok
}

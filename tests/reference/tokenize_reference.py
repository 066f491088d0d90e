#!/usr/bin/env python3
"""Reference token ids for troupe's tokenize_phase (tests/data/test_tokenize.cpp).

DeepSpeed-Chat's create_dataset_split semantics with a Hugging Face tokenizer:
step 1 tokenizer(prompt + chosen) + EOS, step 2 the same for chosen and rejected,
both cut at max_seq_len; step 3 tokenizer(prompt), dropped when longer than
max_prompt_seq_len. Samples are the expected adapter outputs for the committed
fixtures (written out here by hand from each dataset's schema rules), so this also
checks the adapters end to end.

    python3 tests/reference/tokenize_reference.py
"""
import json
import os

from transformers import AutoTokenizer

HERE = os.path.dirname(__file__)
FIX = os.path.join(HERE, "fixtures")
MAX_SEQ_LEN = 100
MAX_PROMPT_SEQ_LEN = 52


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def fmt(question):
    return "\n\nHuman: " + question + "\n\nAssistant:"


def samples():
    # (schema, fixture path relative to fixtures/data, expected samples)
    out = []
    rows = read_jsonl(os.path.join(FIX, "data", "rm-static", "train.jsonl"))
    out.append(("Dahoas/rm-static", "rm-static/train.jsonl",
                [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]))
    rows = read_jsonl(os.path.join(FIX, "data", "synthetic-instruct-gptj-pairwise.jsonl"))
    out.append(("Dahoas/synthetic-instruct-gptj-pairwise", "synthetic-instruct-gptj-pairwise.jsonl",
                [{"prompt": fmt(r["prompt"]), "chosen": " " + r["chosen"], "rejected": " " + r["rejected"]} for r in rows]))
    rows = read_jsonl(os.path.join(FIX, "data", "shp.jsonl"))
    out.append(("stanfordnlp/SHP", "shp.jsonl",
                [{"prompt": fmt(r["history"]),
                  "chosen": " " + (r["human_ref_A"] if r["labels"] == 1 else r["human_ref_B"]),
                  "rejected": " " + (r["human_ref_B"] if r["labels"] == 1 else r["human_ref_A"])} for r in rows]))
    return out


def main():
    tok = AutoTokenizer.from_pretrained(os.path.join(FIX, "models", "opt"))
    cases = []
    for schema, path, rows in samples():
        phase1, phase2, phase3, dropped = [], [], [], 0
        for s in rows:
            def seq(response):
                ids = tok(s["prompt"] + response)["input_ids"] + [tok.eos_token_id]
                return ids[:MAX_SEQ_LEN]
            phase1.append(seq(s["chosen"]))
            phase2.append({"chosen": seq(s["chosen"]), "rejected": seq(s["rejected"])})
            p = tok(s["prompt"])["input_ids"]
            if len(p) <= MAX_PROMPT_SEQ_LEN:
                phase3.append(p)
            else:
                dropped += 1
        cases.append({"schema": schema, "path": path, "phase1": phase1, "phase2": phase2,
                      "phase3": phase3, "phase3_dropped": dropped})
    import transformers
    out = {"generator": "tests/reference/tokenize_reference.py", "transformers": transformers.__version__,
           "tokenizer": "fixtures/models/opt", "max_seq_len": MAX_SEQ_LEN,
           "max_prompt_seq_len": MAX_PROMPT_SEQ_LEN, "cases": cases}
    path = os.path.join(FIX, "data", "tokenize_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

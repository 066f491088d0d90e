#!/usr/bin/env python3
"""Checks that Hugging Face loads a tokenizer troupe trained and saved, and encodes
and decodes the given strings exactly as troupe did.

  check_trained_tokenizer.py DIR CASES_JSON [DIR CASES_JSON ...]

DIR holds tokenizer.json, tokenizer_config.json and special_tokens_map.json as
troupe's BpeTokenizer::save() writes them; CASES_JSON has {"cases": [{"text", "ids",
"ids_special", "decoded"}], "bos_token_id", "eos_token_id", "pad_token_id"}.
Exits non-zero on the first kind of mismatch, after printing every mismatch.
"""
import json
import os
import sys

from tokenizers import Tokenizer
from transformers import AutoTokenizer


def check(folder, cases_file):
    with open(cases_file, encoding="utf-8") as f:
        expected = json.load(f)
    fast = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(folder)
    errors = []
    for case in expected["cases"]:
        text = case["text"]
        got = {
            "tokenizers ids": (fast.encode(text, add_special_tokens=False).ids, case["ids"]),
            "tokenizers ids_special": (fast.encode(text, add_special_tokens=True).ids, case["ids_special"]),
            "tokenizers decode": (fast.decode(case["ids"], skip_special_tokens=False), case["decoded"]),
            "transformers ids": (auto.encode(text, add_special_tokens=False), case["ids"]),
            "transformers ids_special": (auto.encode(text, add_special_tokens=True), case["ids_special"]),
        }
        for what, (theirs, ours) in got.items():
            if theirs != ours:
                errors.append(f"{what} differ for {text!r}:\n  Hugging Face {theirs}\n  troupe       {ours}")
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(auto, key) != expected[key]:
            errors.append(f"{key}: transformers {getattr(auto, key)}, troupe {expected[key]}")
    for error in errors:
        print(f"{folder}: {error}")
    print(f"{folder}: {len(errors)} mismatches on {len(expected['cases'])} strings")
    return len(errors)


def main():
    args = sys.argv[1:]
    if not args or len(args) % 2:
        sys.exit(__doc__)
    mismatches = sum(check(args[i], args[i + 1]) for i in range(0, len(args), 2))
    if mismatches:
        sys.exit(f"{mismatches} mismatches between Hugging Face and troupe")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Checks that transformers' apply_chat_template renders the chat_template troupe wrote
exactly as troupe renders the same conversations.

  check_chat_template.py DIR [DIR ...]

Each DIR holds a tokenizer with the chat_template troupe wrote into its
tokenizer_config.json and troupe_cases.json: [{"messages", "add_generation_prompt",
"rendered"}]. A DIR without troupe_cases.json (a model the CLI trained) is checked on
a fixed conversation against troupe's format. Made with transformers 4.57.6.
"""
import json
import os
import sys

from transformers import AutoTokenizer

TRAINING_FORMAT = [
    ([{"role": "user", "content": "What is 2 plus 3?"}], "\n\nHuman: What is 2 plus 3?\n\nAssistant:"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"}],
     "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: bye\n\nAssistant:"),
]


def main(dirs):
    errors = []
    checked = 0
    for folder in dirs:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        cases_file = os.path.join(folder, "troupe_cases.json")
        if os.path.exists(cases_file):
            with open(cases_file, encoding="utf-8") as f:
                cases = json.load(f)
        else:
            cases = [{"messages": m, "add_generation_prompt": True, "rendered": r} for m, r in TRAINING_FORMAT]
        for case in cases:
            got = tokenizer.apply_chat_template(case["messages"], tokenize=False,
                                                add_generation_prompt=case["add_generation_prompt"])
            checked += 1
            if got != case["rendered"]:
                errors.append(f"{folder}: {case['messages']!r} (add_generation_prompt={case['add_generation_prompt']}):\n"
                              f"  transformers {got!r}\n  troupe       {case['rendered']!r}")
    for e in errors:
        print(e)
    print(f"chat templates: {checked - len(errors)} of {checked} renderings equal")
    return 1 if errors or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

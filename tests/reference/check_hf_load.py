#!/usr/bin/env python3
"""Checks that Hugging Face transformers loads a model directory we wrote as it loads the
reference fixture: same logits on the fixture's left-padded batch, same tokenizer.

A checkpoint only counts as compatible when the tool people already use reads it back;
comparing against our own reader would prove little.

Usage: python3 tests/reference/check_hf_load.py OUR_DIR FIXTURE_DIR
  OUR_DIR      a model directory (config, *.safetensors, tokenizer files), e.g. written
               by troupe's write_checkpoint
  FIXTURE_DIR  a directory made by make_model_fixtures.py (expected.safetensors/.json)
Exits 0 when everything matches, 1 with a message naming what differs otherwise.
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

LOGITS_TOLERANCE = 1e-4


def fail(message):
    print(f"check_hf_load: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


@torch.no_grad()
def check_logits(our_dir, fixture_dir, expected):
    try:
        model = AutoModelForCausalLM.from_pretrained(our_dir, attn_implementation="eager").eval()
    except Exception as e:  # noqa: BLE001 - any load failure is the finding
        fail(f"{our_dir}: transformers cannot load the model: {type(e).__name__}: {e}")
    ids = expected["forward_left.input_ids"]  # (B, T)
    mask = expected["forward_left.attention_mask"]  # (B, T)
    pos = expected["forward_left.position_ids"]  # (B, T), what the fixture's model used
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float()  # (B, T, V)
    want = expected["forward_left.logits"]  # (B, T, V)
    if logits.shape != want.shape:
        fail(f"{our_dir}: logits shape {tuple(logits.shape)} != fixture {tuple(want.shape)}")
    # Only positions with attention_mask == 1 are meaningful (see make_model_fixtures.py).
    real = mask.bool()
    diff = (logits[real] - want[real]).abs().max().item()
    if not diff <= LOGITS_TOLERANCE:
        fail(f"{our_dir}: logits differ from {fixture_dir}/expected.safetensors by {diff:.3g} "
             f"(tolerance {LOGITS_TOLERANCE}) at attention_mask == 1")
    return diff


def check_tokenizer(our_dir, fixture_dir, texts):
    try:
        ours = AutoTokenizer.from_pretrained(our_dir)
    except Exception as e:  # noqa: BLE001
        fail(f"{our_dir}: transformers cannot load the tokenizer: {type(e).__name__}: {e}")
    reference = AutoTokenizer.from_pretrained(fixture_dir)
    for text in texts:
        got, want = ours(text)["input_ids"], reference(text)["input_ids"]
        if got != want:
            fail(f"{our_dir}: tokenizer encodes {text!r} as {got}, fixture tokenizer as {want}")
    for attr in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(ours, attr) != getattr(reference, attr):
            fail(f"{our_dir}: tokenizer {attr} {getattr(ours, attr)} != fixture {getattr(reference, attr)}")


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    our_dir, fixture_dir = sys.argv[1], sys.argv[2]
    for path in (os.path.join(fixture_dir, "expected.safetensors"), os.path.join(fixture_dir, "expected.json")):
        if not os.path.isfile(path):
            fail(f"{path}: missing (is {fixture_dir} a directory made by make_model_fixtures.py?)")
    expected = load_file(os.path.join(fixture_dir, "expected.safetensors"))
    with open(os.path.join(fixture_dir, "expected.json")) as f:
        meta = json.load(f)
    diff = check_logits(our_dir, fixture_dir, expected)
    check_tokenizer(our_dir, fixture_dir, meta["forward_texts"] + meta["greedy_texts"])
    print(f"check_hf_load: OK: {our_dir} matches {fixture_dir} (max logit diff {diff:.3g})")


if __name__ == "__main__":
    main()

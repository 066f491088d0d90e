#!/usr/bin/env python3
"""Checks that the PEFT adapter troupe wrote beside a fused LoRA model is one the `peft`
package loads and that it means the same model: the base (from the adapter's
base_model_name_or_path) with PeftModel.from_pretrained(base, adapter) gives the logits
transformers gives for the fused directory, on a left-padded batch.

Usage: python3 tests/reference/check_peft_adapter.py FUSED_DIR [FUSED_DIR ...]
  FUSED_DIR  a model directory troupe saved from a LoRA model (adapters folded in), with
             the adapter in FUSED_DIR/adapter (adapter_config.json,
             adapter_model.safetensors)
Exits 0 when every pair matches, 1 with a message naming what differs otherwise.
Versions known to work: torch 2.11.0, transformers 4.57.6, peft 0.17.1.
"""
import json
import os
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

LOGITS_TOLERANCE = 1e-4


def fail(message):
    print(f"check_peft_adapter: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def load(path, what):
    try:
        return AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    except Exception as e:  # noqa: BLE001 - any load failure is the finding
        fail(f"{path}: transformers cannot load the {what}: {type(e).__name__}: {e}")


@torch.no_grad()
def check(fused_dir):
    adapter_dir = os.path.join(fused_dir, "adapter")
    config_path = os.path.join(adapter_dir, "adapter_config.json")
    if not os.path.isfile(config_path):
        fail(f"{config_path}: missing")
    with open(config_path) as f:
        base_dir = json.load(f).get("base_model_name_or_path")
    if not base_dir or not os.path.isdir(base_dir):
        fail(f"{config_path}: base_model_name_or_path {base_dir!r} is not a directory")
    fused = load(fused_dir, "fused model")
    base = load(base_dir, "base model")
    try:
        # is_trainable=False: inference mode; every adapter key must land on a module.
        adapted = PeftModel.from_pretrained(base, adapter_dir).eval()
    except Exception as e:  # noqa: BLE001
        fail(f"{adapter_dir}: peft cannot load the adapter: {type(e).__name__}: {e}")
    loaded = {name for name, _ in adapted.named_parameters() if "lora_" in name}
    if not loaded:
        fail(f"{adapter_dir}: peft applied no LoRA layer")

    vocab = fused.config.vocab_size
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (2, 9), generator=gen)  # (B, T)
    mask = torch.ones_like(ids)  # (B, T)
    mask[1, :3] = 0  # left padding in the second row
    want = fused(input_ids=ids, attention_mask=mask).logits.float()  # (B, T, V)
    got = adapted(input_ids=ids, attention_mask=mask).logits.float()  # (B, T, V)
    real = mask.bool()
    diff = (got[real] - want[real]).abs().max().item()
    if not diff <= LOGITS_TOLERANCE:
        fail(f"{adapter_dir}: base + peft adapter logits differ from {fused_dir} by {diff:.3g} "
             f"(tolerance {LOGITS_TOLERANCE})")
    # The adapter must matter, or the comparison proves nothing.
    with adapted.disable_adapter():
        plain = adapted(input_ids=ids, attention_mask=mask).logits.float()
    effect = (plain[real] - want[real]).abs().max().item()
    if not effect > 10 * LOGITS_TOLERANCE:
        fail(f"{adapter_dir}: the adapter changes the logits by only {effect:.3g}; nothing was compared")
    print(f"check_peft_adapter: OK: {adapter_dir} on {base_dir} equals {fused_dir} "
          f"(max logit diff {diff:.3g}, adapter effect {effect:.3g}, {len(loaded)} LoRA tensors)")


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    for fused_dir in sys.argv[1:]:
        check(fused_dir)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Adds transformers' bf16 results to each model fixture (fixtures/models/<name>/):
the fp32 fixture model cast to bfloat16, run on the inputs of expected.safetensors.

expected_bf16.safetensors:
  forward_left.logits  (B, T, V) float32: logits of the bf16 model on forward_left.*
                       (only positions with attention_mask == 1 mean anything)
  greedy.sequences     (B, T0 + n) int64: bf16 greedy generate on greedy.*, as the fp32
                       fixture (max_new_tokens=16, eos continues with pad)
  greedy.min_gap       (1) float32: the smallest top-2 logit gap over the greedy steps
                       of unfinished rows (how far bf16 noise is from flipping a token)

Usage: python3 tests/reference/make_bf16_fixtures.py [FIXTURES_DIR]   (needs make_model_fixtures.py's output)
"""
import os
import sys

import safetensors.torch
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "fixtures", "models")
MAX_NEW_TOKENS = 16


@torch.no_grad()
def main():
    for name in ("opt", "opt_postln", "gpt2", "llama"):
        d = os.path.join(ROOT, name)
        expected = safetensors.torch.load_file(os.path.join(d, "expected.safetensors"))
        tok = AutoTokenizer.from_pretrained(d)
        model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32).to(torch.bfloat16).eval()
        ids, mask = expected["forward_left.input_ids"], expected["forward_left.attention_mask"]
        if name.startswith("opt"):
            logits = model(input_ids=ids, attention_mask=mask).logits
        else:
            logits = model(input_ids=ids, attention_mask=mask, position_ids=expected["forward_left.position_ids"]).logits
        gids, gmask = expected["greedy.input_ids"], expected["greedy.attention_mask"]
        out = model.generate(input_ids=gids, attention_mask=gmask, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, output_logits=True,
                             return_dict_in_generate=True)
        prompt_len = gids.shape[1]
        finished = torch.zeros(gids.shape[0], dtype=torch.bool)
        min_gap = float("inf")
        for step, step_logits in enumerate(out.logits):
            top2 = step_logits.float().topk(2, dim=-1).values
            gap = (top2[:, 0] - top2[:, 1])[~finished]
            if gap.numel():
                min_gap = min(min_gap, gap.min().item())
            finished |= out.sequences[:, prompt_len + step] == tok.eos_token_id
        tensors = {"forward_left.logits": logits.float().contiguous(), "greedy.sequences": out.sequences.contiguous(),
                   "greedy.min_gap": torch.tensor([min_gap], dtype=torch.float32)}
        safetensors.torch.save_file(tensors, os.path.join(d, "expected_bf16.safetensors"),
                                    metadata={"format": "pt", "made_by": "make_bf16_fixtures.py"})
        same = torch.equal(out.sequences, expected["greedy.sequences"])
        print(f"{name}: bf16 greedy {'equals' if same else 'differs from'} fp32, min top-2 gap {min_gap:.4f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Greedy generation tokens/s: troupe vs transformers' generate, same weights, same
inputs, same thread count, in one run.

    python3 bench/generate_vs_transformers.py [--build build] [--batches 1 8]
        [--prompt_len 128] [--new_tokens 128] [--threads 2] [--json out.json]

The model is OPT-125m-shaped with random weights (no hub access here)."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
from safetensors.torch import save_file
from transformers import OPTConfig, OPTForCausalLM


def opt_125m_config():
    return OPTConfig(vocab_size=50272, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     ffn_dim=3072, max_position_embeddings=2048, word_embed_proj_dim=768,
                     do_layer_norm_before=True, pad_token_id=1, bos_token_id=2, eos_token_id=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--prompt_len", type=int, default=128)
    ap.add_argument("--new_tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    binary = os.path.join(args.build, "bin", "troupe_bench_generate")
    if not os.path.exists(binary):
        sys.exit(f"{binary} not found: build first (scripts/test or cmake --build {args.build})")

    torch.manual_seed(0)
    model = OPTForCausalLM(opt_125m_config()).eval()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        for batch in args.batches:
            g = torch.Generator().manual_seed(batch)
            ids = torch.randint(3, 50000, (batch, args.prompt_len), generator=g)
            mask = torch.ones_like(ids)
            inputs = os.path.join(tmp, f"inputs_{batch}.safetensors")
            save_file({"input_ids": ids, "attention_mask": mask,
                       "max_new_tokens": torch.tensor([args.new_tokens])}, inputs)
            out = subprocess.run([binary, tmp, inputs, str(args.threads)], check=True,
                                 capture_output=True, text=True).stdout
            ours = json.loads(out.strip().splitlines()[-1])

            with torch.inference_mode():
                model.generate(ids[:, :8], attention_mask=mask[:, :8], max_new_tokens=2, do_sample=False)
                start = time.perf_counter()
                seq = model.generate(ids, attention_mask=mask, max_new_tokens=args.new_tokens,
                                     min_new_tokens=args.new_tokens, do_sample=False, pad_token_id=1)
                hf_seconds = time.perf_counter() - start
            hf_tps = batch * (seq.shape[1] - args.prompt_len) / hf_seconds
            same = seq[0].tolist() == ours["first_row"]
            results.append({"batch": batch, "troupe_tokens_per_s": ours["tokens_per_s"],
                            "transformers_tokens_per_s": hf_tps,
                            "ratio": ours["tokens_per_s"] / hf_tps, "same_tokens_row0": same})

    print(f"OPT-125m shape, random weights, greedy, prompt {args.prompt_len} + {args.new_tokens} new, "
          f"{args.threads} threads, torch {torch.__version__}")
    print(f"{'batch':>5} {'troupe tok/s':>13} {'transformers tok/s':>19} {'ratio':>6} {'same tokens':>11}")
    for r in results:
        print(f"{r['batch']:>5} {r['troupe_tokens_per_s']:>13.1f} {r['transformers_tokens_per_s']:>19.1f} "
              f"{r['ratio']:>6.2f} {str(r['same_tokens_row0']):>11}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

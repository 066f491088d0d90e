#!/usr/bin/env python3
"""Greedy decoding tokens/s: troupe (fp32 and bf16 inference weights) vs transformers'
generate (fp32 and bf16 models), same weights, same inputs, same thread count, in one
run, with a streaming-read probe of this machine's memory bandwidth and each figure as
a share of the bandwidth roofline.

    python3 bench/generate_vs_transformers.py [--build build] [--batches 1 8]
        [--prompt_len 128] [--new_tokens 128] [--threads 2] [--dtypes fp32 bf16] [--json out.json]

Decode rate = B * (N - 1) / (time for N new tokens - time for 1), for both sides: the
prompt's prefill is left out. Roofline = B / (weight bytes read per step / read GB/s):
every decode step streams every linear weight once (the KV cache adds to that; its
bytes are printed too). The model is OPT-125m-shaped with random weights (no hub access
here)."""
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

BYTES = {"fp32": 4, "bf16": 2}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def opt_125m_config():
    return OPTConfig(vocab_size=50272, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     ffn_dim=3072, max_position_embeddings=2048, word_embed_proj_dim=768,
                     do_layer_norm_before=True, pad_token_id=1, bos_token_id=2, eos_token_id=2)


def streaming_read_gbps():
    """GB/s of summing a 512 MiB tensor: one read of every byte, nothing written."""
    big = torch.ones(128 * 1024 * 1024)
    big.sum()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        big.sum()
        best = min(best, time.perf_counter() - start)
    return big.numel() * 4 / best / 1e9


def linear_weight_count(model):
    """Weights every decode step reads: every nn.Linear (the tied LM head included)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def hf_decode_rate(model, ids, mask, new_tokens):
    def run(n):
        start = time.perf_counter()
        seq = model.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                             pad_token_id=1)
        return time.perf_counter() - start, seq
    with torch.inference_mode():
        model.generate(ids[:, :8], attention_mask=mask[:, :8], max_new_tokens=2, do_sample=False, pad_token_id=1)
        one, _ = run(1)
        full, seq = run(new_tokens)
        one = min(one, run(1)[0])
    return ids.shape[0] * (new_tokens - 1) / max(full - one, 1e-9), seq


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--prompt_len", type=int, default=128)
    ap.add_argument("--new_tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    binary = os.path.join(args.build, "bin", "troupe_bench_generate")
    if not os.path.exists(binary):
        sys.exit(f"{binary} not found: build first (scripts/test or cmake --build {args.build})")

    torch.manual_seed(0)
    model = OPTForCausalLM(opt_125m_config()).eval()
    config = model.config
    weights = linear_weight_count(model)
    read_gbps = streaming_read_gbps()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        for dtype in args.dtypes:
            hf = model if dtype == "fp32" else OPTForCausalLM(opt_125m_config()).to(DTYPES[dtype]).eval()
            if dtype != "fp32":
                hf.load_state_dict({k: v.to(DTYPES[dtype]) for k, v in model.state_dict().items()})
            for batch in args.batches:
                g = torch.Generator().manual_seed(batch)
                ids = torch.randint(3, 50000, (batch, args.prompt_len), generator=g)
                mask = torch.ones_like(ids)
                inputs = os.path.join(tmp, f"inputs_{batch}.safetensors")
                save_file({"input_ids": ids, "attention_mask": mask,
                           "max_new_tokens": torch.tensor([args.new_tokens])}, inputs)
                out = subprocess.run([binary, tmp, inputs, str(args.threads), dtype], check=True,
                                     capture_output=True, text=True).stdout
                ours = json.loads(out.strip().splitlines()[-1])
                hf_tps, seq = hf_decode_rate(hf, ids, mask, args.new_tokens)
                step_bytes = weights * BYTES[dtype]
                mean_length = args.prompt_len + args.new_tokens / 2
                kv_bytes = batch * config.num_hidden_layers * 2 * mean_length * config.hidden_size * 4
                roofline = batch * read_gbps * 1e9 / step_bytes
                results.append({
                    "dtype": dtype, "batch": batch,
                    "troupe_decode_tokens_per_s": ours["decode_tokens_per_s"],
                    "transformers_decode_tokens_per_s": hf_tps,
                    "ratio": ours["decode_tokens_per_s"] / hf_tps,
                    "roofline_tokens_per_s": roofline,
                    "troupe_roofline_share": ours["decode_tokens_per_s"] / roofline,
                    "transformers_roofline_share": hf_tps / roofline,
                    "weight_bytes_per_step": step_bytes, "kv_cache_bytes_per_step": kv_bytes,
                    "troupe_prefill_seconds": ours["prefill_seconds"],
                    "same_tokens_row0": seq[0].tolist() == ours["first_row"]})

    print(f"OPT-125m shape, random weights, greedy, prompt {args.prompt_len} + {args.new_tokens} new, "
          f"{args.threads} threads, torch {torch.__version__}")
    print(f"streaming read {read_gbps:.1f} GB/s; weights read per decode step: "
          f"{weights * 4 / 1e6:.0f} MB fp32, {weights * 2 / 1e6:.0f} MB bf16")
    print(f"{'dtype':>5} {'batch':>5} {'troupe tok/s':>13} {'transformers':>13} {'ratio':>6} {'roofline':>9} "
          f"{'troupe %':>9} {'hf %':>6} {'same tokens':>11}")
    for r in results:
        print(f"{r['dtype']:>5} {r['batch']:>5} {r['troupe_decode_tokens_per_s']:>13.1f} "
              f"{r['transformers_decode_tokens_per_s']:>13.1f} {r['ratio']:>6.2f} {r['roofline_tokens_per_s']:>9.1f} "
              f"{100 * r['troupe_roofline_share']:>8.0f}% {100 * r['transformers_roofline_share']:>5.0f}% "
              f"{str(r['same_tokens_row0']):>11}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"streaming_read_gbps": read_gbps, "rows": results}, f, indent=2)


if __name__ == "__main__":
    main()

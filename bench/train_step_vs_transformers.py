#!/usr/bin/env python3
"""One supervised fine-tuning step (forward, causal-LM loss, backward, clip_grad_norm 1.0,
AdamW lr 1e-5 betas (0.9, 0.95) eps 1e-8 no decay), fp32 or bf16 autocast on CPU: troupe's TrainEngine
(build/bin/troupe_bench_train_step) vs transformers' OPTForCausalLM with torch.optim.AdamW,
same weights, same batch, same thread count, in one run.

    python3 bench/train_step_vs_transformers.py [--build build] [--batch 1] [--seq 512]
        [--steps 3] [--threads 2] [--dtype fp32|bf16] [--json out.json] [--op_profile ROWS]

The model is OPT-125m-shaped with random weights (no hub access here), dropout off, saved
once with save_pretrained; each side runs in its own process (so each peak RSS is its
own), warms up one step, then times --steps steps on the same batch. The first-step
losses must agree (same weights, same batch); MFU uses the matmul peak the C++ bench
measures (fp32 2048x2048 mm at the same thread count) and its FLOP count
(6 * params * tokens + 12 * layers * hidden * seq * tokens). --op_profile ROWS prints, for
each side, the ROWS operators (with input shapes) that took the most self time."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from safetensors.torch import load_file, save_file
from transformers import OPTConfig, OPTForCausalLM

from op_profile import op_profile


def opt_125m_config():
    return OPTConfig(vocab_size=50272, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     ffn_dim=3072, max_position_embeddings=2048, word_embed_proj_dim=768,
                     do_layer_norm_before=True, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                     pad_token_id=1, bos_token_id=2, eos_token_id=2)


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def run(cmd):
    """Runs a side's process; its stderr is shown when it fails. Returns its stdout."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def run_peer(model_dir, inputs, steps, threads, op_profile_rows=0, dtype="fp32"):
    """The transformers side, in its own process: prints one JSON line. bf16: fp32 weights
    and AdamW with the forward and backward under torch.autocast(bfloat16), as the
    HF Trainer's --bf16 runs on a CPU."""
    torch.set_num_threads(threads)
    model = OPTForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.train()
    ids = load_file(inputs)["input_ids"].long()
    mask = torch.ones_like(ids)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)

    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")

    def step():
        start = time.perf_counter()
        with autocast:
            loss = model(input_ids=ids, attention_mask=mask, labels=ids).loss
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item(), grad_norm.item(), time.perf_counter() - start

    first_loss, first_grad_norm, warmup_seconds = step()
    losses, seconds = [first_loss], []
    with op_profile(op_profile_rows, steps):
        for _ in range(steps):
            loss, _, t = step()
            losses.append(loss)
            seconds.append(t)
    step_seconds = statistics.median(seconds)
    print(json.dumps({"step_seconds": step_seconds, "step_seconds_all": seconds, "warmup_seconds": warmup_seconds,
                      "tokens_per_s": ids.numel() / step_seconds, "peak_rss_bytes": peak_rss_bytes(),
                      "first_loss": first_loss, "first_grad_norm": first_grad_norm, "losses": losses,
                      "n_params": sum(p.numel() for p in model.parameters()),
                      "attn_implementation": model.config._attn_implementation}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: autocast on both sides over fp32 weights and AdamW")
    ap.add_argument("--op_profile", type=int, default=0, metavar="ROWS",
                    help="print each side's ROWS operators with the most self time")
    ap.add_argument("--peer", nargs=2, metavar=("MODEL_DIR", "INPUTS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        return run_peer(args.peer[0], args.peer[1], args.steps, args.threads, args.op_profile, args.dtype)
    binary = os.path.join(args.build, "bin", "troupe_bench_train_step")
    if not os.path.exists(binary):
        sys.exit(f"{binary} not found: build first (cmake --build {args.build} --target troupe_bench_train_step)")

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        OPTForCausalLM(opt_125m_config()).save_pretrained(tmp, safe_serialization=True)
        g = torch.Generator().manual_seed(1)
        inputs = os.path.join(tmp, "inputs.safetensors")
        save_file({"input_ids": torch.randint(3, 50000, (args.batch, args.seq), generator=g)}, inputs)

        out_json = os.path.join(tmp, "troupe.json")
        profile_flags = ["--op_profile", str(args.op_profile)] if args.op_profile > 0 else []
        ours_out = run([binary, "--model", tmp, "--inputs", inputs, "--steps", str(args.steps),
                        "--threads", str(args.threads), "--json", out_json, "--dtype", args.dtype] + profile_flags)
        with open(out_json) as f:
            ours = json.load(f)
        out = run([sys.executable, os.path.abspath(__file__), "--peer", tmp, inputs,
                   "--steps", str(args.steps), "--threads", str(args.threads), "--dtype", args.dtype] + profile_flags)
        peer = json.loads(out.strip().splitlines()[-1])
    if args.op_profile > 0:
        print("troupe " + ours_out[ours_out.index("operators by self time"):])
        print("transformers operators by self time, per step:")
        print("\n".join(out.strip().splitlines()[:-1]) + "\n")

    # The same FLOP count and peak for both sides (the C++ bench's, see its comment).
    flops, peak = ours["model_flops_per_step"], ours["matmul_peak_gflops"]
    peer["achieved_gflops"] = flops / peer["step_seconds"] / 1e9
    peer["mfu"] = peer["achieved_gflops"] / peak
    loss_rel = abs(ours["first_loss"] - peer["first_loss"]) / abs(peer["first_loss"])

    print(f"SFT step, OPT-125m shape (random weights), {args.dtype} CPU, B={args.batch} T={args.seq}, {args.threads} threads, "
          f"median of {args.steps} after 1 warm-up; torch {torch.__version__}, transformers peer "
          f"(attention: {peer['attn_implementation']})")
    print(f"matmul peak ({args.dtype} 2048^3 mm, {args.threads} threads): {peak:.1f} GFLOP/s; "
          f"model FLOPs/step {flops / 1e9:.1f} GFLOP ({ours['n_params']:,} params)")
    # (label, key or None for the last loss, scale, format)
    rows = [("s/step", "step_seconds", 1, "{:.3f}"),
            ("tokens/s", "tokens_per_s", 1, "{:.1f}"),
            ("achieved GFLOP/s", "achieved_gflops", 1, "{:.1f}"),
            ("MFU %", "mfu", 100, "{:.1f}"),
            ("peak RSS MiB", "peak_rss_bytes", 2**-20, "{:.0f}"),
            ("first-step loss", "first_loss", 1, "{:.6f}"),
            ("first-step grad norm", "first_grad_norm", 1, "{:.6f}"),
            ("last-step loss", None, 1, "{:.6f}")]
    print(f"{'metric':<22} {'troupe':>12} {'transformers':>13} {'troupe/peer':>12}")
    for label, key, scale, fmt in rows:
        a = (ours[key] if key else ours["losses"][-1]) * scale
        b = (peer[key] if key else peer["losses"][-1]) * scale
        print(f"{label:<22} {fmt.format(a):>12} {fmt.format(b):>13} {a / b:>12.3f}")
    tolerance = 1e-4 if args.dtype == "fp32" else 2e-2  # bf16 rounds each side's matmuls its own way
    print(f"first-step loss relative difference {loss_rel:.2e} ({'ok' if loss_rel < tolerance else 'MISMATCH'} at {tolerance:g})")
    print("(s/step and RSS: < 1 is troupe better; tokens/s, GFLOP/s, MFU: > 1 is troupe better)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"batch": args.batch, "seq": args.seq, "threads": args.threads, "steps": args.steps,
                       "torch": torch.__version__, "troupe": ours, "transformers": peer,
                       "ratio_tokens_per_s": ours["tokens_per_s"] / peer["tokens_per_s"],
                       "ratio_peak_rss": ours["peak_rss_bytes"] / peer["peak_rss_bytes"],
                       "first_loss_relative_difference": loss_rel}, f, indent=2)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Step 1 with `--packing` against the same run padded (DeepSpeed-Chat's layout: every
sample padded to --max_seq_len), in one run of this script.

    python3 bench/packing_vs_padding.py [--build build] [--preset opt-125m] [--seq 512]
        [--batch 8] [--steps 6] [--pairs 400] [--json out.json]

Both runs train the same samples in the same order for --steps optimizer steps on the
bundled demo task's text (its samples are far shorter than --seq, as chat data often
is) and print the same losses; packing puts each micro-batch's samples end to end in
as few rows of --seq as hold them. The script reports training tokens per second (real
tokens, from the CLI's "N tokens in S s" line, which also counts the short evaluations
and the final save both runs do), the padding share of the computed positions (from
metrics.jsonl) and the largest loss difference."""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile


def run(cmd, log):
    with open(log, "w") as out:
        if subprocess.call(cmd, stderr=out, stdout=out) != 0:
            sys.exit(f"failed: {' '.join(cmd)} (see {log})")
    return open(log).read()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--preset", default="opt-125m")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--pairs", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    troupe = os.path.join(args.build, "bin", "troupe")
    if not os.path.exists(troupe):
        sys.exit(f"{troupe} not found: build first (cmake --build {args.build} --target troupe_cli)")
    work = tempfile.mkdtemp(prefix="troupe_packing_")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    try:
        subprocess.check_call([troupe, "data", "demo", "--out", f"{work}/data", "--train_pairs", str(args.pairs),
                               "--eval_pairs", "16", "--prompts", "4", "--unsupervised_docs", "8"],
                              stdout=subprocess.DEVNULL, env=env)
        subprocess.check_call([troupe, "tokenizer", "train", "--input", f"{work}/data/train.jsonl", "--vocab_size",
                               "2000", "--out", f"{work}/tok"], stdout=subprocess.DEVNULL, env=env)
        results = {}
        for name, extra in (("padded", []), ("packed", ["--packing"])):
            out_dir = f"{work}/{name}"
            cmd = [troupe, "train", "--step", "1", "--model_name_or_path", f"preset:{args.preset}", "--tokenizer",
                   f"{work}/tok", "--data_path", f"Dahoas/rm-static={work}/data", "--data_split", "10,0,0",
                   "--max_seq_len", str(args.seq), "--per_device_train_batch_size", str(args.batch),
                   "--per_device_eval_batch_size", str(args.batch), "--eval_samples", str(args.batch),
                   "--max_steps", str(args.steps), "--seed", "3", "--dropout", "0", "--output_dir", out_dir] + extra
            log = run(cmd, f"{work}/{name}.log")
            found = re.search(r"(\d+) optimizer steps, (\d+) tokens in ([0-9.eE+-]+) s", log)
            if not found:
                sys.exit(f"no summary line in {work}/{name}.log")
            rows = [json.loads(line) for line in open(f"{out_dir}/metrics.jsonl")]
            train = [r for r in rows if r["phase"] == "step1/train"]
            tokens, seconds = int(found.group(2)), float(found.group(3))
            results[name] = {"tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / seconds,
                             "padding_share": sum(r["padding_share"] for r in train) / len(train),
                             "losses": [r["loss"] for r in train]}
            shutil.rmtree(out_dir, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    padded, packed = results["padded"], results["packed"]
    loss_difference = max(abs(a - b) for a, b in zip(padded["losses"], packed["losses"]))
    print(f"step 1, preset {args.preset}, B={args.batch} samples per step, --max_seq_len {args.seq}, "
          f"{args.steps} steps, {args.threads} threads")
    print(f"{'':24}{'padded':>12}{'packed':>12}")
    print(f"{'tokens/s':24}{padded['tokens_per_second']:12.1f}{packed['tokens_per_second']:12.1f}")
    print(f"{'seconds':24}{padded['seconds']:12.1f}{packed['seconds']:12.1f}")
    print(f"{'padding share':24}{padded['padding_share']:12.3f}{packed['padding_share']:12.3f}")
    print(f"packed / padded tokens/s: {packed['tokens_per_second'] / padded['tokens_per_second']:.2f}x; "
          f"largest loss difference {loss_difference:.2e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results, "loss_difference": loss_difference}, f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Step 3 with the actor on 2 data-parallel ranks at ZeRO stage 2 against stage 3 (with
and without layer prefetch), in one run of this script: the same GRPO run each time (an
OPT-125m-shaped actor with random weights, its frozen reference beside it on the same 2
ranks, the demo's prompts and its demo_gold reward function), rank 0 in the controller's
process and rank 1 in a worker process. Prints the seconds of each cycle after the first
(its generation, its switch into the generation layout and back, and the rest:
experience and training) and every rank's peak RSS (VmHWM, polled every 0.1 s).

    python3 bench/step3_zero_stages.py [--build build] [--cycles 2] [--prompts 4] [--answer 32]
        [--configs 2,3:1,3:0] [--json out.json]

--configs: comma-separated STAGE or 3:PREFETCH (zero3_prefetch_layers), run in that order.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_load import make_model_dir  # noqa: E402  (an OPT-125m-shaped random model directory)
from zero_memory_steps import children, status_kib  # noqa: E402

GIB = 2**30


def descendants(pid):
    out = []
    for child in children(pid):
        out += [child] + descendants(child)
    return out


def topology(stage, prefetch, args):
    actor = {"devices": 2, "zero_stage": stage}
    if prefetch is not None:
        actor["zero3_prefetch_layers"] = prefetch
    # The batch this run uses, so the plan's memory estimate is its own.
    batch = {"generation_batch_size": args.prompts * 4, "training_batch_size": args.prompts * 4, "prompt_len": 64,
             "answer_len": args.answer}
    return {"precision": "fp32", "batch": batch, "roles": {"actor": actor, "reference": {"devices": 2}},
            "colocate": [["actor", "reference"]]}


def run(binary, tmp, model, stage, prefetch, args):
    name = f"zero{stage}" + ("" if prefetch is None else f"_prefetch{prefetch}")
    out = os.path.join(tmp, name)
    topo = os.path.join(tmp, name + ".json")
    with open(topo, "w") as f:
        json.dump(topology(stage, prefetch, args), f)
    cmd = [binary, "train", "--step", "3", "--algo", "grpo", "--actor_model_name_or_path", model,
           "--reward_function", "demo_gold", "--data_path", "Dahoas/rm-static=" + os.path.join(tmp, "data"),
           "--data_split", "2,4,4", "--max_prompt_seq_len", "64", "--max_answer_seq_len", str(args.answer),
           "--per_device_generation_batch_size", str(args.prompts),
           "--per_device_training_batch_size", str(args.prompts * 4), "--max_steps", str(args.cycles),
           "--eval_prompts", "0", "--topology", topo, "--output_dir", out]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peaks = {}  # pid -> largest VmHWM seen (KiB)
    while proc.poll() is None:
        for pid in [proc.pid] + descendants(proc.pid):
            peaks[pid] = max(peaks.get(pid, 0), status_kib(pid, "VmHWM"))
        time.sleep(0.1)
    err = proc.stderr.read()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    rows = [row for row in map(json.loads, open(os.path.join(out, "metrics.jsonl")))
            if row.get("phase") == "step3/train"]
    later = rows[1:] or rows
    ranks = sorted(peaks.values(), reverse=True)[:2]  # the controller (rank 0) and the worker (rank 1)
    return {"config": name, "zero_stage": stage, "zero3_prefetch_layers": prefetch,
            "cycle_seconds": statistics.mean(r["cycle_seconds"] for r in later),
            "generate_seconds": statistics.mean(r["generate_seconds"] for r in later),
            "switch_seconds": statistics.mean(r["switch_seconds"] for r in later),
            "rank_peaks_gib": [p / 2**20 for p in ranks]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--cycles", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=4, help="prompts per rank and cycle (4 samples each)")
    ap.add_argument("--answer", type=int, default=32, help="max_answer_seq_len")
    ap.add_argument("--configs", default="2,3:1,3:0")
    ap.add_argument("--json")
    args = ap.parse_args()
    binary = os.path.abspath(os.path.join(args.build, "bin", "troupe"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "opt-125m-random")
        make_model_dir(model)
        subprocess.run([binary, "data", "demo", "--out", os.path.join(tmp, "data"), "--prompts",
                        str(8 * args.prompts * args.cycles)], check=True, stdout=subprocess.DEVNULL)
        for config in args.configs.split(","):
            stage, _, prefetch = config.partition(":")
            rows.append(run(binary, tmp, model, int(stage), int(prefetch) if prefetch else None, args))
    print(f"step 3, GRPO, OPT-125m shape (random weights), actor and reference on 2 ranks, {args.prompts} prompts x 4 "
          f"samples per rank and cycle, answers up to {args.answer} tokens; means over cycles 2..{args.cycles}")
    print(f"{'config':>16} {'s/cycle':>8} {'generate s':>11} {'switch s':>9} {'the rest s':>11} "
          f"{'peak GiB rank 0 / rank 1':>25}")
    for r in rows:
        peaks = " / ".join(f"{p:.2f}" for p in r["rank_peaks_gib"])
        rest = r["cycle_seconds"] - r["generate_seconds"] - r["switch_seconds"]  # experience and training
        print(f"{r['config']:>16} {r['cycle_seconds']:>8.2f} {r['generate_seconds']:>11.2f} {r['switch_seconds']:>9.2f} "
              f"{rest:>11.2f} {peaks:>25}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Per-rank memory of step 1 under ZeRO: `troupe train --step 1 --num_processes N
--zero_stage S` against one process holding everything (N=1), same model, data and
batch per rank, in one run of this script.

    python3 bench/zero_memory_steps.py [--build build] [--preset opt-350m] [--ranks 4]
        [--stages 0,1,2,3] [--steps 3] [--seq 128] [--batch 1] [--vocab 8000]
        [--reduce_bucket_size ELEMENTS] [--zero3_prefetch_layers 1,0] [--json out.json]

Each configuration runs alone. The script polls every rank's VmRSS every 0.1 s and
reads each rank's VmHWM (peak resident set) when it ends; it reports the largest
per-rank peak, its ratio to the one-process peak, the seconds per run and per optimizer step
(between the first and the last step's metrics rows: no start-up, evaluation or saving),
and splits the
largest rank's sampled peak into anonymous memory (tensors, heap) and mapped files (the
libraries' pages: libtorch, gloo, CAF). What ZeRO
stage 3 should give, per rank: 16 bytes per decoder-layer parameter / N (fp32 weights,
gradients, AdamW's two moments) plus the parameters kept whole (embeddings, final
norm) with 4 bytes each and their 12 bytes of state / N, plus activations and the
runtime. --zero3_prefetch_layers runs stage 3 once per value listed (layers gathered
ahead of the running one; 0 = none), one after the other. The model is a preset with random weights whose vocabulary is the tokenizer's
(--vocab), so the kept-whole embedding is vocab x hidden."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

GIB = 2**30


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def seconds_per_step(metrics):
    """Seconds per optimizer step between the first and the last train row of metrics.jsonl."""
    try:
        with open(metrics) as f:
            times = [row["time"] for row in map(json.loads, f) if row.get("phase", "").endswith("/train")]
    except OSError:
        return None
    return (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else None


def run(binary, workdir, preset, ranks, stage, steps, seq, batch, bucket=None, prefetch=None):
    out = os.path.join(workdir, f"ranks{ranks}_zero{stage}")
    cmd = [binary, "train", "--step", "1", "--model_name_or_path", f"preset:{preset}", "--tokenizer",
           os.path.join(workdir, "tok"), "--data_path", "Dahoas/rm-static=" + os.path.join(workdir, "data"),
           "--data_split", "2,4,4", "--max_seq_len", str(seq), "--per_device_train_batch_size", str(batch),
           "--max_steps", str(steps), "--eval_samples", "1", "--per_device_eval_batch_size", "1",
           "--num_processes", str(ranks), "--zero_stage", str(stage), "--output_dir", out]
    if bucket is not None and stage == 2:
        cmd += ["--reduce_bucket_size", str(bucket)]
    if prefetch is not None:
        cmd += ["--zero3_prefetch_layers", str(prefetch)]
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peaks = {}  # pid -> largest VmHWM seen
    split = {}  # pid -> (VmRSS, RssAnon, RssFile) when VmRSS was largest
    while proc.poll() is None:
        for pid in [proc.pid] + children(proc.pid):
            peaks[pid] = max(peaks.get(pid, 0), status_kib(pid, "VmHWM"))
            now = (status_kib(pid, "VmRSS"), status_kib(pid, "RssAnon"), status_kib(pid, "RssFile"))
            if now[0] > split.get(pid, (0, 0, 0))[0]:
                split[pid] = now
        time.sleep(0.1)
    err = proc.stderr.read()
    seconds = time.time() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    step_seconds = seconds_per_step(os.path.join(out, "metrics.jsonl"))
    shutil.rmtree(out, ignore_errors=True)  # every rank's checkpoint: gigabytes each
    per_rank = sorted(peaks.values(), reverse=True)
    largest = max(peaks, key=peaks.get)
    rss, anon, mapped = split.get(largest, (0, 0, 0))
    return {"ranks": ranks, "zero_stage": stage, "zero3_prefetch_layers": prefetch, "seconds": seconds,
            "seconds_per_step": step_seconds, "peak_rank_gib": per_rank[0] / 2**20,
            "rank_peaks_gib": [p / 2**20 for p in per_rank],
            # the largest rank at its sampled peak: heap and tensors, and mapped files (libraries)
            "sampled_peak_anon_gib": anon / 2**20, "sampled_peak_file_gib": mapped / 2**20}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--preset", default="opt-350m")
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--stages", default="0,1,2,3")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--reduce_bucket_size", type=int,
                    help="stage 2: gradient elements per bucket (troupe's default: DeepSpeed's 5e8)")
    ap.add_argument("--zero3_prefetch_layers",
                    help="stage 3: comma-separated values, one run each (troupe's default: 1)")
    ap.add_argument("--json")
    args = ap.parse_args()
    binary = os.path.abspath(os.path.join(args.build, "bin", "troupe"))
    work = tempfile.mkdtemp(prefix="troupe_zero_mem_")
    subprocess.run([binary, "data", "demo", "--out", os.path.join(work, "data"), "--train_pairs", "400",
                    "--eval_pairs", "8", "--prompts", "4", "--unsupervised_docs", "8"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([binary, "tokenizer", "train", "--input", os.path.join(work, "data", "train.jsonl"),
                    "--vocab_size", str(args.vocab), "--out", os.path.join(work, "tok")], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = [run(binary, work, args.preset, 1, 0, args.steps, args.seq, args.batch)]
    for stage in [int(s) for s in args.stages.split(",")]:
        prefetches = [None]
        if stage == 3 and args.zero3_prefetch_layers:
            prefetches = [int(p) for p in args.zero3_prefetch_layers.split(",")]
        for prefetch in prefetches:
            rows.append(run(binary, work, args.preset, args.ranks, stage, args.steps, args.seq, args.batch,
                            args.reduce_bucket_size, prefetch))
    shutil.rmtree(work, ignore_errors=True)
    base = rows[0]["peak_rank_gib"]
    print(f"step 1, preset:{args.preset}, vocab {args.vocab}, B={args.batch} T={args.seq} per rank, "
          f"{args.steps} optimizer steps, fp32")
    print(f"{'ranks':>5} {'ZeRO':>4} {'prefetch':>8} {'peak GiB (largest rank)':>24} {'vs 1 process':>13} "
          f"{'seconds':>8} {'s/step':>7} {'of it anon / files GiB':>23}")
    for r in rows:
        prefetch = "-" if r["zero3_prefetch_layers"] is None else str(r["zero3_prefetch_layers"])
        per_step = "-" if r["seconds_per_step"] is None else f"{r['seconds_per_step']:.2f}"
        print(f"{r['ranks']:>5} {r['zero_stage']:>4} {prefetch:>8} {r['peak_rank_gib']:>24.2f} "
              f"{r['peak_rank_gib'] / base:>12.2f}x {r['seconds']:>8.1f} {per_step:>7} "
              f"{r['sampled_peak_anon_gib']:>11.2f} / {r['sampled_peak_file_gib']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()

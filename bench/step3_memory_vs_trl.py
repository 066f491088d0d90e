#!/usr/bin/env python3
"""The largest actor whose step 3 (PPO) fits this machine: troupe (`troupe train --step 3`)
against TRL's PPOTrainer with peft, same shapes, one PPO cycle each, peak RSS and wall time.

    # TRL in an environment of its own, so the tests' pinned transformers stays as it is:
    python3 -m venv --system-site-packages ../trl-venv
    ../trl-venv/bin/pip install trl==0.24.0 datasets==3.6.0 transformers==4.57.6 tokenizers==0.22.1 accelerate
    nice -n 19 ../trl-venv/bin/python bench/step3_memory_vs_trl.py [--actors opt-350m,opt-1.3b,opt-2.7b]
        [--dtypes fp32,bf16] [--sides troupe,trl] [--build build] [--cache /tmp/troupe_mem_bench]
        [--max_rss_gib 21] [--min_available_gib 1.5] [--threads 2] [--timeout 5400] [--json out.json]
        [--gradient_checkpointing] [--troupe_flags=--release_inference_cache]

The setting: a LoRA actor (rank 8 on every decoder linear layer, scale alpha/r = 1/8 as
troupe's lora_scaling, only the adapters train; the reference is the actor's base with the
adapters off), a fully trained OPT-350m-shaped critic and a frozen OPT-350m-shaped reward
model (the same weights: real OPT-350m's shape, hidden 1024 x 24 layers, ffn 4096,
word_embed_proj_dim 512 with project_in/out, post-LN, and a bias-free value head on the
512-wide output), B=4 prompts of 128 tokens, 128 answer tokens sampled, one PPO epoch of
one minibatch (the whole batch), EMA of the actor on (troupe; TRL has none). Random weights
(no hub access), written once as Hugging Face directories (safetensors) under --cache and
reused: making 2.7B weights is slow.

  troupe: build/bin/troupe train --step 3 ... --actor_lora_dim 8 --only_optimize_lora
          --enable_ema --max_steps 1 --eval_prompts 0 --dtype fp32 | bf16 (with
          --inference_dtype bf16), prompts from `troupe data demo` (Dahoas/rm-static schema,
          left-padded to 128), a byte-level BPE from `troupe tokenizer train` (vocab 4000).
          The run includes saving actor/, critic/, actor_ema/ (the log's timestamps tell when).
  TRL:    PPOTrainer (0.24) with peft LoraConfig(r=8, lora_alpha=1, all decoder linears),
          ref_model=None, value and reward = OPTForSequenceClassification of the critic
          (value_model_for_trl), total_episodes=4, response_length 128, 128 random prompt ids,
          fp32, or bf16=True (accelerate's CPU bf16 autocast over fp32 weights, like troupe's
          bf16: fp32 masters, bf16 compute).

Each side runs alone in its own child process (OMP_NUM_THREADS=--threads), one at a time.
The parent polls the child's process tree every 0.2 s: the summed VmRSS of the tree, the
child's VmHWM, and /proc/meminfo MemAvailable; it kills the tree ("over limit") when the tree
passes --max_rss_gib or MemAvailable falls under --min_available_gib, so that the kernel's OOM
killer never picks another process of the machine. Before a run, a run whose weights alone
(a lower bound, no activations) exceed min(MemAvailable - 1 GiB, --max_rss_gib) is skipped.
Peak RSS is the larger of os.wait4's ru_maxrss and the polled tree peak. Every output line of
the child is stamped with its time and the tree's RSS then (kept in the --json with an RSS
timeline at 1 s), so where memory grows can be read against the log."""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GIB = 2**30

# hidden, layers, heads, ffn, word_embed_proj_dim, do_layer_norm_before (the real OPT shapes)
SHAPES = {
    "opt-125m": (768, 12, 12, 3072, 768, True),
    "opt-350m": (1024, 24, 16, 4096, 512, False),
    "opt-1.3b": (2048, 24, 32, 8192, 2048, True),
    "opt-2.7b": (2560, 32, 32, 10240, 2560, True),
    "opt-6.7b": (4096, 32, 32, 16384, 4096, True),
}
CRITIC = "opt-350m"
VOCAB, POSITIONS = 50272, 2048
BATCH, PROMPT, ANSWER, LORA_RANK = 4, 128, 128, 8
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "project_in", "project_out"]


def params_of(name):
    """Parameters of an OPT of this shape (lm_head tied to embed_tokens)."""
    h, layers, _, f, e, pre_ln = SHAPES[name]
    per_layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 4 * h
    total = VOCAB * e + (POSITIONS + 2) * h + layers * per_layer + (2 * h if pre_ln else 0)  # final_layer_norm
    if e != h:
        total += 2 * e * h
    return total


def opt_config(name):
    from transformers import OPTConfig

    h, layers, heads, f, e, pre_ln = SHAPES[name]
    return OPTConfig(vocab_size=VOCAB, hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads,
                     ffn_dim=f, max_position_embeddings=POSITIONS, word_embed_proj_dim=e,
                     do_layer_norm_before=pre_ln, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                     pad_token_id=1, bos_token_id=2, eos_token_id=2)


def make_model_dir(name, path, critic):
    """Random-weight OPTForCausalLM of `name`'s shape at `path` (+ v_head.weight for a critic), in
    its own process so the parent stays small. For the critic also its TRL form (value_for_trl)."""
    if os.path.exists(os.path.join(path, "done")):
        return
    code = f"""
import os, sys, torch
sys.path.insert(0, {HERE!r})
from step3_memory_vs_trl import opt_config
from transformers import OPTForCausalLM
torch.manual_seed({1 if critic else 0})
config = opt_config({name!r})
model = OPTForCausalLM(config)
model.save_pretrained({path!r}, safe_serialization=True)
del model
if {critic!r}:
    from safetensors.torch import load_file, save_file
    from step3_vs_trl import value_model_for_trl
    weights = os.path.join({path!r}, "model.safetensors")
    tensors = load_file(weights)
    tensors["v_head.weight"] = torch.nn.Linear(config.word_embed_proj_dim, 1, bias=False).weight.detach().clone()
    save_file(tensors, weights, metadata={{"format": "pt"}})
    value_model_for_trl({path!r}, os.path.join({path!r}, "value_for_trl"))
open(os.path.join({path!r}, "done"), "w").write("ok")
"""
    print(f"making {name} weights in {path} ...", flush=True)
    subprocess.run(["nice", "-n", "19", sys.executable, "-c", code], check=True)


def make_data(cache, binary, troupe_side):
    """troupe's demo prompts (Dahoas/rm-static schema) and a byte-level BPE trained on them
    (only when troupe runs), and TRL's random prompt ids."""
    data, tok = os.path.join(cache, "demo_data"), os.path.join(cache, "tokenizer")
    if troupe_side and not os.path.exists(os.path.join(data, "train.jsonl")):
        subprocess.run([binary, "data", "demo", "--out", data], check=True)
    if troupe_side and not os.path.exists(os.path.join(tok, "tokenizer.json")):
        subprocess.run([binary, "tokenizer", "train", "--input", os.path.join(data, "train.jsonl"),
                        "--out", tok, "--vocab_size", "4000"], check=True)
    prompts = os.path.join(cache, "trl_prompts.json")
    if not os.path.exists(prompts):
        import random
        rng = random.Random(2)
        with open(prompts, "w") as f:
            json.dump([[rng.randrange(3, 50000) for _ in range(PROMPT)] for _ in range(BATCH)], f)
    return data, tok, prompts


# ---- the TRL child ----

def run_trl(actor_dir, value_dir, prompts_path, dtype, threads, checkpointing=False):
    os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import OPTForCausalLM, OPTForSequenceClassification
    from transformers.utils import logging as hf_logging
    from trl import PPOConfig, PPOTrainer

    sys.path.insert(0, HERE)
    from step3_vs_trl import tiny_tokenizer

    hf_logging.set_verbosity_error()
    torch.set_num_threads(threads)
    t0 = time.time()
    stamp = lambda what: print(f"[trl {time.time() - t0:8.1f}s] {what}", flush=True)  # noqa: E731
    with open(prompts_path) as f:
        dataset = Dataset.from_dict({"input_ids": json.load(f)})
    with tempfile.TemporaryDirectory() as out:
        config = PPOConfig(
            output_dir=out, use_cpu=True, bf16=(dtype == "bf16"), report_to=[], per_device_train_batch_size=BATCH,
            gradient_accumulation_steps=1, num_mini_batches=1, num_ppo_epochs=1, total_episodes=BATCH,
            response_length=ANSWER, temperature=1.0, stop_token=None, missing_eos_penalty=None,
            num_sample_generations=0, kl_coef=0.1, cliprange=0.2, cliprange_value=0.2, gamma=1.0, lam=0.95,
            learning_rate=5e-4, lr_scheduler_type="constant", logging_steps=1_000_000, save_strategy="no",
            local_rollout_forward_batch_size=BATCH, dataloader_num_workers=0, seed=0,
            gradient_checkpointing=checkpointing)
        policy = OPTForCausalLM.from_pretrained(actor_dir, dtype=torch.float32)
        stamp("policy loaded")
        value = OPTForSequenceClassification.from_pretrained(value_dir, dtype=torch.float32)
        reward = OPTForSequenceClassification.from_pretrained(value_dir, dtype=torch.float32)
        stamp("value and reward loaded")
        for m in (policy, value, reward):
            m.config.dropout = 0.0
        lora = LoraConfig(r=LORA_RANK, lora_alpha=1, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                          target_modules=[t for t in LORA_TARGETS
                                          if any(n.endswith(t) for n, _ in policy.named_modules())])
        trainer = PPOTrainer(args=config, processing_class=tiny_tokenizer(), model=policy, ref_model=None,
                             reward_model=reward, train_dataset=dataset, value_model=value, peft_config=lora)
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        stamp(f"trainer built ({trainable} trainable parameters: adapters + value model)")
        trainer.train()
        stamp("train() done")
    print(json.dumps({"seconds_in_child": time.time() - t0}), flush=True)


# ---- measuring a child ----

def meminfo_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def tree_pids(root):
    """root and its descendants (from /proc/*/stat parent ids)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def measure(cmd, args, log_path, env):
    """Runs cmd in its own process group under the guard. Returns a result dict."""
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            env=env, start_new_session=True)
    state = {"tree_rss": 0, "peak_tree": 0, "processes": 1}
    lines, timeline = [], []

    def reader():
        with open(log_path, "w") as log:
            for line in proc.stdout:
                t = time.time() - start
                rss = state["tree_rss"] / GIB
                log.write(f"[{t:8.1f}s {rss:6.2f} GiB] {line}")
                log.flush()
                lines.append((round(t, 1), round(rss, 3), line.rstrip("\n")))

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    killed_by, last_sample, peak_hwm, peak_file = None, 0.0, 0, 0
    rusage = None
    rss_log = open(log_path + ".rss", "w")  # seconds, tree RSS GiB, MemAvailable GiB (live)
    rss_log.write("# seconds tree_rss_gib mem_available_gib rss_file_gib\n")
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            rusage = ru
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        pids = tree_pids(proc.pid)
        rss = sum(status_kib(p, "VmRSS:") for p in pids) * 1024
        peak_hwm = max(peak_hwm, status_kib(proc.pid, "VmHWM:") * 1024)
        file_backed = status_kib(proc.pid, "RssFile:") * 1024  # mmapped weights count in RSS too
        peak_file = max(peak_file, file_backed)
        state["tree_rss"], state["processes"] = rss, max(state["processes"], len(pids))
        state["peak_tree"] = max(state["peak_tree"], rss)
        avail = meminfo_available()
        now = time.time() - start
        if now - last_sample >= 1.0:
            timeline.append((round(now, 1), round(rss / GIB, 3), round(avail / GIB, 2), round(file_backed / GIB, 3)))
            rss_log.write(f"{now:.1f} {rss / GIB:.3f} {avail / GIB:.2f} {file_backed / GIB:.3f}\n")
            rss_log.flush()
            last_sample = now
        reason = None
        if rss > args.max_rss_gib * GIB:
            reason = f"tree RSS {rss / GIB:.2f} GiB > --max_rss_gib {args.max_rss_gib}"
        elif avail < args.min_available_gib * GIB:
            reason = f"MemAvailable {avail / GIB:.2f} GiB < --min_available_gib {args.min_available_gib}"
        elif now > args.timeout:
            reason = f"timeout {args.timeout} s"
        if reason and killed_by is None:
            killed_by = reason
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.2)
    th.join(timeout=10)
    rss_log.close()
    seconds = time.time() - start
    peak = max(rusage.ru_maxrss * 1024, state["peak_tree"], peak_hwm)
    if killed_by:
        outcome = "over limit" if "timeout" not in killed_by else "timeout"
    elif proc.returncode == 0:
        outcome = "finished"
    elif proc.returncode == -9:
        outcome = "killed (SIGKILL, OOM?)"
    else:
        outcome = f"failed (rc {proc.returncode})"
    return {"outcome": outcome, "returncode": proc.returncode, "killed_by": killed_by, "seconds": round(seconds, 1),
            "peak_rss_bytes": peak, "peak_rss_gib": round(peak / GIB, 3), "ru_maxrss_gib": round(rusage.ru_maxrss / 2**20, 3),
            "peak_tree_rss_gib": round(state["peak_tree"] / GIB, 3), "peak_rss_file_gib": round(peak_file / GIB, 3), "processes_seen": state["processes"],
            "last_lines": [l[2] for l in lines[-6:]], "log_lines": lines, "rss_timeline": timeline, "log": log_path}


def weights_lower_bound(actor, side, dtype):
    """Bytes of weights and optimizer state alone (no activations, no caches): the actor's frozen
    base, the critic's fp32 weights + grads + AdamW m, v, and the frozen reward model. TRL keeps
    the base and the reward model in fp32 (its bf16 is autocast); troupe's --dtype bf16 stores
    frozen weights in bf16, and troupe adds the packed generation copy (fp32 or bf16)."""
    a, c = params_of(actor), params_of(CRITIC)
    frozen = 2 if side == "troupe" and dtype == "bf16" else 4
    total = frozen * a + 16 * c + frozen * c
    if side == "troupe":
        total += (2 if dtype == "bf16" else 4) * a
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actors", default="opt-1.3b", help="comma list of " + ",".join(SHAPES))
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--sides", default="troupe,trl")
    ap.add_argument("--build", default="build")
    ap.add_argument("--cache", default="/tmp/troupe_mem_bench")
    ap.add_argument("--max_rss_gib", type=float, default=21.0)
    ap.add_argument("--min_available_gib", type=float, default=1.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=5400, help="seconds per run")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--gradient_checkpointing", action="store_true",
                    help="both sides recompute the actor's and the critic's layers in the backward")
    ap.add_argument("--troupe_flags", default="", help="more `troupe train` flags, e.g. \"--release_inference_cache\"")
    ap.add_argument("--trl-child", nargs=6, metavar=("ACTOR", "VALUE", "PROMPTS", "DTYPE", "THREADS", "CHECKPOINTING"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.trl_child:
        a, v, p, d, t, c = args.trl_child
        return run_trl(a, v, p, d, int(t), c == "1")

    binary = os.path.abspath(os.path.join(args.build, "bin", "troupe"))
    actors = args.actors.split(",")
    sides, dtypes = args.sides.split(","), args.dtypes.split(",")
    for a in actors + [CRITIC]:
        if a not in SHAPES:
            sys.exit(f"unknown actor {a}: one of {', '.join(SHAPES)}")
    if "troupe" in sides and not os.path.exists(binary):
        sys.exit(f"{binary} not found: cmake --build {args.build} --target troupe_cli")
    os.makedirs(args.cache, exist_ok=True)
    data, tok, trl_prompts = make_data(args.cache, binary, "troupe" in sides)
    critic_dir = os.path.join(args.cache, f"{CRITIC}-critic")
    make_model_dir(CRITIC, critic_dir, critic=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               TOKENIZERS_PARALLELISM="false", TRL_EXPERIMENTAL_SILENCE="1")
    results = []
    for actor in actors:
        actor_dir = os.path.join(args.cache, actor)
        for dtype in dtypes:
            for side in sides:
                row = {"actor": actor, "params": params_of(actor), "critic": CRITIC, "critic_params": params_of(CRITIC),
                       "dtype": dtype, "side": side}
                bound = weights_lower_bound(actor, side, dtype)
                room = min(meminfo_available() - GIB, args.max_rss_gib * GIB)
                row["weights_lower_bound_gib"] = round(bound / GIB, 2)
                if bound > room:
                    row.update(outcome="skipped", reason=f"weights alone {bound / GIB:.1f} GiB > room {room / GIB:.1f} GiB")
                    print(f"{actor} {dtype} {side}: {row['reason']}", flush=True)
                    results.append(row)
                    continue
                make_model_dir(actor, actor_dir, critic=False)
                run_dir = tempfile.mkdtemp(prefix=f"{actor}-{dtype}-{side}-", dir=args.cache)
                log = os.path.join(args.cache, f"{actor}-{dtype}-{side}.log")
                if side == "troupe":
                    cmd = [binary, "train", "--step", "3", "--actor_model_name_or_path", actor_dir,
                           "--critic_model_name_or_path", critic_dir, "--reward_model_name_or_path", critic_dir,
                           "--tokenizer", tok, "--data_path", f"Dahoas/rm-static={data}",
                           "--data_output_path", os.path.join(args.cache, "data_cache"),
                           "--actor_lora_dim", str(LORA_RANK), "--only_optimize_lora", "--enable_ema",
                           "--per_device_generation_batch_size", str(BATCH),
                           "--per_device_training_batch_size", str(BATCH),
                           "--max_prompt_seq_len", str(PROMPT), "--max_answer_seq_len", str(ANSWER),
                           "--max_steps", "1", "--eval_prompts", "0", "--dtype", dtype,
                           "--output_dir", os.path.join(run_dir, "out")]
                    if dtype == "bf16":
                        cmd += ["--inference_dtype", "bf16"]
                    cmd += args.troupe_flags.split()
                    if args.gradient_checkpointing:
                        cmd += ["--actor_gradient_checkpointing", "--critic_gradient_checkpointing"]
                else:
                    cmd = [sys.executable, os.path.abspath(__file__), "--trl-child", actor_dir,
                           os.path.join(critic_dir, "value_for_trl"), trl_prompts, dtype, str(args.threads),
                           "1" if args.gradient_checkpointing else "0"]
                print(f"{actor} {dtype} {side}: running (log {log}; MemAvailable {meminfo_available() / GIB:.1f} GiB)",
                      flush=True)
                row["command"] = cmd
                row["mem_available_before_gib"] = round(meminfo_available() / GIB, 2)
                row["loadavg_before"] = open("/proc/loadavg").read().split()[:3]
                row.update(measure(["nice", "-n", "19"] + cmd, args, log, env))
                metrics = os.path.join(run_dir, "out", "metrics.jsonl")
                if os.path.exists(metrics):  # troupe's per-cycle timings (generate_seconds, cycle_seconds, ...)
                    with open(metrics) as f:
                        row["troupe_metrics"] = [json.loads(l) for l in f if l.strip()]
                subprocess.run(["rm", "-rf", run_dir])
                print(f"  -> {row['outcome']}, peak RSS {row['peak_rss_gib']:.2f} GiB, {row['seconds']:.0f} s; "
                      f"last: {row['last_lines'][-1] if row['last_lines'] else ''}", flush=True)
                results.append(row)
                if args.json:
                    write_json(args, results)

    import platform
    print(f"\nstep 3, one PPO cycle: LoRA r={LORA_RANK} actor, {CRITIC}-shaped critic (trained) and reward, B={BATCH}, "
          f"{PROMPT}+{ANSWER} tokens, EMA on (troupe only), random weights, CPU {platform.processor() or platform.machine()},"
          f" {os.cpu_count()} cores, {args.threads} threads")
    print(f"{'actor':<9} {'params':>7} {'dtype':<5} {'side':<7} {'outcome':<22} {'peak RSS GiB':>12} {'seconds':>8}")
    for r in results:
        peak = f"{r['peak_rss_gib']:.2f}" if "peak_rss_gib" in r else "-"
        secs = f"{r['seconds']:.0f}" if "seconds" in r else "-"
        print(f"{r['actor']:<9} {r['params'] / 1e9:>6.2f}B {r['dtype']:<5} {r['side']:<7} {r['outcome']:<22} "
              f"{peak:>12} {secs:>8}")
    if args.json:
        write_json(args, results)


def write_json(args, results):
    with open(args.json, "w") as f:
        json.dump({"batch": BATCH, "prompt": PROMPT, "answer": ANSWER, "lora_rank": LORA_RANK,
                   "max_rss_gib": args.max_rss_gib, "threads": args.threads, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""One step-3 (PPO) iteration: troupe (build/bin/troupe_bench_step3) vs TRL's PPOTrainer
on the same model shapes, batch and thread count, in one run.

    # TRL in an environment of its own, so the tests' pinned transformers stays as it is:
    python3 -m venv --system-site-packages ../trl-venv
    ../trl-venv/bin/pip install trl==0.24.0 accelerate datasets==3.6.0 transformers==4.57.6 tokenizers==0.22.1
    ../trl-venv/bin/python bench/step3_vs_trl.py [--build build] [--batch 4] [--prompt 64] [--new 64]
        [--warmup 1] [--iters 2] [--threads 2] [--dtype fp32|bf16] [--json out.json]

Both sides sample (TRL always does; temperature 1 here, top-k/top-p off) exactly --new
answer tokens for B prompts of P random tokens, then score with the actor, a frozen
reference copy, the critic and the reward model, and take one PPO epoch of one
minibatch (the whole batch) for the actor and the critic. Models: an OPT-125m-shaped
actor and an OPT 512x6 critic/reward with a bias-free value head (DeepSpeed-Chat's
v_head; OPTForSequenceClassification's `score` on TRL's side, the same weights), random
weights, dropout off. --dtype fp32 (the default): both sides in fp32 (TRL's config
defaults to bf16 autocast, turned off). --dtype bf16, for CPUs with bf16 dot products
(AVX512_BF16, AMX): each side in its bf16 mode, TRL's `bf16=True` (autocast of every
forward and backward, fp32 masters and AdamW) against troupe's `--dtype bf16
--inference_dtype bf16` (the same, plus generation from bf16 packed weights and bf16
storage of the frozen reference and reward linears). Each side runs in its own process
(peak RSS is its own).

What differs, and is left so: TRL trains the actor and the critic with one optimizer
over a wrapper of both (loss = policy loss + vf_coef 0.1 * value loss), whitens
advantages, and keeps its own KL shaping (kl_coef set to 0.1 here, as troupe's kl_ctl).
The tokens differ (two sampling streams); the work per iteration is the same. An
iteration is timed from one of TRL's on_step_end callbacks to the next (after --warmup
iterations); tokens/s = B * (P + N) / iteration seconds, as in step3_vs_torch.py."""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step3_vs_torch import peak_rss_bytes, run, write_bench_inputs  # noqa: E402


def value_model_for_trl(critic_dir, out_dir):
    """troupe's critic (OPTForCausalLM + v_head.weight) as an OPTForSequenceClassification."""
    from safetensors.torch import load_file
    from transformers import OPTConfig, OPTForSequenceClassification

    config = OPTConfig.from_pretrained(critic_dir)
    config.num_labels = 1
    model = OPTForSequenceClassification(config)
    tensors = load_file(os.path.join(critic_dir, "model.safetensors"))
    state = {k: v for k, v in tensors.items() if k.startswith("model.")}
    state["score.weight"] = tensors["v_head.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and not missing, (missing, unexpected)
    model.save_pretrained(out_dir, safe_serialization=True)


def tiny_tokenizer():
    """TRL needs a tokenizer for pad/eos ids only (no text is decoded): OPT's ids."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<pad>": 1, "</s>": 2}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<unk>")),
                                   pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def run_trl(args, actor_dir, value_dir, prompts_path):
    """TRL's side, in its own process: prints one JSON line."""
    os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
    from datasets import Dataset
    from safetensors.torch import load_file
    from transformers import OPTForCausalLM, OPTForSequenceClassification, TrainerCallback
    from transformers.utils import logging as hf_logging
    from trl import PPOConfig, PPOTrainer

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    ids = load_file(prompts_path)["input_ids"]
    dataset = Dataset.from_dict({"input_ids": ids.tolist()})
    iterations = args.warmup + args.iters
    with tempfile.TemporaryDirectory() as out:
        config = PPOConfig(
            output_dir=out, use_cpu=True, bf16=args.dtype == "bf16", report_to=[], per_device_train_batch_size=args.batch,
            gradient_accumulation_steps=1, num_mini_batches=1, num_ppo_epochs=1, total_episodes=args.batch * iterations,
            response_length=args.new, temperature=1.0, stop_token=None, missing_eos_penalty=None,
            num_sample_generations=0, kl_coef=0.1, cliprange=0.2, cliprange_value=0.2, gamma=1.0, lam=0.95,
            learning_rate=9.65e-6, lr_scheduler_type="constant", logging_steps=1_000_000, save_strategy="no",
            local_rollout_forward_batch_size=args.batch, dataloader_num_workers=0, seed=args.seed)
        policy = OPTForCausalLM.from_pretrained(actor_dir)
        reference = OPTForCausalLM.from_pretrained(actor_dir)
        value = OPTForSequenceClassification.from_pretrained(value_dir)
        reward = OPTForSequenceClassification.from_pretrained(value_dir)
        for m in (policy, reference, value, reward):
            m.config.dropout = 0.0
        ends = []

        class Clock(TrainerCallback):
            def on_step_end(self, *_, **__):
                ends.append(time.perf_counter())

        trainer = PPOTrainer(args=config, processing_class=tiny_tokenizer(), model=policy, ref_model=reference,
                             reward_model=reward, train_dataset=dataset, value_model=value, callbacks=[Clock()])
        start = time.perf_counter()
        trainer.train()
    times = [b - a for a, b in zip([start] + ends[:-1], ends)][args.warmup:]
    iteration = statistics.median(times)
    print(json.dumps({"iteration_seconds": iteration,
                      "tokens_per_s": args.batch * (args.prompt + args.new) / iteration,
                      "peak_rss_bytes": peak_rss_bytes(), "iterations_timed": len(times)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--trl", nargs=3, metavar=("ACTOR", "VALUE", "PROMPTS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.trl:
        return run_trl(args, *args.trl)
    binary = os.path.join(args.build, "bin", "troupe_bench_step3")
    if not os.path.exists(binary):
        sys.exit(f"{binary} not found: build first (cmake --build {args.build} --target troupe_bench_step3)")
    try:
        import trl  # noqa: F401
    except ImportError:
        sys.exit("TRL is not installed: pip install trl==0.24.0 accelerate datasets==3.6.0 transformers==4.57.6 tokenizers==0.22.1")

    common = ["--new", str(args.new), "--seed", str(args.seed), "--warmup", str(args.warmup),
              "--iters", str(args.iters), "--threads", str(args.threads)]
    troupe_dtype = ["--dtype", args.dtype, "--inference_dtype", args.dtype]
    with tempfile.TemporaryDirectory() as tmp:
        actor_dir, critic_dir, prompts = write_bench_inputs(tmp, args.batch, args.prompt)
        value_dir = os.path.join(tmp, "value_for_trl")
        value_model_for_trl(critic_dir, value_dir)

        out_json = os.path.join(tmp, "troupe.json")
        run([binary, "--actor", actor_dir, "--critic", critic_dir, "--reward", critic_dir, "--prompts", prompts,
             "--json", out_json, "--sample"] + common + troupe_dtype)
        with open(out_json) as f:
            ours = json.load(f)
        out = run([sys.executable, os.path.abspath(__file__), "--trl", actor_dir, value_dir, prompts,
                   "--batch", str(args.batch), "--prompt", str(args.prompt), "--dtype", args.dtype] + common)
        peer = json.loads(out.strip().splitlines()[-1])

    import trl
    print(f"step-3 iteration, actor OPT-125m shape, critic/reward OPT 512x6 + value head (random weights), {args.dtype} CPU, "
          f"B={args.batch} P={args.prompt} N={args.new}, sampling, {args.threads} threads, median of {args.iters} "
          f"after {args.warmup} warm-up; torch {torch.__version__}, TRL {trl.__version__}")
    print(f"{'':<16} {'troupe':>10} {'TRL PPO':>10} {'troupe/TRL':>11}")
    rows = [("iteration s", "iteration_seconds", 1, "{:.3f}"), ("tokens/s", "tokens_per_s", 1, "{:.1f}"),
            ("peak RSS MiB", "peak_rss_bytes", 2**-20, "{:.0f}")]
    for label, key, scale, fmt in rows:
        a, b = ours[key] * scale, peer[key] * scale
        print(f"{label:<16} {fmt.format(a):>10} {fmt.format(b):>10} {a / b:>11.3f}")
    print("(seconds and RSS: < 1 is troupe better; tokens/s: > 1 is troupe better)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"batch": args.batch, "prompt": args.prompt, "new_tokens": args.new, "dtype": args.dtype, "troupe": ours,
                       "trl": peer}, f, indent=2)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""One step-3 (PPO) iteration: troupe (build/bin/troupe_bench_step3: Hybrid Engine,
ReferencePolicy, rl::Ppo, TrainEngines) vs a transformers + PyTorch peer, same weights,
same prompts, same thread count, in one run.

    python3 bench/step3_vs_torch.py [--build build] [--batch 4] [--prompt 64] [--new 64]
        [--sample] [--seed 0] [--warmup 1] [--iters 1] [--threads 2] [--json out.json]

The peer is DeepSpeed-Chat's step-3 iteration written out in transformers + PyTorch
(TRL is not used: its PPOTrainer wants a dataset, a tokenizer, sequence-classification
reward and value models, runs its own loop and shapes rewards differently, and installing
it would move the shared transformers version):
  - generate: OPTForCausalLM.generate, use_cache, greedy (or sampling, top-k/top-p off),
    exactly --new tokens (EOS off on both sides);
  - experience: actor and reference log_softmax(logits[:, :-1]).gather(seq[:, 1:]) in
    eval mode without grad; critic values = v_head(OPTModel(seq).last_hidden_state)[:, :-1]
    with v_head = Linear(hidden, 1, bias=False) (DeepSpeed-Chat's RewardModel); the reward
    model's end score = its value at the last real answer token;
  - train: DeepSpeed-Chat's compute_rewards (kl_ctl 0.1, reward clip 5), GAE (gamma 1,
    lam 0.95), clipped actor loss (cliprange 0.2) and clipped value loss (0.2), one PPO
    epoch of one minibatch (the whole batch), clip_grad_norm 1.0, AdamW betas (0.9, 0.95)
    eps 1e-8 without decay, actor lr 9.65e-6, critic lr 5e-6.
Models: an OPT-125m-shaped actor (the reference a frozen copy of it) and an OPT critic
of hidden 512 x 6 layers with a value head (also the reward model), random weights (no
hub access here), dropout off, saved once with save_pretrained (+ v_head.weight in the
critic's safetensors). Each side runs in its own process, so each peak RSS is its own.
The first iteration's numbers (reward scores, log-probs, losses) are compared: with greedy
decoding both sides generate the same tokens and must agree."""
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
from transformers import OPTConfig, OPTForCausalLM, OPTModel
from transformers.utils import logging as hf_logging


def opt_config(hidden, layers, heads):
    return OPTConfig(vocab_size=50272, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     ffn_dim=4 * hidden, max_position_embeddings=2048, word_embed_proj_dim=hidden,
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


class ValueModel(torch.nn.Module):
    """DeepSpeed-Chat's RewardModel (critic and reward): the base OPTModel and
    v_head = Linear(E, 1, bias=False) on its last hidden state."""

    def __init__(self, path):
        super().__init__()
        self.rwtransformer = OPTModel.from_pretrained(path, dtype=torch.float32)
        self.v_head = torch.nn.Linear(self.rwtransformer.config.word_embed_proj_dim, 1, bias=False)
        with torch.no_grad():
            self.v_head.weight.copy_(load_file(os.path.join(path, "model.safetensors"))["v_head.weight"])

    def forward(self, ids, mask):
        hidden = self.rwtransformer(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        return self.v_head(hidden).squeeze(-1)  # (B, T)


def gather_log_probs(logits, labels):
    return torch.log_softmax(logits, dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def end_scores(values, mask, prompt_length):
    """The value at each row's last real answer token (DeepSpeed-Chat's chosen_end_scores)."""
    answer_length = mask[:, prompt_length:].cumprod(1).sum(1)
    return values.gather(1, (answer_length + prompt_length - 1).unsqueeze(1)).squeeze(1)


class Ppo:
    """DeepSpeed-Chat's DeepSpeedPPOTrainer maths (compute_rewards, GAE, the two losses)."""
    kl_ctl, clip_reward_value, cliprange, cliprange_value, gamma, lam = 0.1, 5.0, 0.2, 0.2, 1.0, 0.95

    def compute_rewards(self, prompts, log_probs, ref_log_probs, reward_score, action_mask):
        rewards = -self.kl_ctl * (log_probs - ref_log_probs)
        start = prompts.shape[1] - 1
        ends = start + action_mask[:, start:].sum(1) + 1
        reward_clip = torch.clamp(reward_score, -self.clip_reward_value, self.clip_reward_value)
        for j in range(log_probs.shape[0]):
            rewards[j, start:ends[j]][-1] += reward_clip[j]
        return rewards

    def advantages_and_returns(self, values, rewards, start):
        lastgaelam = 0
        advantages_reversed = []
        length = rewards.size()[-1]
        for t in reversed(range(start, length)):
            nextvalues = values[:, t + 1] if t < length - 1 else 0.0
            delta = rewards[:, t] + self.gamma * nextvalues - values[:, t]
            lastgaelam = delta + self.gamma * self.lam * lastgaelam
            advantages_reversed.append(lastgaelam)
        advantages = torch.stack(advantages_reversed[::-1], dim=1)
        return advantages.detach(), advantages + values[:, start:]

    def actor_loss(self, logprobs, old_logprobs, advantages, mask):
        ratio = torch.exp((logprobs - old_logprobs) * mask)
        pg_loss1 = -advantages * ratio
        pg_loss2 = -advantages * torch.clamp(ratio, 1.0 - self.cliprange, 1.0 + self.cliprange)
        return torch.sum(torch.max(pg_loss1, pg_loss2) * mask) / mask.sum()

    def critic_loss(self, values, old_values, returns, mask):
        values_clipped = torch.clamp(values, old_values - self.cliprange_value, old_values + self.cliprange_value)
        vf_loss1 = (values - returns) ** 2
        vf_loss2 = (values_clipped - returns) ** 2
        return 0.5 * torch.sum(torch.max(vf_loss1, vf_loss2) * mask) / mask.sum()


def run_peer(args):
    """The transformers + PyTorch side, in its own process: prints one JSON line."""
    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    actor_dir, critic_dir, reward_dir, prompts_file = args.peer
    actor = OPTForCausalLM.from_pretrained(actor_dir, dtype=torch.float32)
    reference = OPTForCausalLM.from_pretrained(actor_dir, dtype=torch.float32).eval().requires_grad_(False)
    critic = ValueModel(critic_dir)
    reward = ValueModel(reward_dir).eval().requires_grad_(False)
    gen = actor.generation_config
    gen.eos_token_id, gen.pad_token_id = None, 1  # exactly --new tokens, as troupe's side
    gen.top_k, gen.top_p, gen.temperature = 0, 1.0, 1.0
    inputs = load_file(prompts_file)
    prompts, prompt_mask = inputs["input_ids"].long(), inputs["attention_mask"].long()
    B, P = prompts.shape
    ppo = Ppo()
    adam = dict(betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    actor_opt = torch.optim.AdamW(actor.parameters(), lr=9.65e-6, **adam)
    critic_opt = torch.optim.AdamW(critic.parameters(), lr=5e-6, **adam)

    def iterate():
        t0 = time.perf_counter()
        actor.eval()
        torch.manual_seed(args.seed)  # as troupe's side: every generate() starts from the seed
        with torch.no_grad():
            seq = actor.generate(prompts, attention_mask=prompt_mask, max_new_tokens=args.new,
                                 do_sample=args.sample, use_cache=True)
        assert seq.shape[1] == P + args.new, seq.shape
        mask = torch.cat([prompt_mask, torch.ones(B, seq.shape[1] - P, dtype=torch.long)], 1)
        t1 = time.perf_counter()

        critic.eval()
        with torch.no_grad():
            logprobs = gather_log_probs(actor(seq, attention_mask=mask, use_cache=False).logits[:, :-1], seq[:, 1:])
            ref_logprobs = gather_log_probs(reference(seq, attention_mask=mask, use_cache=False).logits[:, :-1],
                                            seq[:, 1:])
            old_values = critic(seq, mask)[:, :-1]
            reward_score = end_scores(reward(seq, mask), mask, P)
        t2 = time.perf_counter()

        actor.train()
        critic.train()
        action_mask = mask[:, 1:]
        start = P - 1
        with torch.no_grad():
            old_rewards = ppo.compute_rewards(prompts, logprobs, ref_logprobs, reward_score, action_mask)
            ends = start + action_mask[:, start:].sum(1) + 1
            for i in range(old_rewards.shape[0]):
                old_rewards[i, ends[i]:] = 0
                old_values[i, ends[i]:] = 0
            advantages, returns = ppo.advantages_and_returns(old_values, old_rewards, start)
        new_logprobs = gather_log_probs(actor(seq, attention_mask=mask, use_cache=False).logits[:, :-1], seq[:, 1:])
        actor_loss = ppo.actor_loss(new_logprobs[:, start:], logprobs[:, start:], advantages, action_mask[:, start:])
        actor_loss.backward()
        actor_grad_norm = torch.nn.utils.clip_grad_norm_(actor.parameters(), 1.0)
        actor_opt.step()
        actor_opt.zero_grad(set_to_none=True)
        values = critic(seq, mask)[:, :-1]
        critic_loss = ppo.critic_loss(values[:, start:], old_values[:, start:], returns, action_mask[:, start:])
        critic_loss.backward()
        critic_grad_norm = torch.nn.utils.clip_grad_norm_(critic.parameters(), 1.0)
        critic_opt.step()
        critic_opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()

        answer = action_mask[:, start:].float()
        check = {"first_row": seq[0].tolist(), "reward_scores": reward_score.tolist(),
                 "answer_logprob_mean": ((logprobs[:, start:] * answer).sum() / answer.sum()).item(),
                 "advantage_mean": advantages.mean().item(),
                 "actor_loss": actor_loss.item(), "critic_loss": critic_loss.item(),
                 "actor_grad_norm": actor_grad_norm.item(), "critic_grad_norm": critic_grad_norm.item()}
        return (t1 - t0, t2 - t1, t3 - t2), check

    first_check = None
    for i in range(args.warmup):
        _, check = iterate()
        first_check = first_check or check
    phases = []
    for _ in range(args.iters):
        seconds, check = iterate()
        first_check = first_check or check
        phases.append(seconds)
    med = [statistics.median(p[k] for p in phases) for k in range(3)]
    total = statistics.median(sum(p) for p in phases)
    print(json.dumps({"generate_seconds": med[0], "experience_seconds": med[1], "train_seconds": med[2],
                      "iteration_seconds": total, "iteration_seconds_all": [sum(p) for p in phases],
                      "tokens_per_s": B * (P + args.new) / total, "peak_rss_bytes": peak_rss_bytes(),
                      "first_iteration": first_check}))


def save_value_model(config, path, seed):
    """An OPT with a DeepSpeed-Chat value head, saved as troupe loads a critic."""
    torch.manual_seed(seed)
    OPTForCausalLM(config).save_pretrained(path, safe_serialization=True)
    weights = os.path.join(path, "model.safetensors")
    tensors = load_file(weights)
    tensors["v_head.weight"] = torch.nn.Linear(config.word_embed_proj_dim, 1, bias=False).weight.detach().clone()
    save_file(tensors, weights, metadata={"format": "pt"})


def write_bench_inputs(tmp, batch, prompt):
    """The bench's models and prompts under `tmp`: an OPT-125m-shaped actor, an OPT 512x6
    critic (also the reward model) with a value head, and B prompts of P random tokens.
    Returns (actor_dir, critic_dir, prompts_path)."""
    actor_dir, critic_dir = os.path.join(tmp, "actor"), os.path.join(tmp, "critic")
    torch.manual_seed(0)
    OPTForCausalLM(opt_config(768, 12, 12)).save_pretrained(actor_dir, safe_serialization=True)
    save_value_model(opt_config(512, 6, 8), critic_dir, seed=1)
    g = torch.Generator().manual_seed(2)
    prompts = os.path.join(tmp, "prompts.safetensors")
    ids = torch.randint(3, 50000, (batch, prompt), generator=g)
    save_file({"input_ids": ids, "attention_mask": torch.ones_like(ids)}, prompts)
    return actor_dir, critic_dir, prompts


def relative(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--sample", action="store_true", help="sample instead of greedy (tokens then differ)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--peer", nargs=4, metavar=("ACTOR", "CRITIC", "REWARD", "PROMPTS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer:
        return run_peer(args)
    binary = os.path.join(args.build, "bin", "troupe_bench_step3")
    if not os.path.exists(binary):
        sys.exit(f"{binary} not found: build first (cmake --build {args.build} --target troupe_bench_step3)")

    common = ["--new", str(args.new), "--seed", str(args.seed), "--warmup", str(args.warmup),
              "--iters", str(args.iters), "--threads", str(args.threads)] + (["--sample"] if args.sample else [])
    with tempfile.TemporaryDirectory() as tmp:
        actor_dir, critic_dir, prompts = write_bench_inputs(tmp, args.batch, args.prompt)
        out_json = os.path.join(tmp, "troupe.json")
        run([binary, "--actor", actor_dir, "--critic", critic_dir, "--reward", critic_dir, "--prompts", prompts,
             "--json", out_json] + common)
        with open(out_json) as f:
            ours = json.load(f)
        out = run([sys.executable, os.path.abspath(__file__), "--peer", actor_dir, critic_dir, critic_dir, prompts]
                  + common)
        peer = json.loads(out.strip().splitlines()[-1])

    print(f"step-3 iteration, actor OPT-125m shape, critic/reward OPT 512x6 + v_head (random weights), fp32 CPU, "
          f"B={args.batch} P={args.prompt} N={args.new}, {'sampling' if args.sample else 'greedy'}, "
          f"{args.threads} threads, median of {args.iters} after {args.warmup} warm-up; torch {torch.__version__}")
    print(f"{'phase':<16} {'troupe':>10} {'torch peer':>11} {'troupe/peer':>12}")
    rows = [("generate s", "generate_seconds", 1, "{:.3f}"), ("experience s", "experience_seconds", 1, "{:.3f}"),
            ("train s", "train_seconds", 1, "{:.3f}"), ("iteration s", "iteration_seconds", 1, "{:.3f}"),
            ("tokens/s", "tokens_per_s", 1, "{:.1f}"), ("peak RSS MiB", "peak_rss_bytes", 2**-20, "{:.0f}")]
    for label, key, scale, fmt in rows:
        a, b = ours[key] * scale, peer[key] * scale
        print(f"{label:<16} {fmt.format(a):>10} {fmt.format(b):>11} {a / b:>12.3f}")
    print("(seconds and RSS: < 1 is troupe better; tokens/s = B*(P+N) / iteration s: > 1 is troupe better)")

    a, b = ours["first_iteration"], peer["first_iteration"]
    same_tokens = a["first_row"] == b["first_row"]
    checks = {"same tokens (row 0)": same_tokens,
              "reward score max rel diff": max(relative(x, y) for x, y in zip(a["reward_scores"], b["reward_scores"])),
              "answer log-prob mean rel diff": relative(a["answer_logprob_mean"], b["answer_logprob_mean"])}
    for key in ("actor_loss", "critic_loss", "actor_grad_norm", "critic_grad_norm"):
        checks[f"{key} (troupe / peer)"] = f"{a[key]:.6g} / {b[key]:.6g}"
    print("first iteration" + ("" if same_tokens else " (different tokens: sampling streams differ)") + ":")
    for key, value in checks.items():
        print(f"  {key:<32} {value:.2e}" if isinstance(value, float) else f"  {key:<32} {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"batch": args.batch, "prompt": args.prompt, "new_tokens": args.new, "sample": args.sample,
                       "threads": args.threads, "torch": torch.__version__, "troupe": ours, "peer": peer,
                       "ratio_tokens_per_s": ours["tokens_per_s"] / peer["tokens_per_s"],
                       "ratio_peak_rss": ours["peak_rss_bytes"] / peer["peak_rss_bytes"],
                       "checks": checks}, f, indent=2)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Builds the reference fixtures of the RL math under fixtures/rl/.

PyTorch is the reference: this script implements REFERENCE.md "Step 3: PPO" directly,
following the structure of DeepSpeed-Chat's ppo_trainer.py (compute_rewards,
get_advantages_and_returns, actor_loss_fn, critic_loss_fn, gather_log_probs) with
troupe's one deliberate change: the EOS that ends an answer is in the action mask, so
the end index is start + action_mask[:, start:].sum(1) with no +1. It is written
independently of the C++ code, which the tests compare against these files (fp32,
within 1e-6).

Two more differences from DeepSpeed-Chat, both invisible to the losses: rewards are 0
at prompt positions (DeepSpeed-Chat leaves the KL term there; GAE never reads it), and
the old values are zeroed past the end before the critic loss (DeepSpeed-Chat does the
same in place).

Files (each tensor is {"shape": [...], "dtype": "float32"|"int64", "data": [flat, row-major]}):
  log_probs.json  logits (B, T, V), sequences (B, T) -> logprobs (B, T-1)
  ppo.json        "inputs": prompts (B, P), sequences, attention_mask (B, T), logprobs,
                  ref_logprobs, values, new_logprobs, new_values (B, T-1), reward_score (B,);
                  "cases": a list, each with "config" (the six PPO constants) and the
                  outputs rewards, old_values (B, T-1), advantages, returns (B, A),
                  actor_loss, critic_loss (scalars), ends (B,)
  grpo.json       scores (B,), group_size, eps; advantages (B,) and the per-token policy
                  loss (k3 KL) for both aggregations on a small batch
  kl.json         logprobs, ref_logprobs -> k1, k2, k3; whiten input, mask -> whitened
                  (shift_mean true and false)

Deterministic: rerunning it rewrites the same files with torch==2.11.0 (checked below).
Usage: python3 tests/reference/make_rl_fixtures.py [OUT_DIR]
"""
import json
import os
import sys

import torch

TORCH_VERSION = "2.11.0"  # pinned: torch==2.11.0 made the committed fixtures
if not torch.__version__.startswith(TORCH_VERSION):
    sys.exit(f"make_rl_fixtures.py: needs torch=={TORCH_VERSION}, found {torch.__version__}")

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "fixtures", "rl")

PAD, EOS = 0, 2


def tensor_json(t):
    t = t.detach().contiguous()
    dtype = {torch.float32: "float32", torch.int64: "int64"}[t.dtype]
    return {"shape": list(t.shape), "dtype": dtype, "data": t.reshape(-1).tolist()}


def write(name, obj):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


# --- DeepSpeed-Chat's functions, REFERENCE.md semantics -------------------------------

def gather_log_probs(logits, labels):
    log_probs = torch.nn.functional.log_softmax(logits, dim=-1)
    log_probs_labels = log_probs.gather(dim=-1, index=labels.unsqueeze(-1))
    return log_probs_labels.squeeze(-1)


def compute_rewards(prompts, log_probs, ref_log_probs, reward_score, action_mask, kl_ctl, clip_reward_value):
    kl_divergence_estimate = -kl_ctl * (log_probs - ref_log_probs)
    rewards = kl_divergence_estimate.clone()
    start = prompts.shape[1] - 1
    ends = (start + action_mask[:, start:].sum(1)).long()  # troupe: EOS is an action, no +1
    reward_clip = torch.clamp(reward_score, -clip_reward_value, clip_reward_value)
    batch_size = log_probs.shape[0]
    for j in range(batch_size):
        rewards[j, start:ends[j]][-1] += reward_clip[j]
    rewards[:, :start] = 0  # troupe: no reward at prompt positions
    return rewards, ends


def get_advantages_and_returns(values, rewards, start, gamma, lam):
    lastgaelam = 0
    advantages_reversed = []
    length = rewards.size()[-1]
    for t in reversed(range(start, length)):
        nextvalues = values[:, t + 1] if t < length - 1 else 0.0
        delta = rewards[:, t] + gamma * nextvalues - values[:, t]
        lastgaelam = delta + gamma * lam * lastgaelam
        advantages_reversed.append(lastgaelam)
    advantages = torch.stack(advantages_reversed[::-1], dim=1)
    returns = advantages + values[:, start:]
    return advantages.detach(), returns


def actor_loss_fn(logprobs, old_logprobs, advantages, mask, cliprange):
    log_ratio = (logprobs - old_logprobs) * mask
    ratio = torch.exp(log_ratio)
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    return torch.sum(torch.max(pg_loss1, pg_loss2) * mask) / mask.sum()


def critic_loss_fn(values, old_values, returns, mask, cliprange_value):
    values_clipped = torch.clamp(values, old_values - cliprange_value, old_values + cliprange_value)
    vf_loss1 = (values - returns) ** 2
    vf_loss2 = (values_clipped - returns) ** 2
    return 0.5 * torch.sum(torch.max(vf_loss1, vf_loss2) * mask) / mask.sum()


def ppo_case(inputs, config):
    """DeepSpeed-Chat's train_rlhf up to the two losses, for one set of constants."""
    prompts, seq, attention_mask = inputs["prompts"], inputs["sequences"], inputs["attention_mask"]
    start = prompts.size(-1) - 1
    action_mask = attention_mask[:, 1:].float()
    old_values = inputs["values"].clone()
    rewards, ends = compute_rewards(prompts, inputs["logprobs"], inputs["ref_logprobs"], inputs["reward_score"],
                                    action_mask, config["kl_ctl"], config["clip_reward_value"])
    for i in range(rewards.shape[0]):
        rewards[i, ends[i]:] = 0
        old_values[i, ends[i]:] = 0
    advantages, returns = get_advantages_and_returns(old_values, rewards, start, config["gamma"], config["lam"])
    actor_loss = actor_loss_fn(inputs["new_logprobs"][:, start:], inputs["logprobs"][:, start:], advantages,
                               action_mask[:, start:], config["cliprange"])
    critic_loss = critic_loss_fn(inputs["new_values"][:, start:], old_values[:, start:], returns,
                                 action_mask[:, start:], config["cliprange_value"])
    return {
        "config": config,
        "ends": tensor_json(ends.long()),
        "rewards": tensor_json(rewards),
        "old_values": tensor_json(old_values),
        "advantages": tensor_json(advantages),
        "returns": tensor_json(returns),
        "actor_loss": actor_loss.item(),
        "critic_loss": critic_loss.item(),
    }


# --- the fixed batch ------------------------------------------------------------------

def make_batch(gen):
    """B = 4 rows, prompt length P = 4 (left padded), T = 11, so A = 7 answer positions.
    Row 0: full prompt, answer runs to the length limit without EOS.
    Row 1: prompt of 2, answer of 3 tokens + EOS, then padding.
    Row 2: prompt of 3, one token + EOS.
    Row 3: full prompt, the answer is only EOS (the <= 1 token case)."""
    P, T, V = 4, 11, 13
    prompt_lens = [4, 2, 3, 4]
    answer_lens = [7, 4, 2, 1]  # EOS included where the answer ended
    ends_with_eos = [False, True, True, True]
    B = len(prompt_lens)
    seq = torch.full((B, T), PAD, dtype=torch.int64)
    mask = torch.zeros((B, T), dtype=torch.int64)
    for b in range(B):
        tokens = torch.randint(3, V, (prompt_lens[b] + answer_lens[b],), generator=gen)
        seq[b, P - prompt_lens[b]:P] = tokens[:prompt_lens[b]]
        seq[b, P:P + answer_lens[b]] = tokens[prompt_lens[b]:]
        if ends_with_eos[b]:
            seq[b, P + answer_lens[b] - 1] = EOS
        mask[b, P - prompt_lens[b]:P + answer_lens[b]] = 1
    L = T - 1
    logprobs = -3.0 * torch.rand((B, L), generator=gen)
    inputs = {
        "prompts": seq[:, :P].clone(),
        "sequences": seq,
        "attention_mask": mask,
        "logprobs": logprobs,
        "ref_logprobs": logprobs + 0.3 * torch.randn((B, L), generator=gen),
        "values": torch.randn((B, L), generator=gen),
        # new policy / critic outputs during training: some ratios leave [0.8, 1.2]
        "new_logprobs": logprobs + 0.3 * torch.randn((B, L), generator=gen),
        "new_values": torch.randn((B, L), generator=gen),
        # beyond +-5 on both sides to exercise the clamp
        "reward_score": torch.tensor([7.25, -1.5, -6.5, 0.75]),
    }
    return inputs, V


def main():
    gen = torch.Generator().manual_seed(20261128)

    # log-probs from logits
    B, T, V = 3, 6, 7
    logits = 3.0 * torch.randn((B, T, V), generator=gen)
    sequences = torch.randint(0, V, (B, T), generator=gen)
    write("log_probs.json", {
        "torch": torch.__version__,
        "logits": tensor_json(logits),
        "sequences": tensor_json(sequences),
        "logprobs": tensor_json(gather_log_probs(logits[:, :-1, :], sequences[:, 1:])),
    })

    # PPO on the fixed batch, default and overridden constants
    inputs, _ = make_batch(gen)
    defaults = {"kl_ctl": 0.1, "clip_reward_value": 5.0, "cliprange": 0.2, "cliprange_value": 0.2,
                "gamma": 1.0, "lam": 0.95}
    overridden = {"kl_ctl": 0.05, "clip_reward_value": 2.0, "cliprange": 0.1, "cliprange_value": 0.3,
                  "gamma": 0.9, "lam": 0.8}
    write("ppo.json", {
        "torch": torch.__version__,
        "inputs": {k: tensor_json(v) for k, v in inputs.items()},
        "cases": [ppo_case(inputs, defaults), ppo_case(inputs, overridden)],
    })

    # GRPO: 3 prompts x 4 samples; the last group scored all alike (advantage 0)
    group_size, eps = 4, 1e-4
    scores = torch.tensor([1.0, 0.0, 0.5, 2.0, -1.0, 3.0, 0.25, 0.25, 0.5, 0.5, 0.5, 0.5])  # last group: sums exact in fp32
    grouped = scores.view(-1, group_size)
    advantages = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + eps)).reshape(-1)
    # the GRPO loss on a small batch: P = 2, T = 6 -> A = 4 answer positions
    Bg, P, T = scores.numel(), 2, 6
    L, A, start = T - 1, T - 2, P - 1
    answer_lens = torch.randint(1, A + 1, (Bg,), generator=gen)
    attention_mask = torch.zeros((Bg, T), dtype=torch.int64)
    attention_mask[:, :P] = 1
    for b in range(Bg):
        attention_mask[b, P:P + answer_lens[b]] = 1
    old_lp = -2.0 * torch.rand((Bg, L), generator=gen)
    ref_lp = old_lp + 0.2 * torch.randn((Bg, L), generator=gen)
    new_lp = old_lp + 0.3 * torch.randn((Bg, L), generator=gen)
    mask = attention_mask[:, 1:].float()[:, start:]
    adv_tok = advantages.unsqueeze(1) * mask
    cliprange, beta = 0.2, 0.04
    lr = (new_lp[:, start:] - old_lp[:, start:]) * mask
    ratio = torch.exp(lr)
    surrogate = torch.max(-adv_tok * ratio, -adv_tok * torch.clamp(ratio, 1 - cliprange, 1 + cliprange))
    log_r = (ref_lp[:, start:] - new_lp[:, start:]) * mask  # log(pi_ref / pi)
    k3 = torch.exp(log_r) - log_r - 1
    per_token = surrogate + beta * k3
    sequence_mean = ((per_token * mask).sum(1) / mask.sum(1)).mean()
    token_mean = (per_token * mask).sum() / mask.sum()
    write("grpo.json", {
        "torch": torch.__version__,
        "group_size": group_size, "eps": eps, "cliprange": cliprange, "kl_coef": beta,
        "scores": tensor_json(scores),
        "advantages": tensor_json(advantages),
        "prompt_length": P,
        "attention_mask": tensor_json(attention_mask),
        "logprobs": tensor_json(old_lp),
        "ref_logprobs": tensor_json(ref_lp),
        "new_logprobs": tensor_json(new_lp),
        "loss_sequence_mean": sequence_mean.item(),
        "loss_token_mean": token_mean.item(),
    })

    # KL estimators and whitening (TRL's masked_whiten, Bessel-corrected variance)
    lp = -2.0 * torch.rand((3, 5), generator=gen)
    ref = lp + 0.5 * torch.randn((3, 5), generator=gen)
    log_ratio = lp - ref
    x = 2.0 * torch.randn((3, 5), generator=gen) + 0.7
    wmask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [0, 1, 1, 1, 1]], dtype=torch.float32)
    mean = (x * wmask).sum() / wmask.sum()
    var = ((x - mean) ** 2 * wmask).sum() / wmask.sum() * (wmask.sum() / (wmask.sum() - 1))
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    write("kl.json", {
        "torch": torch.__version__,
        "logprobs": tensor_json(lp),
        "ref_logprobs": tensor_json(ref),
        "k1": tensor_json(log_ratio),
        "k2": tensor_json(0.5 * log_ratio ** 2),
        "k3": tensor_json(torch.exp(-log_ratio) - 1 + log_ratio),
        "x": tensor_json(x),
        "mask": tensor_json(wmask),
        "whitened": tensor_json(whitened * wmask),
        "whitened_keep_mean": tensor_json((whitened + mean) * wmask),
    })


if __name__ == "__main__":
    main()

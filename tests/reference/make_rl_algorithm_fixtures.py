#!/usr/bin/env python3
"""Builds the reference fixtures of the critic-free RL algorithms under fixtures/rl/.

Plain PyTorch, written from the papers and from OpenRLHF's / TRL's formulas, not from
troupe's C++ (which the tests in tests/rl/ compare against these files, fp32, 1e-6):

  rloo                  Ahmadian et al. 2024, "Back to Basics" (as TRL's RLOOTrainer):
                        R_i = score_i - kl_coef * sum_t KL_t (a sequence-level penalty),
                        A_i = R_i - mean of the other R_j of the prompt's group,
                        optionally standardised over the batch's answers.
  reinforce++           Hu 2025 (as OpenRLHF's advantage_estimator "reinforce"):
                        r_t = -kl_coef * KL_t, + score on the last answer token;
                        G_t = sum_{u >= t} gamma^(u - t) r_u; advantages = G whitened
                        over all action tokens of the batch (population variance,
                        rsqrt(clamp(var, 1e-8))).
  reinforce++_baseline  OpenRLHF's "reinforce_baseline": score minus the group mean
                        first, then as reinforce++ with gamma = 1.
  dr_grpo               Liu et al. 2025 (as TRL's loss_type "dr_grpo"): A_i = score_i -
                        group mean (no std); loss = sum over tokens and answers of the
                        per-token loss / (rows * generate_max_len).
  remax                 Li et al. 2023, "ReMax", Algorithm 1: the gradient of each
                        sampled answer is weighted by r(x, y) - r(x, y_greedy), the
                        greedy answer's reward the baseline; with the KL in the reward
                        (r_t = -kl_coef * KL_t, + score on the last answer token) the
                        weight of token t is sum_{u >= t} r_u - r(x, y_greedy).
  grpo (KL options)     the KL term with estimator k1/k2/k3, or the KL as a reward
                        penalty (OpenRLHF "group_norm" with the KL in the reward:
                        A_t = normalised score - kl_coef * sum_{u >= t} KL_u).

Shared settings, applied to the reward score before anything else: normalisation over
the batch ((s - mean) / (std + 1e-8), Bessel std) or running (mean and std of every
score seen so far, this batch included), then clipping to [-reward_clip, reward_clip].

Groups are the rows of one prompt. The batch deliberately has broken groups (a group
that lost an answer to the trainer's short-answer filter, and a lone row), listed here
explicitly; a lone row has no baseline, so its RLOO advantage is 0 and its group-mean
baseline is itself.

The maths is done in float64 from fp32 inputs; outputs are rounded to fp32 once.
Deterministic with torch==2.11.0.
Usage: python3 tests/reference/make_rl_algorithm_fixtures.py [OUT_DIR]
"""
import json
import os
import sys

import torch

TORCH_VERSION = "2.11.0"
if not torch.__version__.startswith(TORCH_VERSION):
    sys.exit(f"make_rl_algorithm_fixtures.py: needs torch=={TORCH_VERSION}, found {torch.__version__}")

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "fixtures", "rl")
PAD, EOS = 0, 2


def tensor_json(t):
    t = t.detach().contiguous()
    if t.is_floating_point():
        t = t.to(torch.float32)
    dtype = {torch.float32: "float32", torch.int64: "int64"}[t.dtype]
    return {"shape": list(t.shape), "dtype": dtype, "data": t.reshape(-1).tolist()}


def write(name, obj):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


# --- the batch -------------------------------------------------------------------------

def make_batch(gen, group_sizes, P=3, T=8, V=11):
    """Rows of consecutive groups (one prompt each, repeated), P prompt positions (the
    first group's prompt is left padded by one), answers of 2..A tokens ending in EOS.
    Token tensors are (B, T-1); answer positions are start = P-1 .. T-2."""
    B, A = sum(group_sizes), T - P
    seq = torch.full((B, T), PAD, dtype=torch.int64)
    mask = torch.zeros((B, T), dtype=torch.int64)
    row = 0
    for g, n in enumerate(group_sizes):
        pad = 1 if g == 0 else 0
        prompt = torch.randint(3, V, (P - pad,), generator=gen)
        for _ in range(n):
            length = int(torch.randint(2, A + 1, (1,), generator=gen))
            seq[row, pad:P] = prompt
            seq[row, P:P + length] = torch.randint(3, V, (length,), generator=gen)
            seq[row, P + length - 1] = EOS
            mask[row, pad:P + length] = 1
            row += 1
    L = T - 1
    old = -2.0 * torch.rand((B, L), generator=gen)
    return {
        "prompts": seq[:, :P].clone(),
        "sequences": seq,
        "attention_mask": mask,
        "logprobs": old,
        "ref_logprobs": old + 0.3 * torch.randn((B, L), generator=gen),
        "new_logprobs": old + 0.3 * torch.randn((B, L), generator=gen),  # some ratios leave [0.8, 1.2]
        "reward_score": 1.5 * torch.randn((B,), generator=gen),
    }


def groups_of(group_sizes):
    out, row = [], 0
    for n in group_sizes:
        out.append(list(range(row, row + n)))
        row += n
    return out


def answer_view(batch):
    """float64 answer-position views: old, ref, new log-probs and the action mask, (B, A)."""
    P = batch["prompts"].shape[1]
    start = P - 1
    mask = batch["attention_mask"][:, 1:].double()[:, start:]
    f = lambda k: batch[k].double()[:, start:]
    return f("logprobs"), f("ref_logprobs"), f("new_logprobs"), mask


# --- the formulas ----------------------------------------------------------------------

def approx_kl(logprobs, ref_logprobs, estimator):
    """OpenRLHF's compute_approx_kl: k1 = log r, k2 = (log r)^2 / 2, k3 = e^-log r - 1 + log r."""
    log_ratio = logprobs - ref_logprobs
    if estimator == 1:
        return log_ratio
    if estimator == 2:
        return log_ratio ** 2 / 2.0
    log_ratio = -log_ratio
    return log_ratio.exp() - 1 - log_ratio


def preprocess_scores(scores, normalize, clip, history=None):
    """normalize 0 off, 1 batch, 2 running (history: the earlier scores); then the clip."""
    s = scores.double()
    if normalize == 1:
        s = (s - s.mean()) / (s.std() + 1e-8)
    elif normalize == 2:
        seen = torch.cat([history.double(), s]) if history is not None else s
        s = (s - seen.mean()) / (seen.std() + 1e-8)
    if clip > 0:
        s = s.clamp(-clip, clip)
    return s


def surrogate(new_lp, old_lp, adv, cliprange):
    ratio = (new_lp - old_lp).exp()
    return torch.max(-adv * ratio, -adv * ratio.clamp(1 - cliprange, 1 + cliprange))


def aggregate(per_token, mask, token_mean):
    if token_mean:
        return (per_token * mask).sum() / mask.sum()
    return ((per_token * mask).sum(1) / mask.sum(1)).mean()


def cumulative_returns(rewards, mask, gamma):
    """OpenRLHF's get_cumulative_returns."""
    rewards = rewards * mask
    returns = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], dtype=rewards.dtype)
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    return returns


def kl_reward(score, kl, mask, kl_coef):
    """OpenRLHF's compute_reward: -kl_coef * KL on every token, the score on the last action."""
    reward = -kl_coef * kl * mask
    for b in range(reward.shape[0]):
        last = int(mask[b].nonzero().max())
        reward[b, last] += score[b]
    return reward


def openrlhf_normalize(adv, mask):
    n = mask.sum()
    mean = (adv * mask).sum() / n
    var = ((adv - mean) ** 2 * mask).sum() / n
    return (adv - mean) * var.clamp(min=1e-8).rsqrt() * mask


# --- the algorithms ---------------------------------------------------------------------

def rloo(batch, groups, cfg):
    old, ref, new, mask = answer_view(batch)
    s = preprocess_scores(batch["reward_score"], cfg["normalize_reward"], cfg["reward_clip"])
    kl = approx_kl(old, ref, cfg["kl_estimator"]) * mask
    R = s - cfg["kl_coef"] * kl.sum(1)
    adv = torch.zeros_like(R)
    for rows in groups:
        n = len(rows)
        for i in rows:
            adv[i] = 0.0 if n == 1 else R[i] - (sum(R[j] for j in rows) - R[i]) / (n - 1)
    if cfg["whiten_advantages"]:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    adv_tok = adv[:, None] * mask
    loss = aggregate(surrogate(new, old, adv_tok, cfg["cliprange"]), mask, cfg["token_mean"])
    return {"config": cfg, "advantages": tensor_json(adv_tok), "loss": loss.item()}


def reinforce_pp(batch, groups, cfg, baseline):
    old, ref, new, mask = answer_view(batch)
    s = preprocess_scores(batch["reward_score"], cfg["normalize_reward"], cfg["reward_clip"])
    if baseline:
        s = s.clone()
        for rows in groups:
            s[rows] = s[rows] - s[rows].mean()
    kl = approx_kl(old, ref, cfg["kl_estimator"]) * mask
    rewards = kl_reward(s, kl, mask, cfg["kl_coef"])
    returns = cumulative_returns(rewards, mask, cfg.get("gamma", 1.0))
    adv = openrlhf_normalize(returns, mask) if cfg["whiten_advantages"] else returns * mask
    loss = aggregate(surrogate(new, old, adv, cfg["cliprange"]), mask, cfg["token_mean"])
    return {"config": cfg, "rewards": tensor_json(rewards), "returns": tensor_json(returns),
            "advantages": tensor_json(adv), "loss": loss.item()}


def dr_grpo(batch, groups, cfg):
    old, ref, new, mask = answer_view(batch)
    s = preprocess_scores(batch["reward_score"], cfg["normalize_reward"], cfg["reward_clip"])
    adv = s.clone()
    for rows in groups:
        adv[rows] = s[rows] - s[rows].mean()
    adv_tok = adv[:, None] * mask
    per_token = surrogate(new, old, adv_tok, cfg["cliprange"])
    if cfg["kl_coef"] > 0:
        per_token = per_token + cfg["kl_coef"] * approx_kl(new, ref, cfg["kl_estimator"])
    length = cfg["generate_max_len"] or mask.shape[1]  # 0: the batch's answer width A
    loss = (per_token * mask).sum() / (per_token.shape[0] * length)
    return {"config": cfg, "advantages": tensor_json(adv_tok), "loss": loss.item()}


def remax(batch, baseline_reward, cfg):
    """ReMax: REINFORCE with the greedy answer's reward as the baseline, through the clipped
    surrogate (at ratio 1 its gradient is Algorithm 1's)."""
    old, ref, new, mask = answer_view(batch)
    s = batch["reward_score"].double()
    kl = approx_kl(old, ref, cfg["kl_estimator"]) * mask
    rewards = kl_reward(s, kl, mask, cfg["kl_coef"])
    returns = cumulative_returns(rewards, mask, 1.0)
    adv = (returns - baseline_reward.double()[:, None]) * mask
    loss = aggregate(surrogate(new, old, adv, cfg["cliprange"]), mask, cfg["token_mean"])
    return {"config": cfg, "rewards": tensor_json(rewards), "returns": tensor_json(returns),
            "advantages": tensor_json(adv), "loss": loss.item()}


def grpo(batch, group_size, cfg):
    """GRPO (Shao et al. 2024) on whole groups of group_size rows, eps 1e-4 on the std."""
    old, ref, new, mask = answer_view(batch)
    s = batch["reward_score"].double().view(-1, group_size)
    adv = ((s - s.mean(1, keepdim=True)) / (s.std(1, keepdim=True) + 1e-4)).reshape(-1)
    adv_tok = adv[:, None] * mask
    kl_coef, est = cfg["kl_coef"], cfg["kl_estimator"]
    if cfg["kl_in_reward"]:
        # the KL is a per-token reward; returns with gamma 1 (OpenRLHF group_norm)
        kl = approx_kl(old, ref, est) * mask
        adv_tok = (adv_tok + cumulative_returns(-kl_coef * kl, mask, 1.0)) * mask
        per_token = surrogate(new, old, adv_tok, cfg["cliprange"])
    else:
        per_token = surrogate(new, old, adv_tok, cfg["cliprange"]) + kl_coef * approx_kl(new, ref, est)
    loss = aggregate(per_token, mask, False)
    return {"config": cfg, "advantages": tensor_json(adv_tok), "loss": loss.item()}


def main():
    gen = torch.Generator().manual_seed(20261207)
    sizes = [3, 3, 2, 1]  # a full group, a full group, one that lost an answer, a lone row
    batch = make_batch(gen, sizes)
    groups = groups_of(sizes)
    inputs = {k: tensor_json(v) for k, v in batch.items()}
    common = {"torch": torch.__version__, "group_sizes": sizes, "inputs": inputs}

    write("rloo.json", dict(common, cases=[
        rloo(batch, groups, {"samples_per_prompt": 3, "kl_coef": 0.05, "kl_estimator": 1, "cliprange": 0.2,
                             "whiten_advantages": 0, "normalize_reward": 0, "reward_clip": 0.0, "token_mean": 1}),
        rloo(batch, groups, {"samples_per_prompt": 3, "kl_coef": 0.2, "kl_estimator": 2, "cliprange": 0.1,
                             "whiten_advantages": 1, "normalize_reward": 1, "reward_clip": 1.0, "token_mean": 0}),
    ]))
    write("reinforce_pp.json", dict(common, cases=[
        reinforce_pp(batch, groups, {"kl_coef": 0.01, "kl_estimator": 1, "gamma": 1.0, "cliprange": 0.2,
                                     "whiten_advantages": 1, "normalize_reward": 0, "reward_clip": 0.0,
                                     "token_mean": 1}, baseline=False),
        reinforce_pp(batch, groups, {"kl_coef": 0.1, "kl_estimator": 3, "gamma": 0.9, "cliprange": 0.1,
                                     "whiten_advantages": 0, "normalize_reward": 1, "reward_clip": 0.8,
                                     "token_mean": 0}, baseline=False),
    ]))
    write("reinforce_pp_baseline.json", dict(common, cases=[
        reinforce_pp(batch, groups, {"samples_per_prompt": 3, "kl_coef": 0.01, "kl_estimator": 1, "cliprange": 0.2,
                                     "whiten_advantages": 1, "normalize_reward": 0, "reward_clip": 0.0,
                                     "token_mean": 1}, baseline=True),
        reinforce_pp(batch, groups, {"samples_per_prompt": 3, "kl_coef": 0.1, "kl_estimator": 2, "cliprange": 0.3,
                                     "whiten_advantages": 0, "normalize_reward": 0, "reward_clip": 1.2,
                                     "token_mean": 0}, baseline=True),
    ]))
    write("dr_grpo.json", dict(common, cases=[
        dr_grpo(batch, groups, {"samples_per_prompt": 3, "kl_coef": 0.0, "kl_estimator": 3, "cliprange": 0.2,
                                "generate_max_len": 0, "normalize_reward": 0, "reward_clip": 0.0}),
        dr_grpo(batch, groups, {"samples_per_prompt": 3, "kl_coef": 0.04, "kl_estimator": 3, "cliprange": 0.2,
                                "generate_max_len": 8, "normalize_reward": 1, "reward_clip": 0.0}),
    ]))

    # GRPO's KL options on whole groups (GRPO's own grouping: consecutive rows)
    gbatch = make_batch(gen, [3, 3])
    write("grpo_kl.json", {"torch": torch.__version__, "inputs": {k: tensor_json(v) for k, v in gbatch.items()},
                           "cases": [grpo(gbatch, 3, {"samples_per_prompt": 3, "kl_coef": 0.1, "kl_estimator": e,
                                                      "kl_in_reward": r, "cliprange": 0.2})
                                     for e, r in [(1, 0), (2, 0), (3, 0), (1, 1), (3, 1)]]})

    # running reward normalisation: the second batch uses the stats of both
    first = 2.0 * torch.randn((5,), generator=gen) + 1.0
    second = 2.0 * torch.randn((4,), generator=gen) + 1.0
    write("reward_normalization.json", {
        "torch": torch.__version__,
        "first": tensor_json(first),
        "second": tensor_json(second),
        "batch_first": tensor_json(preprocess_scores(first, 1, 0.0)),
        "running_first": tensor_json(preprocess_scores(first, 2, 0.0)),
        "running_second": tensor_json(preprocess_scores(second, 2, 0.0, history=first)),
        "running_second_clipped": tensor_json(preprocess_scores(second, 2, 0.5, history=first)),
    })

    # ReMax: its own generator, so the files above stay as they were. One sampled answer
    # per prompt (the paper's setting) and two per prompt; each row carries the reward of
    # its prompt's greedy answer.
    rgen = torch.Generator().manual_seed(20231019)
    for name, sizes in [("remax.json", [1, 1, 1, 1, 1]), ("remax_two_samples.json", [2, 2, 2])]:
        rbatch = make_batch(rgen, sizes)
        greedy = 1.5 * torch.randn((len(sizes),), generator=rgen)
        baseline = torch.cat([greedy[g].repeat(n) for g, n in enumerate(sizes)])  # (B,) each row its prompt's
        inputs = {k: tensor_json(v) for k, v in rbatch.items()}
        inputs["baseline_reward"] = tensor_json(baseline)
        write(name, {"torch": torch.__version__, "group_sizes": sizes, "inputs": inputs, "cases": [
            remax(rbatch, baseline, {"samples_per_prompt": sizes[0], "kl_coef": 0.0, "kl_estimator": 1,
                                     "cliprange": 0.2, "token_mean": 1}),
            remax(rbatch, baseline, {"samples_per_prompt": sizes[0], "kl_coef": 0.05, "kl_estimator": 1,
                                     "cliprange": 0.2, "token_mean": 0}),
            remax(rbatch, baseline, {"samples_per_prompt": sizes[0], "kl_coef": 0.1, "kl_estimator": 3,
                                     "cliprange": 0.1, "token_mean": 1}),
        ]})


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Builds fixtures/engine/dpo_loss.json, the reference for troupe's DPO loss.

Independent of troupe's C++: plain PyTorch written after DeepSpeed-Chat's
step2_dpo_finetuning/main.py (label mask with the shared prompt prefix zeroed,
get_batch_logps, the sigmoid loss with label smoothing) and TRL's reported metrics
(rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins). If `trl` is
importable its sigmoid DPO loss is computed too and must agree; the fixture does not
depend on it.

The batch: 4 pairs (2B = 8 rows, T = 9, V = 13) of fixed random ids, right padded, whose
chosen and rejected rows share prompts of different lengths; one pair is identical
(divergence index 0) and one rejected answer is a prefix of its chosen answer. Policy
and reference logits are fixed random float32 tensors. For beta 0.1 and label_smoothing
0 and 0.1 (and beta 0.5, label_smoothing 0.2) the fixture holds the loss, the rewards,
accuracies, margins and d loss / d policy logits. The expected values are computed in
float64 from the float32 inputs.

Each tensor is {"shape": [...], "dtype": "float32"|"int64", "data": [flat, row-major]}.
Deterministic with torch==2.11.0.
Usage: python3 tests/reference/make_dpo_fixtures.py [OUT_DIR]
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def tensor_json(t):
    t = t.detach().cpu()
    if t.dtype == torch.int64:
        return {"shape": list(t.shape), "dtype": "int64", "data": t.flatten().tolist()}
    return {"shape": list(t.shape), "dtype": "float32", "data": t.to(torch.float32).flatten().tolist()}


def label_mask_of(input_ids, attention_mask):
    """DeepSpeed-Chat: the attention mask with each pair's shared prefix zeroed."""
    bs = input_ids.shape[0] // 2
    chosen, rejected = input_ids[:bs], input_ids[bs:]
    label_mask = attention_mask.clone()
    for i in range(bs):
        divergence = (chosen[i] != rejected[i]).nonzero().squeeze(-1)
        divergence = divergence[0] if len(divergence) > 0 else 0
        label_mask[i][:divergence] = 0
        label_mask[i + bs][:divergence] = 0
    return label_mask


def get_batch_logps(logits, input_ids, label_mask):
    """DeepSpeed-Chat's get_batch_logps."""
    labels = input_ids.clone() * label_mask
    labels = labels[:, 1:]
    label_mask = label_mask[:, 1:]
    logits = logits[:, :-1, :]
    per_token_logps = torch.gather(logits.log_softmax(-1), dim=2, index=labels.unsqueeze(2)).squeeze(2)
    return (per_token_logps * label_mask).sum(-1)


def dpo(policy_logps, ref_logps, beta, label_smoothing):
    bs = policy_logps.shape[0] // 2
    chosen, rejected = policy_logps[:bs], policy_logps[bs:]
    ref_chosen, ref_rejected = ref_logps[:bs], ref_logps[bs:]
    logits = beta * ((chosen - ref_chosen) - (rejected - ref_rejected))
    loss = (-F.logsigmoid(logits) * (1 - label_smoothing) - F.logsigmoid(-logits) * label_smoothing).mean(0)
    chosen_rewards = beta * (chosen - ref_chosen).detach()
    rejected_rewards = beta * (rejected - ref_rejected).detach()
    return loss, chosen_rewards, rejected_rewards


def trl_loss(policy_logps, ref_logps, beta, label_smoothing):
    """TRL's own DPOTrainer.dpo_loss (sigmoid) when trl is installed, else None.

    dpo_loss reads its settings from the trainer; a namespace with the settings of a
    sigmoid run stands in for one. Its attributes and signature vary across TRL versions:
    a failure to call it is reported and skipped.
    """
    try:
        from trl import DPOTrainer
    except Exception:
        return None
    import types
    bs = policy_logps.shape[0] // 2
    shim = types.SimpleNamespace(beta=beta, label_smoothing=label_smoothing, loss_type="sigmoid",
                                 f_divergence_type="reverse_kl", f_alpha_divergence_coef=1.0,
                                 use_weighting=False, reference_free=False, device=policy_logps.device)
    try:
        out = DPOTrainer.dpo_loss(shim, policy_logps[:bs], policy_logps[bs:], ref_logps[:bs], ref_logps[bs:])
    except Exception as e:  # noqa: BLE001
        print("trl is installed but its dpo_loss could not be called here:", repr(e))
        return None
    return out[0].mean()


def batch():
    g = torch.Generator().manual_seed(23)
    B, T, V = 4, 9, 13
    chosen = torch.randint(3, V, (B, T), generator=g)
    rejected = chosen.clone()
    # Prompts of 3, 5 and 2 tokens, then different answers; pair 3 is identical.
    for row, prompt in [(0, 3), (1, 5), (2, 2)]:
        answer = torch.randint(3, V, (T - prompt,), generator=g)
        answer[0] = (chosen[row, prompt] + 1 - 3) % (V - 3) + 3  # surely differs at the prompt's end
        rejected[row, prompt:] = answer
    lengths_c = [9, 7, 6, 8]
    lengths_r = [6, 9, 4, 8]  # pair 2: the rejected answer stops early
    ids = torch.cat([chosen, rejected])
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths_c + lengths_r):
        mask[row, :n] = 1
    pad = 1
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, pad))
    policy_logits = torch.randn((2 * B, T, V), generator=g) * 2
    reference_logits = policy_logits + torch.randn((2 * B, T, V), generator=g) * 0.5
    return ids, mask, policy_logits, reference_logits


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "fixtures", "engine")
    os.makedirs(out_dir, exist_ok=True)
    ids, mask, policy_logits, reference_logits = batch()
    label_mask = label_mask_of(ids, mask)
    ref_logps = get_batch_logps(reference_logits.double(), ids, label_mask)
    content = {"input_ids": tensor_json(ids), "attention_mask": tensor_json(mask),
               "policy_logits": tensor_json(policy_logits), "reference_logits": tensor_json(reference_logits),
               "label_mask": tensor_json(label_mask), "reference_logps": tensor_json(ref_logps),
               "torch": torch.__version__, "cases": []}
    for beta, label_smoothing in [(0.1, 0.0), (0.1, 0.1), (0.5, 0.2)]:
        logits = policy_logits.double().requires_grad_()
        policy_logps = get_batch_logps(logits, ids, label_mask)
        loss, chosen_rewards, rejected_rewards = dpo(policy_logps, ref_logps, beta, label_smoothing)
        loss.backward()
        reference = trl_loss(policy_logps.detach(), ref_logps, beta, label_smoothing)
        if reference is not None:
            assert abs(reference.item() - loss.item()) < 1e-12, (reference.item(), loss.item())
            print(f"beta {beta}, label_smoothing {label_smoothing}: trl's sigmoid loss agrees")
        content["cases"].append({
            "beta": beta, "label_smoothing": label_smoothing,
            "policy_logps": tensor_json(policy_logps),
            "loss": loss.item(),
            "chosen_rewards": tensor_json(chosen_rewards),
            "rejected_rewards": tensor_json(rejected_rewards),
            "accuracies": (chosen_rewards > rejected_rewards).double().mean().item(),
            "margins": (chosen_rewards - rejected_rewards).mean().item(),
            "grad_policy_logits": tensor_json(logits.grad),
        })
    path = os.path.join(out_dir, "dpo_loss.json")
    with open(path, "w") as f:
        json.dump(content, f)
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()

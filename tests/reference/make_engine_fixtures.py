#!/usr/bin/env python3
"""Builds the reference fixtures of steps 1 and 2 under fixtures/engine/.

The references are independent of troupe's C++:
  sft_loss.json   transformers' causal-LM loss (model(input_ids, attention_mask,
                  labels).loss) of the fixture models opt, gpt2 and llama on a right-padded
                  batch whose labels are the ids with -100 on padding (REFERENCE.md step 1).
  sft_gradients.json  the gradients transformers' backward of that loss gives: each
                  parameter's L2 norm by Hugging Face name (a tied LM head counted once, under
                  the embedding's name) and the input embedding's per-row L2 norms (V), the
                  rows the lookup and the LM head both reach.
  rm_loss.json    a PyTorch implementation of REFERENCE.md "Step 2: reward model" written
                  after DeepSpeed-Chat's RewardModel.forward (divergence span, end = first
                  padding position, score = value at the last real token), on fixed values.
  schedules.json  transformers.get_scheduler's learning rates per step for linear, cosine,
                  constant and constant_with_warmup with warmup.

Each tensor is {"shape": [...], "dtype": "float32"|"int64", "data": [flat, row-major]}.
Deterministic with torch==2.11.0 and transformers==4.57.6.
Usage: python3 tests/reference/make_engine_fixtures.py [OUT_DIR]
"""
import json
import os
import sys

import torch
import torch.nn.functional as F
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))


def tensor_json(t):
    t = t.detach().cpu()
    if t.dtype == torch.int64:
        return {"shape": list(t.shape), "dtype": "int64", "data": t.flatten().tolist()}
    return {"shape": list(t.shape), "dtype": "float32", "data": t.to(torch.float32).flatten().tolist()}


def sft_cases():
    cases = {}
    for name in ["opt", "gpt2", "llama"]:
        model_dir = os.path.join(HERE, "fixtures", "models", name)
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
        model.eval()
        g = torch.Generator().manual_seed(7)
        ids = torch.randint(3, model.config.vocab_size, (3, 12), generator=g)
        lengths = [12, 9, 5]
        mask = torch.zeros_like(ids)
        for row, n in enumerate(lengths):
            mask[row, :n] = 1
        pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
        ids = torch.where(mask.bool(), ids, torch.full_like(ids, pad))
        labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
        with torch.no_grad():
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        cases[name] = {"input_ids": tensor_json(ids), "attention_mask": tensor_json(mask),
                       "labels": tensor_json(labels), "loss": loss.item()}
    return cases


def sft_gradient_cases():
    cases = {}
    for name, c in sft_cases().items():
        model_dir = os.path.join(HERE, "fixtures", "models", name)
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
        model.eval()  # dropout off; autograd on
        ids, mask, labels = (torch.tensor(c[k]["data"]).view(c[k]["shape"]) for k in
                             ("input_ids", "attention_mask", "labels"))
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        embedding = model.get_input_embeddings().weight
        norms = {}
        seen = set()
        for pname, p in model.named_parameters():  # tied weights appear once
            if id(p) in seen or p.grad is None:
                continue
            seen.add(id(p))
            norms[pname] = p.grad.norm().item()
        cases[name] = {"tied": model.config.tie_word_embeddings,
                       "embedding_name": [k for k, p in model.named_parameters() if p is embedding][0],
                       "grad_norms": norms,
                       "embedding_row_norms": tensor_json(embedding.grad.norm(dim=1))}
    return cases


def reward_model_loss(values, ids, mask):
    """REFERENCE.md step 2, one pair at a time as DeepSpeed-Chat's RewardModel.forward."""
    bs = values.shape[0] // 2
    seq_len = values.shape[1]
    chosen_ids, rejected_ids = ids[:bs], ids[bs:]
    chosen_v, rejected_v = values[:bs], values[bs:]
    chosen_m, rejected_m = mask[:bs], mask[bs:]
    loss = 0.0
    chosen_scores, rejected_scores = [], []
    for i in range(bs):
        c_pads = (chosen_m[i] == 0).nonzero()
        c_end = c_pads[0].item() if len(c_pads) > 0 else seq_len
        r_pads = (rejected_m[i] == 0).nonzero()
        r_end = r_pads[0].item() if len(r_pads) > 0 else seq_len
        divergence = (chosen_ids[i] != rejected_ids[i]).nonzero()
        if len(divergence) == 0:
            begin, end = seq_len - 1, seq_len
        else:
            begin, end = divergence[0].item(), max(c_end, r_end)
        c = chosen_v[i, begin:end]
        r = rejected_v[i, begin:end]
        loss = loss + (-F.logsigmoid(c - r).mean())
        chosen_scores.append(chosen_v[i, c_end - 1])
        rejected_scores.append(rejected_v[i, r_end - 1])
    return loss / bs, torch.stack(chosen_scores), torch.stack(rejected_scores)


def rm_case():
    g = torch.Generator().manual_seed(11)
    T = 10
    # Pairs: same prompt then different answers of different lengths; a pair whose
    # rejected answer is longer; an identical pair (the fallback span).
    chosen = torch.randint(5, 50, (4, T), generator=g)
    rejected = chosen.clone()
    rejected[0, 4:] = torch.randint(50, 90, (T - 4,), generator=g)
    rejected[1, 6:] = torch.randint(50, 90, (T - 6,), generator=g)
    rejected[2, 3:] = torch.randint(50, 90, (T - 3,), generator=g)
    lengths_c = [8, 7, 10, 6]
    lengths_r = [6, 10, 9, 6]
    ids = torch.cat([chosen, rejected])
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths_c + lengths_r):
        mask[row, :n] = 1
    ids = torch.where(mask.bool(), ids, torch.zeros_like(ids))
    values = torch.randn((8, T), generator=g)
    loss, cs, rs = reward_model_loss(values, ids, mask)
    return {"values": tensor_json(values), "input_ids": tensor_json(ids), "attention_mask": tensor_json(mask),
            "loss": loss.item(), "chosen_scores": tensor_json(cs), "rejected_scores": tensor_json(rs)}


def schedules():
    out = {}
    for name in ["linear", "cosine", "constant", "constant_with_warmup"]:
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.AdamW([p], lr=1.0)
        sched = transformers.get_scheduler(name, opt, num_warmup_steps=3, num_training_steps=10)
        lrs = []
        for _ in range(12):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        out[name] = {"warmup": 3, "total": 10, "multipliers": lrs}
    return out


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "fixtures", "engine")
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    for name, content in [("sft_loss.json", sft_cases()), ("sft_gradients.json", sft_gradient_cases()),
                          ("rm_loss.json", rm_case()), ("schedules.json", schedules())]:
        with open(os.path.join(out_dir, name), "w") as f:
            json.dump(content, f, indent=1)
            f.write("\n")
    print("wrote", out_dir)


if __name__ == "__main__":
    main()

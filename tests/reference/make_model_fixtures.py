#!/usr/bin/env python3
"""Builds the reference fixtures of the decoder models under fixtures/models/.

Hugging Face transformers is the reference: for a tiny byte-level BPE tokenizer and four
tiny random models (OPT pre-LN, OPT post-LN with a projection like OPT-350m, GPT-2, Llama
with GQA saved sharded) it records the logits of a left- and a right-padded batch and the
greedy continuations of left-padded prompts, so the C++ models are checked against
transformers, not against themselves. Deterministic: rerunning it rewrites the same files
(given the versions recorded in VERSIONS.json).

Semantics of expected.safetensors (one per model directory):
  forward_left.* / forward_right.*   left- / right-padded batch, (B=3, T=12)
    input_ids       (B, T) int64
    attention_mask  (B, T) int64, 1 = real token
    position_ids    (B, T) int64, what the model used: cumsum(mask) - 1 with padding set
                    to 1 as generate() computes them; for OPT the positions OPT computes
                    itself from the mask, cumsum(mask) * mask - 1 (padding = -1, which its
                    embedding offset of 2 turns into row 1)
    logits          (B, T, V) float32. Only positions where attention_mask == 1 are
                    meaningful: logits at padding positions depend on how a backend masks
                    rows with no visible key, so never compare them.
  greedy.input_ids       (B, T0) int64 left-padded prompts
  greedy.attention_mask  (B, T0) int64
  greedy.sequences       (B, T0 + n) int64 from generate(max_new_tokens=16, do_sample=False);
                         rows that emitted eos continue with pad. Every greedy step was checked
                         to have a top-2 logit gap > 1e-3, so float noise cannot flip a token.
expected.json holds the prompt texts, the seed and the special token ids.

Usage: python3 tests/reference/make_model_fixtures.py [OUT_DIR]
"""
import json
import os
import shutil
import sys

import safetensors
import safetensors.torch
import tokenizers
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, OPTConfig,
                          OPTForCausalLM, PreTrainedTokenizerFast)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "fixtures", "models")

CORPUS = [
    "the cat sat on the mat and the dog sat on the log",
    "a quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore",
    "to be or not to be, that is the question",
    "the rain in spain stays mainly in the plain",
    "hello world! hello there, how are you today?",
    "numbers like 1, 2, 3 and 42 are small; 1000 is bigger.",
    "the model reads tokens and predicts the next token",
    "we train small models on small data to test big ideas",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u2014 bytes beyond ascii stay lossless",
] * 4

# Tokenized with <s> prepended these have 12, 9 and 4 tokens: one row needs no padding.
FORWARD_TEXTS = ["the cat sat on the mat and", "hello world", "to be"]
GREEDY_TEXTS = ["the dog", "she sells sea", "a"]
SEQ_LEN = 12
MAX_NEW_TOKENS = 16
MIN_GREEDY_GAP = 1e-3
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]


def make_tokenizer():
    """Tiny byte-level BPE: ByteLevel pre-tokenizer and decoder, <s> prepended to every text."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>",
                                   model_input_names=["input_ids", "attention_mask"])


def model_specs(vocab, ids):
    """The four tiny configurations; `sharded` gives the max_shard_size for save_pretrained."""
    common = dict(vocab_size=vocab, **ids)
    return [
        ("opt", OPTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=64,
                          max_position_embeddings=64, word_embed_proj_dim=32, do_layer_norm_before=True,
                          dropout=0.0, attention_dropout=0.0, activation_function="relu", **common),
         OPTForCausalLM, None),
        ("opt_postln", OPTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=64,
                                 max_position_embeddings=64, word_embed_proj_dim=16,
                                 do_layer_norm_before=False, dropout=0.0, attention_dropout=0.0,
                                 activation_function="relu", **common),
         OPTForCausalLM, None),
        ("gpt2", GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=64, resid_pdrop=0.0,
                            embd_pdrop=0.0, attn_pdrop=0.0, **common),
         GPT2LMHeadModel, None),
        ("llama", LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
                              rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False,
                              **common),
         LlamaForCausalLM, "60KB"),
    ]


@torch.no_grad()
def reinitialise(model, seed):
    """Larger weights than HF's init (std 0.02) so logits are spread and argmax is robust."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if p.dim() == 1 and name.endswith("weight"):  # LayerNorm / RMSNorm gains
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
        elif name.endswith("bias"):
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        else:
            p.copy_(0.4 * torch.randn(p.shape, generator=gen))


def position_ids_for(family, mask):
    """The positions the model sees for a padded batch (see the module docstring)."""
    if family.startswith("opt"):
        return (torch.cumsum(mask, dim=1) * mask - 1).long()
    return (torch.cumsum(mask, dim=1) - 1).masked_fill(mask == 0, 1).long()


@torch.no_grad()
def forward_fixture(family, model, tok, side):
    enc = tok(FORWARD_TEXTS, padding="max_length", max_length=SEQ_LEN, padding_side=side,
              return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]  # (B, T)
    assert ids.shape == (len(FORWARD_TEXTS), SEQ_LEN), ids.shape
    assert mask.sum(1).max() == SEQ_LEN, "the longest forward text must fill SEQ_LEN"
    pos = position_ids_for(family, mask)
    if family.startswith("opt"):
        logits = model(input_ids=ids, attention_mask=mask).logits  # OPT derives pos itself
    else:
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    prefix = f"forward_{side}."
    return {prefix + "input_ids": ids, prefix + "attention_mask": mask,
            prefix + "position_ids": pos, prefix + "logits": logits.float().contiguous()}


@torch.no_grad()
def greedy_fixture(model, tok):
    """Greedy generate, or None when some step's top-2 gap is too small (then reseed)."""
    enc = tok(GREEDY_TEXTS, padding=True, padding_side="left", return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                         output_logits=True, return_dict_in_generate=True)
    prompt_len = enc["input_ids"].shape[1]
    finished = torch.zeros(len(GREEDY_TEXTS), dtype=torch.bool)
    for step, logits in enumerate(out.logits):  # each (B, V)
        top2 = logits.float().topk(2, dim=-1).values
        gap = top2[:, 0] - top2[:, 1]
        if bool(((gap <= MIN_GREEDY_GAP) & ~finished).any()):
            return None
        finished |= out.sequences[:, prompt_len + step] == tok.eos_token_id
    return {"greedy.input_ids": enc["input_ids"], "greedy.attention_mask": enc["attention_mask"],
            "greedy.sequences": out.sequences}


def build_model(name, config, cls, shard, tok, versions):
    out_dir = os.path.join(OUT, name)
    shutil.rmtree(out_dir, ignore_errors=True)
    for seed in range(1000, 1100):
        torch.manual_seed(seed)
        model = cls(config).eval()
        reinitialise(model, seed)
        greedy = greedy_fixture(model, tok)
        if greedy is not None:
            break
    else:
        raise SystemExit(f"{name}: no seed in 1000..1099 gives greedy top-2 gaps > {MIN_GREEDY_GAP}")
    expected = {}
    for side in ("left", "right"):
        expected.update(forward_fixture(name, model, tok, side))
    expected.update(greedy)
    # Both paddings must agree where the mask is 1: a cheap check of the masking itself.
    for row in range(len(FORWARD_TEXTS)):
        left = expected["forward_left.logits"][row][expected["forward_left.attention_mask"][row] == 1]
        right = expected["forward_right.logits"][row][expected["forward_right.attention_mask"][row] == 1]
        assert torch.allclose(left, right, atol=1e-4), f"{name}: left/right padding disagree"

    kwargs = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(out_dir, safe_serialization=True, **kwargs)
    tok.save_pretrained(out_dir)
    shards = [f for f in os.listdir(out_dir) if f.startswith("model-")]
    assert (len(shards) in (2, 3)) if shard else not shards, f"{name}: shards {shards}"
    safetensors.torch.save_file({k: v.contiguous() for k, v in expected.items()},
                                os.path.join(out_dir, "expected.safetensors"), metadata={"format": "pt"})
    meta = {"forward_texts": FORWARD_TEXTS, "greedy_texts": GREEDY_TEXTS, "seed": seed,
            "max_new_tokens": MAX_NEW_TOKENS, "pad_token_id": tok.pad_token_id,
            "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
            "vocab_size": config.vocab_size, "versions": versions,
            "note": "compare logits only where attention_mask == 1"}
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"{name}: seed {seed}, sequences {list(expected['greedy.sequences'].shape)}, "
          f"files {sorted(os.listdir(out_dir))}")


def dtype_fixture():
    """One small tensor per safetensors dtype, values the C++ test rebuilds exactly."""
    half_values = torch.tensor([[-1.5, 0.0, 2.25], [-0.0, 1024.0, float("inf")]])  # exact in F16/BF16
    tensors = {
        "f64": torch.tensor([[1.0 / 3.0, -2.5e300], [5e-324, float("-inf")]], dtype=torch.float64),
        "f32": torch.tensor([[0.1, -3.5, 1e-40], [3.4e38, float("nan"), -0.0]], dtype=torch.float32),
        "f16": half_values.to(torch.float16),
        "bf16": half_values.to(torch.bfloat16),
        "i64": torch.tensor([-(2**63), -1, 0, 2**62 + 7], dtype=torch.int64),
        "i32": torch.tensor([-(2**31), -7, 2**31 - 1], dtype=torch.int32),
        "i16": torch.tensor([-32768, 12345, 32767], dtype=torch.int16),
        "i8": torch.tensor([[-128, -1], [0, 127]], dtype=torch.int8),
        "u8": torch.tensor([0, 1, 128, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True], dtype=torch.bool),
        "empty": torch.zeros((0, 3), dtype=torch.float32),
        "scalar": torch.tensor(2.5, dtype=torch.float32),
    }
    path = os.path.join(OUT, "safetensors_dtypes.safetensors")
    safetensors.torch.save_file(tensors, path, metadata={"format": "pt", "made_by": "make_model_fixtures.py"})
    print(f"dtypes: {path}")


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "tokenizers": tokenizers.__version__, "safetensors": safetensors.__version__}
    print("versions:", versions)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "VERSIONS.json"), "w") as f:
        json.dump(versions, f, indent=2)
        f.write("\n")

    tok = make_tokenizer()
    ids = {"pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id,
           "eos_token_id": tok.eos_token_id}
    for name, config, cls, shard in model_specs(len(tok), ids):
        config._attn_implementation = "eager"  # no fused-kernel ambiguity on padded rows
        build_model(name, config, cls, shard, tok, versions)
    dtype_fixture()


if __name__ == "__main__":
    main()

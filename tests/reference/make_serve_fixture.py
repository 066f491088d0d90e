#!/usr/bin/env python3
"""Builds fixtures/models/opt_ascii/, the tiny model the `troupe serve` tests run.

A random OPT (hidden 64, 2 layers, context 256) with a byte-level BPE tokenizer trained
on ASCII text only, so every token decodes to ASCII: whatever the random model
generates is valid UTF-8, and an answer sent back as the next turn's history is the
text the model produced (the other fixtures' tokenizers hold all 256 bytes, whose
random sequences are not UTF-8). The context leaves room for multi-turn chats.
Deterministic given the versions in VERSIONS.json.

Usage: python3 tests/reference/make_serve_fixture.py [OUT_DIR]
"""
import os
import random
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import OPTConfig, OPTForCausalLM, PreTrainedTokenizerFast


def corpus(seed=0):
    rng = random.Random(seed)
    words = ("the a of to and in is it you that he was for on are with as his they be at one have this from "
             "or had by hot word but what some we can out other were all there when up use your how said an each "
             "she which do their time if will way about many then them write would like so these her long make "
             "thing see him two has look more day could go come did number sound no most people my over know "
             "water than call first who may down side been now find Human Assistant hello question answer cat dog "
             "colour blue red green story tell me joke short plus 1 2 3 4 5 6 7 8 9 0 . , ? ! : ; ' - ( )").split()
    for _ in range(3000):
        yield " ".join(rng.choice(words) for _ in range(rng.randint(3, 16)))
    yield "\n\nHuman: hello\n\nAssistant: hi"


def main(out):
    os.makedirs(out, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                  show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    # OPT's tokenizer starts every text with </s>.
    tok.post_processor = processors.TemplateProcessing(single="</s> $A", pair="</s> $A </s> $B",
                                                       special_tokens=[("</s>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="</s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")
    fast.save_pretrained(out)
    torch.manual_seed(1234)
    config = OPTConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                       ffn_dim=128, max_position_embeddings=256, word_embed_proj_dim=64, do_layer_norm_before=True,
                       pad_token_id=1, bos_token_id=2, eos_token_id=2, dropout=0.0, attention_dropout=0.0)
    model = OPTForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)  # spread the logits: greedy answers vary with the prompt
    model.save_pretrained(out, safe_serialization=True)
    for name in ("generation_config.json",):
        path = os.path.join(out, name)
        if os.path.exists(path):
            os.remove(path)
    print(f"wrote {out}: vocab {tok.get_vocab_size()}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "fixtures", "models", "opt_ascii"))

#!/usr/bin/env python3
"""Builds the tokenizer reference fixtures with Hugging Face `tokenizers`,
`transformers` and `sentencepiece`, independently of troupe's C++ code.

Writes tests/reference/fixtures/tokenizer/:
  bpe/               byte-level BPE trained with `tokenizers`, saved by
                     PreTrainedTokenizerFast.save_pretrained (OPT-like `</s> $A`)
  bpe_prefix/        the same model with add_prefix_space, ignore_merges, an NFKC
                     normalizer, RobertaProcessing and merges in the old "a b" form
  bpe_sequence/      the same model with Sequence pre-tokenizer (Split + ByteLevel
                     without regex) and post-processor (ByteLevel + "<s> $A </s>")
  bpe_llama3/        the same model with Llama 3's Split pattern, ignore_merges and a
                     "<s> $A" template
  bpe_vocab_merges/  the same vocabulary as GPT-2 style vocab.json + merges.txt,
                     saved by the slow GPT2Tokenizer (add_bos_token like OPT)
  spm/               a tiny SentencePiece BPE model (byte fallback) trained with `sentencepiece`
  cases.json         ids and decoded strings each reference library produces

Deterministic: same versions, same output. Run from anywhere:
  python3 tests/reference/make_tokenizer_fixtures.py
"""
import json
import os
import shutil
import sys

PINNED = {"tokenizers": "0.22.1", "transformers": "4.57.6", "sentencepiece": "0.2.1"}

import sentencepiece as spm  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "tokenizer")

CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog didn't care; it's lazy.",
    "Troupe trains ChatGPT-style models: supervised fine-tuning, a reward model, then PPO.",
    "We'll see what they've done. I'm sure you'd like it, and they're ready.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9, 10, 42, 3.14159, 2024-05-17, 1,000,000 and 99%.",
    "Café, naïve, résumé, über, façade, jalapeño, Ångström, crème brûlée.",
    "東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다.",
    "Emoji: 🤗 🚀 👍🏽 ❤️ and the family 👨‍👩‍👧 are multi-codepoint.",
    "def train(model, data):\n    for batch in data:\n        loss = model(batch)\n        loss.backward()\n",
    "Tabs\tand\tnewlines\n\nare whitespace too.   Multiple   spaces   here.",
    "Hello world! Hello, World? hello... HELLO!!! <html><body>text</body></html>",
    "The reward model scores each answer; the actor learns from the advantage estimates.",
    "Supervised fine-tuning uses prompt and chosen pairs from public datasets.",
    "It's the model's turn. She'll answer, he'd ask, we're here, they've left.",
    "Α, β, γ: Greek letters. Кириллица тоже. עברית ו العربية.",
    "email@example.com https://example.org/path?query=1&x=y #hashtag @mention",
] * 3

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>"]

CASES = [
    "",
    "Hello world",
    "Hello world!",
    " leading space",
    "   three leading spaces",
    "trailing spaces   ",
    "The model's answer'll be ready; it's done, I'm sure, you'd see, we've won, they're here.",
    "'s 'S 'll ''s x's",
    "Café naïve résumé",
    "東京は日本の首都です。",
    "서울 北京 Кириллица",
    "🤗 emoji 🚀👍🏽 family 👨‍👩‍👧",
    "Digits 12345 and 3.14159 and 2024-05-17",
    "tabs\tand\ttabs\t\t\tmore",
    "new\nline\n\n\nand\r\nwindows",
    "  \n  mixed \t\n whitespace  \n",
    "Hello</s>world",
    "<s>Hello</s> <s> world</s>",
    "a <pad><pad> b",
    "hello <mask> world <mask>",
    "a xyzzy b axyzzyb xyzzy",
    "I love New York and New Yorkers",
    "def f(x):\n    return x * 2  # comment\n",
    "unseen words: floccinaucinihilipilification zyzzyva",
    "\u00a0non-breaking\u2003em space\u3000ideographic",
    "punctuation!!! ??? ... --- ((()))",
    "x" * 300,
    "x<|sep|>y <|sep|>",
    "'",
    "don't'",
    "'S'T'RE 'Ll",
    "\u0085next\u2028line\u2029para",
    "Arabic-Indic digits \u0661\u0662\u0663 and \u00bd \u2167",
    "combining e\u0301 vs \u00e9, zero\u200bwidth, joiner a\u200db",
    "ligature \ufb01ne and fullwidth \uff28\uff45\uff4c\uff4c\uff4f",
    " \n \t\n",
    "end with space ",
    "12345678 1.5 x1y22z333 ١٢٣٤",
    "a  \n  b\n\n\tc\r\n\r\nd  \t",
    "(parens) [brackets] {braces}\n\n;;\n",
    "I'M HE'S 'Sure 'Ll \u017f'\u017f",
]


def check_versions():
    found = {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__,
             "sentencepiece": spm.__version__}
    print("versions:", json.dumps(found))
    for name, want in PINNED.items():
        if found[name] != want:
            sys.exit(f"{name} {found[name]} found, fixtures are pinned to {want}: run scripts/setup")
    return found


def train_bpe():
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, min_frequency=2, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    tok.add_tokens([AddedToken("xyzzy", single_word=True), AddedToken("New York", normalized=True)])
    eos = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(single="</s> $A", pair="</s> $A </s> $B",
                                                       special_tokens=[("</s>", eos)])
    return tok


def save_fast(tok, folder):
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="</s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>", mask_token="<mask>", clean_up_tokenization_spaces=False)
    fast.save_pretrained(folder)


LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def write_variant(src_folder, folder, change):
    """A copy of src_folder's tokenizer.json edited by `change`, loaded back."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(src_folder, "tokenizer.json"), encoding="utf-8") as f:
        spec = json.load(f)
    change(spec)
    with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(spec, f, ensure_ascii=False, indent=1)
    return Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))


def prefix_variant(spec):
    spec["pre_tokenizer"]["add_prefix_space"] = True
    spec["normalizer"] = {"type": "NFKC"}
    spec["model"]["ignore_merges"] = True
    spec["model"]["merges"] = [" ".join(pair) for pair in spec["model"]["merges"]]
    spec["post_processor"] = {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0],
                              "trim_offsets": True, "add_prefix_space": True}


def sequence_variant(spec):
    gpt2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
    spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": gpt2}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    spec["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "</s>", "type_id": 0}}],
         "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]},
                            "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}]}


def save_vocab_merges(tok, folder):
    tmp = os.path.join(folder, "model")
    os.makedirs(tmp, exist_ok=True)
    tok.model.save(tmp)
    slow = transformers.GPT2Tokenizer(
        vocab_file=os.path.join(tmp, "vocab.json"), merges_file=os.path.join(tmp, "merges.txt"),
        bos_token="</s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        add_bos_token=True, clean_up_tokenization_spaces=False)
    slow.add_tokens(["<|sep|>"])
    slow.save_pretrained(folder)
    shutil.rmtree(tmp)
    return slow


def train_spm(folder):
    os.makedirs(folder, exist_ok=True)
    prefix = os.path.join(folder, "tokenizer")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS), model_prefix=prefix, vocab_size=500, model_type="bpe",
        character_coverage=0.98, byte_fallback=True, bos_id=1, eos_id=2, unk_id=0, pad_id=3,
        num_threads=1, minloglevel=2, shuffle_input_sentence=False,
        normalization_rule_name="identity")
    os.remove(prefix + ".vocab")
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
                   "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}, f, indent=1)
    return spm.SentencePieceProcessor(model_file=prefix + ".model")


def hf_cases(tok):
    rows = []
    for text in CASES:
        plain = tok.encode(text, add_special_tokens=False).ids
        special = tok.encode(text, add_special_tokens=True).ids
        rows.append({"text": text, "ids": plain, "ids_special": special,
                     "decoded": tok.decode(plain, skip_special_tokens=False),
                     "decoded_skip_special": tok.decode(special, skip_special_tokens=True)})
    return rows


def slow_cases(slow):
    rows = []
    for text in CASES:
        plain = slow.encode(text, add_special_tokens=False)
        special = slow.encode(text, add_special_tokens=True)
        rows.append({"text": text, "ids": plain, "ids_special": special,
                     "decoded": slow.decode(plain, spaces_between_special_tokens=False),
                     "decoded_skip_special": slow.decode(special, skip_special_tokens=True,
                                                         spaces_between_special_tokens=False)})
    return rows


def spm_cases(sp):
    rows = []
    for text in CASES:
        plain = sp.encode(text)
        rows.append({"text": text, "ids": plain, "ids_special": [sp.bos_id()] + plain,
                     "decoded": sp.decode(plain), "decoded_skip_special": sp.decode(plain)})
    return rows


def llama3_variant(spec):
    spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    spec["model"]["ignore_merges"] = True
    spec["post_processor"] = {"type": "TemplateProcessing",
                              "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                         {"Sequence": {"id": "A", "type_id": 0}}],
                              "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                              "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}}}


def main():
    found = check_versions()
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    tok = train_bpe()
    save_fast(tok, os.path.join(OUT, "bpe"))
    bpe = Tokenizer.from_file(os.path.join(OUT, "bpe", "tokenizer.json"))
    prefix = write_variant(os.path.join(OUT, "bpe"), os.path.join(OUT, "bpe_prefix"), prefix_variant)
    sequence = write_variant(os.path.join(OUT, "bpe"), os.path.join(OUT, "bpe_sequence"), sequence_variant)
    llama3 = write_variant(os.path.join(OUT, "bpe"), os.path.join(OUT, "bpe_llama3"), llama3_variant)
    slow = save_vocab_merges(tok, os.path.join(OUT, "bpe_vocab_merges"))
    sp = train_spm(os.path.join(OUT, "spm"))
    cases = {"versions": found, "bpe": hf_cases(bpe), "bpe_prefix": hf_cases(prefix),
             "bpe_sequence": hf_cases(sequence),
             "bpe_llama3": hf_cases(llama3),
             "bpe_vocab_merges": slow_cases(slow), "spm": spm_cases(sp),
             "spm_ids": {"bos": sp.bos_id(), "eos": sp.eos_id(), "pad": sp.pad_id(),
                         "vocab_size": sp.get_piece_size()}}
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=True, indent=None, separators=(",", ":"))
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()

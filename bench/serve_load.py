#!/usr/bin/env python3
"""`troupe serve` under load: N concurrent streaming clients (1, 4, 16 by default) send
the same requests; tokens/s, time to first token and inter-token latency (p50, p99) for
each N, and the speed-up over N = 1 (the requests one after another). Beside it,
transformers' generate over the same prompts, batch by batch (transformers 4.57.6 has
no server of its own to run offline: `transformers serve` needs extra packages and the
hub, so its batched generate() stands in as the peer).

    python3 bench/serve_load.py [--build build] [--clients 1 4 16] [--requests 32]
        [--prompt_len 64] [--new_tokens 64] [--threads 2] [--inference_dtype fp32] [--max_prefill_tokens 0]
        [--skip_transformers] [--json out.json]

The model is OPT-125m-shaped with random weights (no hub access here); its tokenizer is
a byte-level BPE of the same vocabulary size trained on generated words. Greedy, EOS
ignored, so every request generates --new_tokens tokens on both sides."""
import argparse
import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import OPTConfig, OPTForCausalLM, PreTrainedTokenizerFast


def make_tokenizer(vocab_size, seed=0):
    rng = random.Random(seed)
    syllables = [a + b for a in "bcdfghjklmnprstvwz" for b in "aeiou"] + list("aeiou")
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(400000)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator((" ".join(words[i:i + 64]) for i in range(0, len(words), 64)), trainer)
    return tok, words


def make_model_dir(path, seed=0):
    tok, words = make_tokenizer(50272, seed)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="</s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")
    config = OPTConfig(vocab_size=tok.get_vocab_size(), hidden_size=768, num_hidden_layers=12,
                       num_attention_heads=12, ffn_dim=3072, max_position_embeddings=2048, word_embed_proj_dim=768,
                       do_layer_norm_before=True, pad_token_id=1, bos_token_id=2, eos_token_id=2)
    torch.manual_seed(seed)
    model = OPTForCausalLM(config).eval()
    model.save_pretrained(path, safe_serialization=True)
    fast.save_pretrained(path)
    return model, fast, words


def prompts_for(words, tokenizer, count, length, seed=1):
    """Texts of exactly `length` tokens (the tokenizer adds none)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        ids = tokenizer(" ".join(rng.choice(words) for _ in range(length * 2)), add_special_tokens=False).input_ids
        out.append(tokenizer.decode(ids[:length - 1]))  # </s> comes first, as OPT's tokenizer adds it
    return out


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def stream_request(host, port, prompt, new_tokens):
    """One streamed completion: (time to first token, inter-token gaps, completion tokens)."""
    conn = http.client.HTTPConnection(host, port, timeout=600)
    body = json.dumps({"prompt": prompt, "max_tokens": new_tokens, "temperature": 0, "stream": True,
                       "ignore_eos": True, "stream_options": {"include_usage": True}})
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200, response.read()
    first, last, gaps, tokens, text = None, None, [], 0, ""
    buffer = b""
    while True:
        chunk = response.read1(65536) if hasattr(response, "read1") else response.read(1)
        if not chunk:
            break
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            data = event[len(b"data: "):]
            if data == b"[DONE]":
                continue
            message = json.loads(data)
            if message.get("usage"):
                tokens = message["usage"]["completion_tokens"]
            for choice in message.get("choices", []):
                if choice.get("text"):
                    now = time.perf_counter()
                    if first is None:
                        first = now - start
                    else:
                        gaps.append(now - last)
                    last = now
                    text += choice["text"]
    conn.close()
    return first, gaps, tokens, text


def run_load(host, port, prompts, new_tokens, clients):
    queue = list(enumerate(prompts))
    lock = threading.Lock()
    results = [None] * len(prompts)

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                i, prompt = queue.pop(0)
            results[i] = stream_request(host, port, prompt, new_tokens)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    tokens = sum(r[2] for r in results)
    ttft = [r[0] for r in results]
    gaps = [g for r in results for g in r[1]]
    return {"clients": clients, "seconds": wall, "tokens": tokens, "tokens_per_s": tokens / wall,
            "ttft_p50": percentile(ttft, 50), "ttft_p99": percentile(ttft, 99),
            "itl_p50": percentile(gaps, 50), "itl_p99": percentile(gaps, 99), "texts": [r[3] for r in results]}


def hf_batches(model, tokenizer, prompts, new_tokens, batch):
    tokenizer.padding_side = "left"
    total, start = 0, time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(prompts), batch):
            enc = tokenizer(prompts[i:i + batch], return_tensors="pt", padding=True)
            enc = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            out = model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                 pad_token_id=1)
            total += (out.shape[1] - enc["input_ids"].shape[1]) * out.shape[0]
    seconds = time.perf_counter() - start
    return {"batch": batch, "seconds": seconds, "tokens": total, "tokens_per_s": total / seconds}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--prompt_len", type=int, default=64)
    ap.add_argument("--new_tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--inference_dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--max_prefill_tokens", type=int, default=0, help="troupe serve's flag (0: no limit)")
    ap.add_argument("--skip_transformers", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    binary = os.path.join(args.build, "bin", "troupe")
    if not os.path.exists(binary):
        sys.exit(f"{binary} not found: build first (cmake --build {args.build} --target troupe_cli)")

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "opt-125m-random")
        model, tokenizer, words = make_model_dir(model_dir)
        prompts = prompts_for(words, tokenizer, args.requests, args.prompt_len)
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        server = subprocess.Popen([binary, "serve", "--model", model_dir, "--port", "0", "--max_batch",
                                   str(max(args.clients)), "--inference_dtype", args.inference_dtype,
                                   "--max_prefill_tokens", str(args.max_prefill_tokens)],
                                  stderr=subprocess.PIPE, text=True, env=env)
        line = ""
        while "listening on" not in line:
            line = server.stderr.readline()
            if not line:
                sys.exit("troupe serve did not start")
        host, port = re.search(r"http://([^:]+):(\d+)", line).groups()
        port = int(port)
        threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
        try:
            run_load(host, port, prompts[:2], 4, 2)  # warm up
            rows = [run_load(host, port, prompts, args.new_tokens, c) for c in args.clients]
        finally:
            server.terminate()
            server.wait(60)
        same = all(r["texts"] == rows[0]["texts"] for r in rows)
        hf = None if args.skip_transformers else hf_batches(model, tokenizer, prompts, args.new_tokens,
                                                             max(args.clients))

    base = rows[0]["tokens_per_s"]
    print(f"troupe serve, OPT-125m shape (random weights), {args.requests} requests of {args.prompt_len} prompt + "
          f"{args.new_tokens} new tokens, greedy, streamed, {args.threads} threads, inference dtype "
          f"{args.inference_dtype}, --max_batch {max(args.clients)}, --max_prefill_tokens {args.max_prefill_tokens}")
    print(f"{'clients':>7} {'tok/s':>8} {'vs 1':>6} {'TTFT p50':>9} {'TTFT p99':>9} {'ITL p50':>8} {'ITL p99':>8} {'s':>7}")
    for r in rows:
        print(f"{r['clients']:>7} {r['tokens_per_s']:>8.1f} {r['tokens_per_s'] / base:>5.2f}x "
              f"{r['ttft_p50'] * 1e3:>7.0f}ms {r['ttft_p99'] * 1e3:>7.0f}ms {r['itl_p50'] * 1e3:>6.0f}ms "
              f"{r['itl_p99'] * 1e3:>6.0f}ms {r['seconds']:>7.1f}")
    print(f"every client count got the same texts: {same}")
    if hf:
        print(f"transformers {__import__('transformers').__version__} generate, batches of {hf['batch']} "
              f"(left-padded): {hf['tokens_per_s']:.1f} tok/s ({hf['seconds']:.1f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": [{k: v for k, v in r.items() if k != "texts"} for r in rows], "transformers": hf,
                       "same_texts": same}, f, indent=2)


if __name__ == "__main__":
    main()

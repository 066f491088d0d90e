#!/usr/bin/env python3
"""The official openai client against `troupe serve` on a tiny model:

- a greedy chat completion equals `troupe chat`'s reply to the same turns;
- a streamed completion concatenates to the text without streaming (chat and text);
- 8 concurrent clients each get the answer they get alone;
- usage counts the tokens the tokenizer counts.

  test_openai_client.py TROUPE FIXTURE_MODEL_DIR WORK_DIR
"""
import concurrent.futures
import sys

from openai import OpenAI
from tokenizers import Tokenizer

from serve_helpers import copy_model, serve, troupe_chat

KEY = "test-key-123"


def chat(client, messages, max_tokens, stream=False, **kw):
    if not stream:
        r = client.chat.completions.create(model="tiny-opt", messages=messages, temperature=0, max_tokens=max_tokens, **kw)
        return r.choices[0].message.content, r.choices[0].finish_reason, r.usage
    text, finish, usage = "", None, None
    for chunk in client.chat.completions.create(model="tiny-opt", messages=messages, temperature=0,
                                                max_tokens=max_tokens, stream=True,
                                                stream_options={"include_usage": True}, **kw):
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return text, finish, usage


def complete(client, prompt, max_tokens, stream=False, **kw):
    if not stream:
        r = client.completions.create(model="tiny-opt", prompt=prompt, temperature=0, max_tokens=max_tokens, **kw)
        return r.choices[0].text, r.choices[0].finish_reason, r.usage
    text, finish = "", None
    for chunk in client.completions.create(model="tiny-opt", prompt=prompt, temperature=0, max_tokens=max_tokens,
                                           stream=True, **kw):
        assert chunk.object == "text_completion"
        for choice in chunk.choices:
            text += choice.text
            finish = choice.finish_reason or finish
    return text, finish, None


def main(troupe, fixture, work):
    model = copy_model(fixture, work)
    tokenizer = Tokenizer.from_file(f"{model}/tokenizer.json")
    count = lambda text: len(tokenizer.encode(text, add_special_tokens=True).ids)
    checks = 0
    with serve(troupe, model, "--api_key", KEY, "--max_batch", "8", "--served_model_name", "tiny-opt") as server:
        assert server.url.startswith("http://127.0.0.1:"), server.url  # loopback unless --host says otherwise
        client = OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60)
        assert [m.id for m in client.models.list().data] == ["tiny-opt"]

        # Greedy chat completions equal `troupe chat`, turn by turn.
        turns = ["hello there", "and then?"]
        expected = troupe_chat(troupe, model, turns, max_new_tokens=8)
        messages = []
        for turn, reply in zip(turns, expected):
            messages.append({"role": "user", "content": turn})
            text, finish, usage = chat(client, messages, max_tokens=8)
            assert text == reply, f"turn {turn!r}: serve {text!r}, troupe chat {reply!r}"
            prompt = "".join(("\n\nHuman: " if m["role"] == "user" else "\n\nAssistant: ") + m["content"]
                             for m in messages) + "\n\nAssistant:"
            assert usage.prompt_tokens == count(prompt), (usage, count(prompt))
            assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
            assert 1 <= usage.completion_tokens <= 8
            messages.append({"role": "assistant", "content": text})
            checks += 1

        # Streams concatenate to the whole answer; usage as the tokenizer counts.
        for question in ["What is 2 plus 3?", "Tell me about cats", "x"]:
            whole = chat(client, [{"role": "user", "content": question}], max_tokens=12)
            streamed = chat(client, [{"role": "user", "content": question}], max_tokens=12, stream=True)
            assert whole[:2] == streamed[:2], (whole, streamed)
            assert whole[2].prompt_tokens == streamed[2].prompt_tokens
            assert whole[2].completion_tokens == streamed[2].completion_tokens
            checks += 1
        for prompt in ["Once upon a time", "The capital of France is", "1 2 3"]:
            whole = complete(client, prompt, max_tokens=10)
            streamed = complete(client, prompt, max_tokens=10, stream=True)
            assert whole[:2] == streamed[:2], (whole, streamed)
            assert whole[2].prompt_tokens == count(prompt), (whole[2], count(prompt))
            if whole[1] == "length":
                assert whole[2].completion_tokens == 10
            checks += 1

        # Eight clients at once, with different prompts and lengths, so rows join and
        # leave the batch mid-decode: each gets its answer alone, bit for bit.
        jobs = [(f"question number {i} " + "word " * (i % 4), 4 + 3 * i, i % 2 == 1) for i in range(8)]
        alone = [chat(client, [{"role": "user", "content": q}], max_tokens=n, stream=s)[:2] for q, n, s in jobs]
        alone_text = [complete(client, q, max_tokens=n)[:2] for q, n, _ in jobs]
        for _ in range(2):
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                together = list(pool.map(lambda j: chat(client, [{"role": "user", "content": j[0]}], max_tokens=j[1],
                                                        stream=j[2])[:2], jobs))
                together_text = list(pool.map(lambda j: complete(client, j[0], max_tokens=j[1])[:2], jobs))
            assert together == alone, (together, alone)
            assert together_text == alone_text, (together_text, alone_text)
            checks += 1

        # Seeded sampling is reproducible, alone or not.
        sampled = [client.completions.create(model="tiny-opt", prompt="Once", temperature=0.9, top_p=0.95, seed=7,
                                             max_tokens=12).choices[0].text for _ in range(2)]
        assert sampled[0] == sampled[1], sampled
        checks += 1
    print(f"openai client: {checks} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))

#!/usr/bin/env python3
"""Bad input against `troupe serve`: each gets the status and OpenAI's error object it
should, none crashes the server or changes another request's answer; a client gone
mid-stream frees its row; SIGTERM finishes the requests in flight and exits 0.

  test_bad_input.py TROUPE FIXTURE_MODEL_DIR WORK_DIR
"""
import http.client
import json
import re
import socket
import sys
import threading
import time
import urllib.parse

from serve_helpers import copy_model, serve

KEY = "k3y"
AUTH = {"Authorization": "Bearer " + KEY, "Content-Type": "application/json"}


def request(url, method, path, body=None, headers=AUTH):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    data = body if isinstance(body, (bytes, type(None))) else (body if isinstance(body, str) else json.dumps(body))
    conn.request(method, path, body=data, headers=headers)
    r = conn.getresponse()
    raw = r.read()
    conn.close()
    try:
        return r.status, json.loads(raw)
    except ValueError:
        return r.status, raw


def expect_error(url, status, path, body, param=None, message=None, headers=AUTH, method="POST"):
    got, payload = request(url, method, path, body, headers)
    assert got == status, f"{path} {body!r:.80}: status {got}, expected {status}: {payload!r:.300}"
    assert isinstance(payload, dict) and set(payload["error"]) == {"message", "type", "param", "code"}, payload
    if param is not None:
        assert payload["error"]["param"] == param, payload
    if message is not None:
        assert re.search(message, payload["error"]["message"]), payload
    return payload


def greedy(url, content, max_tokens=8):
    status, payload = request(url, "POST", "/v1/chat/completions",
                              {"messages": [{"role": "user", "content": content}], "temperature": 0,
                               "max_tokens": max_tokens})
    assert status == 200, payload
    return payload["choices"][0]["message"]["content"]


def stream_and_hang_up(url, max_tokens):
    """Starts a streamed completion, reads its first bytes, and closes the socket."""
    parts = urllib.parse.urlsplit(url)
    body = json.dumps({"prompt": "a", "max_tokens": max_tokens, "temperature": 0, "stream": True})
    s = socket.create_connection((parts.hostname, parts.port))
    s.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
    s.recv(64)
    s.close()


def main(troupe, fixture, work):
    model = copy_model(fixture, work)
    checks = 0
    with serve(troupe, model, "--api_key", KEY, "--max_batch", "2", "--max_body_bytes", "4096",
               "--served_model_name", "tiny-opt") as server:
        url = server.url
        before = greedy(url, "hello there")
        chat = "/v1/chat/completions"
        user = [{"role": "user", "content": "hi"}]
        cases = [
            (401, chat, {"messages": user}, {"headers": {"Content-Type": "application/json"}}),
            (401, chat, {"messages": user}, {"headers": {"Authorization": "Bearer wrong"}}),
            (401, "/v1/models", None, {"headers": {}, "method": "GET"}),
            (413, chat, {"messages": [{"role": "user", "content": "x" * 5000}]}, {}),
            (400, chat, {"messages": user, "max_tokens": 0}, {"param": "max_tokens", "message": "max_tokens"}),
            (400, chat, {"messages": user, "max_tokens": 100000}, {"param": "max_tokens", "message": r"\[1, 255\]"}),
            (400, "/v1/completions", {"prompt": "hi", "max_tokens": -3}, {"param": "max_tokens"}),
            (400, chat, {"messages": [{"role": "user", "content": "word " * 400}]},
             {"param": "messages", "message": r"is \d{3} tokens.*context is 256 tokens"}),
            (400, "/v1/completions", {"prompt": "word " * 10, "max_tokens": 250},
             {"param": "max_tokens", "message": r"\d+ tokens and max_tokens is 250.*context of 256"}),
            (400, chat, '{"messages": [', {"param": None, "message": "not valid JSON"}),
            (400, chat, b'{"messages": "\xff"}', {"message": "not valid JSON"}),
            (400, chat, "[1, 2]", {"message": "JSON object"}),
            (400, chat, {"messages": "hi"}, {"param": "messages"}),
            (400, chat, {"messages": []}, {"param": "messages"}),
            (400, chat, {"messages": [{"role": "robot", "content": "x"}]}, {"param": "messages[0].role"}),
            (400, chat, {"messages": [{"role": "user", "content": 5}]}, {"param": "messages[0].content"}),
            (400, chat, {"messages": user, "temperature": "hot"}, {"param": "temperature"}),
            (400, chat, {"messages": user, "temperature": 1e400}, {}),
            # json.dumps writes 1e400 as Infinity; a number literal past double's range is JSON too.
            (400, chat, '{"messages": [{"role": "user", "content": "hi"}], "temperature": 1e999}',
             {"param": None, "message": "not valid JSON"}),
            (400, chat, {"messages": user, "top_p": 0}, {"param": "top_p"}),
            (400, chat, {"messages": user, "top_k": -5}, {"param": "top_k"}),
            (400, chat, {"messages": user, "stream": "yes"}, {"param": "stream"}),
            (400, chat, {"messages": user, "stop": 3}, {"param": "stop"}),
            (400, chat, {"messages": user, "max_tokens": 2.5}, {"param": "max_tokens"}),
            (400, chat, {"messages": user, "max_tokens": 2 ** 70}, {"param": "max_tokens"}),
            (400, chat, {"messages": user, "n": 2}, {"param": "n"}),
            (400, chat, {"messages": user, "seed": "x"}, {"param": "seed"}),
            (400, "/v1/completions", {"prompt": {"a": 1}}, {"param": "prompt"}),
            (400, "/v1/completions", {"prompt": [999999]}, {"param": "prompt"}),
            (400, "/v1/completions", {}, {"param": "prompt"}),
            (400, chat, "[" * 3000, {}),
            (404, chat, {"messages": user, "model": "gpt-4"}, {"param": "model", "message": "tiny-opt"}),
            (404, "/v1/nothing", {"messages": user}, {}),
            (404, "/v1/chat/completions/x", None, {"method": "GET"}),
        ]
        for status, path, body, extra in cases:
            expect_error(url, status, path, body, **extra)
            checks += 1
        assert server.get("/health")["status"] == "ok"  # no key needed

        # A client gone mid-stream frees its row (the server counts the cancellation).
        cancelled = server.get("/health")["cancelled"]
        for _ in range(5):
            stream_and_hang_up(url, max_tokens=250)
            time.sleep(0.3)
            if server.get("/health")["cancelled"] > cancelled:
                break
        assert server.get("/health")["cancelled"] > cancelled, "a hung-up stream was not cancelled"
        for _ in range(100):
            if server.get("/health")["running"] == 0:
                break
            time.sleep(0.05)
        assert server.get("/health")["running"] == 0
        checks += 1

        # None of it crashed the server or changed an answer.
        assert greedy(url, "hello there") == before
        checks += 1

        # SIGTERM: requests in flight finish (a whole answer and a stream); new ones are
        # refused; the server exits 0 (serve() checks).
        result = {}

        def long_request():
            result["answer"] = greedy(url, "hello there", max_tokens=40)

        def long_stream():
            parts = urllib.parse.urlsplit(url)
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
            conn.request("POST", "/v1/completions", json.dumps({"prompt": "once", "max_tokens": 40, "temperature": 0,
                                                                 "stream": True}), AUTH)
            result["stream"] = conn.getresponse().read().decode()
            conn.close()

        expected_long = greedy(url, "hello there", max_tokens=40)
        threads = [threading.Thread(target=long_request), threading.Thread(target=long_stream)]
        for thread in threads:
            thread.start()
        for _ in range(2000):  # until the server holds them (or they are done already)
            health = server.get("/health")
            if health["running"] + health["waiting"] >= 2 or len(result) == 2:
                break
        server.process.send_signal(15)
        for thread in threads:
            thread.join(60)
        assert result.get("answer") == expected_long, result
        stream = result.get("stream", "")
        assert stream.endswith("data: [DONE]\n\n") and '"finish_reason":"length"' in stream, stream[-300:]
        assert server.process.wait(30) == 0
        try:
            status, _ = request(url, "POST", chat, {"messages": user})
            assert status == 503, status
        except OSError:
            pass  # refused: the server is gone
        checks += 1
    print(f"bad input: {checks} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))

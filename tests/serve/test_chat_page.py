#!/usr/bin/env python3
"""The chat page at "/" in headless Chromium: it asks two questions through URL
parameters, streams the answers into the page and keeps the conversation (the second
answer is the one the API gives with the first exchange in the history); "/clear"
empties it. The test drives Chromium over the DevTools protocol on a pipe and reads
the page once it marks itself done.

  test_chat_page.py TROUPE FIXTURE_MODEL_DIR WORK_DIR
"""
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from serve_helpers import copy_model, serve


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe
    (--remote-debugging-pipe: JSON messages ending in NUL, the browser reading fd 3 and
    writing fd 4), so no WebSocket client is needed."""

    def __init__(self, work):
        # A profile of its own: a browser still shutting down holds its profile's lock,
        # and a second one started on that profile may exit at once.
        self.profile = profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=work)
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # Out of the way of fds 3 and 4, which the child gets by dup2.
        moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser_r, from_browser_w)]
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)

        def child_fds():
            os.dup2(moved[0], 3)
            os.dup2(moved[1], 4)

        self.process = subprocess.Popen(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--disable-extensions", f"--user-data-dir={profile}", "--remote-debugging-pipe",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=False,
            preexec_fn=child_fds)
        for fd in moved:
            os.close(fd)
        self.write, self.read = to_browser_w, from_browser_r
        self.buffer, self.next_id = b"", 0

    def call(self, method, session=None, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.write, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                chunk = os.read(self.read, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, session, expression):
        result = self.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
        return result["result"].get("value")

    def close(self):
        try:
            self.call("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise SystemExit("no chromium found (scripts/setup installs Debian's chromium)")


def page(url, questions, work):
    """Opens the page with the questions in its URL, waits until it says done, and
    returns its turns: [{"role", "text", "chunks", "done"}]."""
    query = urllib.parse.urlencode([("q", q) for q in questions] + [("temperature", "0"), ("max_tokens", "8")])
    browser = Browser(work)
    try:
        target = browser.call("Target.createTarget", url=f"{url}/?{query}")["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        deadline = time.time() + 60
        state = None
        while time.time() < deadline:
            state = browser.evaluate(session, "document.body ? document.body.dataset.state : null")
            if state == "done":
                break
            time.sleep(0.05)
        if state != "done":
            raise AssertionError(f"the page did not finish: state {state}")
        turns = browser.evaluate(session, """JSON.stringify(Array.from(document.querySelectorAll('.turn')).map(d => ({
            role: d.classList.contains('user') ? 'user' : 'assistant', text: d.textContent,
            chunks: Number(d.dataset.chunks || 0), done: d.dataset.done === 'true',
            error: d.classList.contains('error')})))""")
        return json.loads(turns)
    finally:
        browser.close()


def api_chat(url, messages):
    body = json.dumps({"messages": messages, "temperature": 0, "max_tokens": 8}).encode()
    req = urllib.request.Request(url + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())["choices"][0]["message"]["content"]


def main(troupe, fixture, work):
    os.makedirs(work, exist_ok=True)
    model = copy_model(fixture, work)
    with serve(troupe, model, "--served_model_name", "tiny-opt") as server:
        with urllib.request.urlopen(server.url + "/", timeout=30) as r:
            html_text = r.read().decode()
        assert "<title>troupe chat</title>" in html_text
        assert not re.search(r"(src|href)\s*=|@import|https?://", html_text), "the page loads nothing from elsewhere"

        questions = ["hello there", "and then?"]
        first = api_chat(server.url, [{"role": "user", "content": questions[0]}])
        second = api_chat(server.url, [{"role": "user", "content": questions[0]},
                                       {"role": "assistant", "content": first},
                                       {"role": "user", "content": questions[1]}])
        shown = page(server.url, questions, work)
        assert [t["role"] for t in shown] == ["user", "assistant", "user", "assistant"], shown
        assert [t["text"] for t in shown] == [questions[0], first, questions[1], second], shown
        for turn in shown[1::2]:
            assert turn["done"] and not turn["error"], turn
            assert turn["chunks"] >= 2, turn  # the answer arrived in pieces: it streamed
        # Clear forgets the conversation: the next question is answered as a first turn.
        cleared = page(server.url, [questions[0], "/clear", questions[1]], work)
        alone = api_chat(server.url, [{"role": "user", "content": questions[1]}])
        assert [t["text"] for t in cleared] == [questions[1], alone], cleared
    print("chat page: 2 conversations checked")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))

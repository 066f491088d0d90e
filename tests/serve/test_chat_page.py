#!/usr/bin/env python3
"""The chat page at "/" in headless Chromium: it asks two questions through URL
parameters, streams the answers into the page and keeps the conversation (the second
answer is the one the API gives with the first exchange in the history); "/clear"
empties it. The DOM is read with --dump-dom once the page's fetches are done
(--virtual-time-budget waits for pending network requests).

  test_chat_page.py TROUPE FIXTURE_MODEL_DIR WORK_DIR
"""
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request

from serve_helpers import copy_model, serve


class Turns(html.parser.HTMLParser):
    """The page's turns: (role, text, attributes), and <body>'s attributes."""

    def __init__(self):
        super().__init__()
        self.turns, self.body, self._open = [], {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        classes = (attrs.get("class") or "").split()
        if tag == "div" and "turn" in classes:
            self._open = [("user" if "user" in classes else "assistant"), "", attrs]
            self.turns.append(self._open)

    def handle_endtag(self, tag):
        if tag == "div":
            self._open = None

    def handle_data(self, data):
        if self._open is not None:
            self._open[1] += data


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise SystemExit("no chromium found (scripts/setup installs Debian's chromium)")


def page(url, questions, work):
    query = urllib.parse.urlencode([("q", q) for q in questions] + [("temperature", "0"), ("max_tokens", "8")])
    out = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                          "--no-first-run", "--disable-extensions", f"--user-data-dir={work}/chromium-profile",
                          "--virtual-time-budget=60000", "--dump-dom", f"{url}/?{query}"],
                         capture_output=True, text=True, timeout=120)
    parser = Turns()
    parser.feed(out.stdout)
    if parser.body.get("data-state") != "done":
        raise AssertionError(f"the page did not finish: {parser.body}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return parser


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
        roles = [t[0] for t in shown.turns]
        assert roles == ["user", "assistant", "user", "assistant"], shown.turns
        assert [t[1] for t in shown.turns] == [questions[0], first, questions[1], second], shown.turns
        for turn in shown.turns[1::2]:
            assert turn[2].get("data-done") == "true", turn
            assert int(turn[2].get("data-chunks", "0")) >= (2 if len(turn[1]) > 3 else 1), turn  # it streamed
        # Clear forgets the conversation: the next question is answered as a first turn.
        cleared = page(server.url, [questions[0], "/clear", questions[1]], work)
        alone = api_chat(server.url, [{"role": "user", "content": questions[1]}])
        assert [t[1] for t in cleared.turns] == [questions[1], alone], cleared.turns
    print("chat page: 2 conversations checked")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))

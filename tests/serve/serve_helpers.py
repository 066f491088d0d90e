"""Starting and stopping `troupe serve` for the tests in this folder."""
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request


def copy_model(fixture_dir, work_dir, name="tiny-opt"):
    """A copy of a fixture model directory to serve (so the tests can add files to it)."""
    target = os.path.join(work_dir, name)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(fixture_dir, target)
    return target


class Server:
    def __init__(self, process, url, log):
        self.process = process
        self.url = url
        self.log = log

    def get(self, path, headers=None):
        request = urllib.request.Request(self.url + path, headers=headers or {})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())

    def stop(self, timeout=30):
        """SIGTERM, then the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


@contextlib.contextmanager
def serve(troupe, model_dir, *args):
    """Runs `troupe serve --model model_dir --port 0 args...` until the block ends;
    fails if it does not exit 0 on SIGTERM."""
    process = subprocess.Popen([troupe, "serve", "--model", model_dir, "--port", "0", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = []
    ready = threading.Event()
    url = []

    def drain():
        for line in process.stderr:
            log.append(line)
            m = re.search(r"listening on (http://\S+:\d+)", line)
            if m:
                url.append(m.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(60) or not url:
        process.kill()
        raise RuntimeError("troupe serve did not start:\n" + "".join(log))
    server = Server(process, url[0], log)
    try:
        yield server
    finally:
        code = server.stop()
        time.sleep(0.1)
        if code != 0:
            raise RuntimeError(f"troupe serve exited {code}:\n" + "".join(log))


def troupe_chat(troupe, model_dir, turns, max_new_tokens):
    """`troupe chat --json` replies to the given turns, in order."""
    out = subprocess.run([troupe, "chat", "--model", model_dir, "--json", "--max_new_tokens", str(max_new_tokens)],
                         input="".join(t + "\n" for t in turns), capture_output=True, text=True, timeout=120,
                         check=True)
    return [json.loads(line)["assistant"] for line in out.stdout.splitlines()]

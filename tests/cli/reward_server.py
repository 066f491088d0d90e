#!/usr/bin/env python3
"""A reward endpoint for `troupe train --step 3 --reward_url`, as a remote reward model
would be: POST {"prompts", "responses", "queries"}, answer {"rewards": [...]}.

The reward of a response is 1 + its length in characters / 8. Every request is logged
as a JSON line {"rows", "responses", "rewards"} so a test can compare the run's metrics
with what was given. The port it listens on (a free one) is written to --port_file.

Usage: reward_server.py --port_file FILE --log FILE
"""
import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def reward(response):
    return 1.0 + len(response) / 8


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port_file", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    log = open(args.log, "a", encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            prompts, responses, queries = body["prompts"], body["responses"], body["queries"]
            if not (len(prompts) == len(responses) == len(queries)) or any(
                    q != p + r for p, r, q in zip(prompts, responses, queries)):
                self.send_error(400, "queries must be prompt + response, one per row")
                return
            rewards = [reward(r) for r in responses]
            log.write(json.dumps({"rows": len(prompts), "responses": responses, "rewards": rewards}) + "\n")
            log.flush()
            answer = json.dumps({"rewards": rewards}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(args.port_file + ".tmp", args.port_file)  # whole, or not there yet
    server.serve_forever()


if __name__ == "__main__":
    main()

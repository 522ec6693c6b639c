#!/usr/bin/env python3
"""A master-worker worker that knows nothing of ZooKeeper: it uses only its sidecar's
localhost HTTP API (paddock-sidecar started with --groups-root and --config-root at the
app's root, so that its groups and config tree are the app's /workers and /assign) and
the sink's. The standard library only.

    paddock-sidecar --servers 127.0.0.1:2181 --root /mw --groups-root /mw --config-root /mw &
    python3 worker.py --sidecar http://127.0.0.1:4040 --sink http://127.0.0.1:7070 --id py1

It registers in the group `workers` (the ephemeral /mw/workers/<id>; the sidecar keeps
the membership across reconnects and re-creates it after a session expiry), makes its
inbox /mw/assign/<id>, and follows it with blocking reads. Each assignment is run and
its result handed to the sink with the assignment's fencing token; the sink refuses a
stale one. Progress goes to stdout as `EVENT {json}` lines, like the Rust worker's.
"""

import argparse
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request


def call(method, url, body=None, headers=None, timeout=40):
    """(status, JSON answer or None); (0, reason) when the server did not answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read(1 << 20)
            return response.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read(1 << 20)
        try:
            return e.code, json.loads(raw) if raw else None
        except ValueError:
            return e.code, None
    except (urllib.error.URLError, OSError, ValueError) as e:
        return 0, str(e)


def event(kind, **fields):
    fields["kind"] = kind
    print("EVENT " + json.dumps(fields), flush=True)


def result_of(body):
    """The task's pure function (the same as the Rust worker's): digits reversed, squared."""
    return str(int(str(body["input"])[::-1]) ** 2)


class Worker:
    def __init__(self, sidecar, sink, wid, parallel):
        self.sidecar, self.sink, self.id = sidecar.rstrip("/"), sink.rstrip("/"), wid
        self.slots = threading.Semaphore(parallel)
        self.lock = threading.Lock()
        self.running, self.finished = set(), set()
        self.stop = threading.Event()

    def register(self):
        """Joins the group and makes the inbox; retries while the sidecar has no session."""
        member = f"{self.sidecar}/v1/groups/workers/members/{self.id}"
        inbox = f"{self.sidecar}/v1/config/assign/{self.id}"
        while not self.stop.is_set():
            status, answer = call("PUT", member, {"value": "python"})
            if status in (200, 201):
                status, answer = call("PUT", inbox, {"value": ""}, {"If-None-Match": "*"})
                if status in (200, 201, 412):
                    event("registered", worker=self.id)
                    return
            time.sleep(0.2)

    def follow(self):
        """Blocking reads of the inbox; runs each new assignment."""
        index = 0
        url = f"{self.sidecar}/v1/config/assign/{self.id}"
        prefix = f"assign/{self.id}/"
        while not self.stop.is_set():
            query = urllib.parse.urlencode({"recursive": "true", "index": index, "wait": "10s"})
            status, answer = call("GET", f"{url}?{query}")
            if status != 200 or not isinstance(answer, dict):
                if status == 404:  # the inbox is gone (tidied away): make it again
                    self.register()
                time.sleep(0.2)
                continue
            index = answer.get("index", index)
            for path, node in sorted(answer.get("nodes", {}).items()):
                if path.startswith(prefix):
                    self.take(path[len(prefix):], node.get("value", ""))

    def take(self, name, value):
        with self.lock:
            if name in self.running:
                return
            if name in self.finished:
                threading.Thread(target=self.delete, args=(name,), daemon=True).start()
                return
            try:
                assignment = json.loads(value)
            except ValueError:
                return
            self.running.add(name)
        threading.Thread(target=self.execute, args=(name, assignment), daemon=True).start()

    def execute(self, name, assignment):
        with self.slots:
            time.sleep(assignment["body"]["work_ms"] / 1000.0)
            result = {"task": assignment["task"], "token": assignment["token"],
                      "worker": self.id, "result": result_of(assignment["body"])}
            verdict = "undelivered"
            for _ in range(20):
                status, answer = call("POST", f"{self.sink}/v1/results", result, timeout=10)
                if status in (200, 201):
                    verdict = "recorded"
                    break
                if status == 409 and isinstance(answer, dict):
                    verdict = answer.get("refused", "refused")
                    break
                if 400 <= status < 500:
                    verdict = f"refused ({status})"
                    break
                time.sleep(0.25)
        event("handed-in", worker=self.id, task=assignment["task"],
              token=assignment["token"], verdict=verdict)
        with self.lock:
            self.running.discard(name)
            if verdict == "undelivered":
                return  # still ours to do: the next read runs it again
            self.finished.add(name)
        self.delete(name)

    def delete(self, name):
        call("DELETE", f"{self.sidecar}/v1/config/assign/{self.id}/{name}")

    def leave(self):
        self.stop.set()
        call("DELETE", f"{self.sidecar}/v1/groups/workers/members/{self.id}", timeout=5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sidecar", default="http://127.0.0.1:4040")
    parser.add_argument("--sink", default="http://127.0.0.1:7070")
    parser.add_argument("--id", required=True)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    worker = Worker(args.sidecar, args.sink, args.id, max(1, args.parallel))

    def on_term(*_):
        worker.leave()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    worker.register()
    worker.follow()


if __name__ == "__main__":
    main()

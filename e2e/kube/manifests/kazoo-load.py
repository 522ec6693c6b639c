"""Continuous writes through ZooKeeper, run inside a pod (kubesim maps paddock/kazoo to
e2e/.venv's python). Creates <prefix>/w-<n> for n = 0, 1, 2, ... until <prefix>-stop
exists, then checks that every acknowledged write is there.

    kazoo-load.py HOSTS PREFIX

A write whose reply was lost (connection loss) is in doubt: it is retried under the same
name, and NodeExists then means it was applied. Prints one JSON line: acknowledged count,
in-doubt count, the longest pauses between acknowledged writes (ms), every pause over
100 ms with the wall-clock second it ended, and what is missing.
Exits 1 when an acknowledged write is missing.
"""
import json
import sys
import time

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, NodeExistsError, OperationTimeoutError, SessionExpiredError

hosts, prefix = sys.argv[1], sys.argv[2]
zk = KazooClient(hosts=hosts, timeout=10, connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 0.5})
zk.start(timeout=120)
zk.ensure_path(prefix)
print(f"load started on {hosts}", flush=True)

acked = []
in_doubt = 0
last_ack = time.monotonic()
gaps = []
# Pauses over 100 ms with the wall-clock time they ended, so a test can tell which of its
# steps (a member's restart, a reconfig) each pause belongs to. Bounded.
long_pauses = []
n = 0
deadline = time.monotonic() + 900  # bounded: a forgotten stop node ends the load anyway
while time.monotonic() < deadline:
    if n % 20 == 0:
        try:
            if zk.exists(prefix + "-stop"):
                break
        except (ConnectionLoss, OperationTimeoutError, SessionExpiredError):
            time.sleep(0.05)
            continue
    path = f"{prefix}/w-{n:08d}"
    try:
        zk.create(path, str(n).encode())
    except NodeExistsError:
        pass  # an in-doubt create that was applied
    except (ConnectionLoss, OperationTimeoutError, SessionExpiredError):
        in_doubt += 1
        time.sleep(0.05)
        continue  # retry the same name
    now = time.monotonic()
    gap = round((now - last_ack) * 1000)
    gaps.append(gap)
    if gap > 100 and len(long_pauses) < 10000:
        long_pauses.append([round(time.time(), 3), gap])
    last_ack = now
    acked.append(n)
    n += 1

missing = []
for attempt in range(60):
    try:
        present = set(zk.get_children(prefix))
        missing = [i for i in acked if f"w-{i:08d}" not in present]
        break
    except (ConnectionLoss, OperationTimeoutError, SessionExpiredError):
        time.sleep(0.5)
zk.stop()
print(json.dumps({
    "acknowledged": len(acked),
    "in_doubt": in_doubt,
    "longest_pauses_ms": sorted(gaps, reverse=True)[:5],
    "missing": missing[:20],
    "pauses": long_pauses,
}), flush=True)
sys.exit(1 if missing or not acked else 0)

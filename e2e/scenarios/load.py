"""The day-2 scenarios' load, run in a pod (kubesim maps paddock/kazoo to e2e/.venv's
python) against the client Service, until <prefix>-stop exists (or 15 minutes pass):

- 2 writers: acknowledged creates <prefix>/w<k>-<n>, each on its own session; a create
  whose reply was lost (connection loss) is in doubt and retried under the same name
  (NodeExists then means it was applied);
- 2 CAS clients: read-modify-write increments of <prefix>-counter with the version they
  read (setData with that version); every acknowledged CAS is recorded with the version
  it moved from;
- a reader: sync then getData of acknowledged nodes (one missing after the sync is a
  lost write);
- a write probe every 50 ms (setData of <prefix>-probe, 1 s timeout): the spans without
  a successful probe are the moments without a leader that serves writes.

    load.py HOSTS PREFIX MEMBER[,MEMBER...]

At the end every acknowledged create is looked for on every member (each asked through a
session of its own after a sync), and the CAS history is checked: a register read-modify-
written with versions is linearizable only if no two acknowledged CAS moved from the same
version and the final value equals the number of increments applied (the final version).
Each member's /zookeeper/config is read too: all must be the same committed config.
Then the scenario's znodes are deleted, so that every scenario starts from the same tree.
Prints one JSON line; exits 1 when an acknowledged write is missing, the history is not
linearizable or the members' configs differ.
"""
import json
import random
import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)

TRANSIENT = (ConnectionLoss, OperationTimeoutError, SessionExpiredError)
hosts, prefix, members = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
deadline = time.monotonic() + 900  # bounded: a forgotten stop node ends the load anyway
stop = threading.Event()
lock = threading.Lock()


def client(h):
    zk = KazooClient(hosts=h, timeout=10,
                     connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 0.5},
                     command_retry={"max_tries": 0})
    zk.start(timeout=120)
    return zk


def pause_recorder():
    return {"last": time.monotonic(), "longest": 0, "long": []}


def record_ack(rec):
    now = time.monotonic()
    gap = round((now - rec["last"]) * 1000)
    rec["longest"] = max(rec["longest"], gap)
    if gap > 100 and len(rec["long"]) < 10000:
        rec["long"].append([round(time.time(), 3), gap])
    rec["last"] = now


setup = client(hosts)
setup.ensure_path(prefix)
for node in (prefix + "-counter", prefix + "-probe"):
    try:
        setup.create(node, b"0")
    except NodeExistsError:
        pass

acked = {}  # writer -> list of acknowledged n
in_doubt = {"create": 0, "cas": 0}
writes = pause_recorder()


def writer(k):
    zk = client(hosts)
    acked[k] = []
    n = 0
    while not stop.is_set() and time.monotonic() < deadline:
        path = f"{prefix}/w{k}-{n:08d}"
        try:
            zk.create(path, str(n).encode())
        except NodeExistsError:
            pass  # an in-doubt create that was applied
        except TRANSIENT:
            with lock:
                in_doubt["create"] += 1
            time.sleep(0.05)
            continue  # retry the same name
        with lock:
            acked[k].append(n)
            record_ack(writes)
        n += 1
    zk.stop()


cas_acked = []  # versions the acknowledged CAS moved from
cas_conflicts = [0]


def cas_client():
    zk = client(hosts)
    node = prefix + "-counter"
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            data, stat = zk.get(node)
            zk.set(node, str(int(data) + 1).encode(), version=stat.version)
        except BadVersionError:
            with lock:
                cas_conflicts[0] += 1
            continue
        except TRANSIENT:
            # The set may or may not have been applied: not acknowledged either way.
            with lock:
                in_doubt["cas"] += 1
            time.sleep(0.05)
            continue
        with lock:
            cas_acked.append(stat.version)
    zk.stop()


reads = {"ok": 0, "failed": 0, "missing_after_sync": []}


def reader():
    zk = client(hosts)
    while not stop.is_set() and time.monotonic() < deadline:
        with lock:
            choices = [(k, ns[-1]) for k, ns in acked.items() if ns]
        if not choices:
            time.sleep(0.05)
            continue
        k, n = random.choice(choices)
        path = f"{prefix}/w{k}-{n:08d}"
        try:
            # ZooKeeper orders reads per session, not across sessions: another session's
            # acknowledged create shows on this session's server once it has caught up
            # with the leader, which sync guarantees. After a sync it must be there.
            zk.sync(path)
            zk.get(path)
            reads["ok"] += 1
        except NoNodeError:
            if len(reads["missing_after_sync"]) < 20:
                reads["missing_after_sync"].append(path)
        except TRANSIENT:
            reads["failed"] += 1
            time.sleep(0.05)
        time.sleep(0.01)
    zk.stop()


probe = pause_recorder()


def prober():
    zk = client(hosts)
    while not stop.is_set() and time.monotonic() < deadline:
        started = time.monotonic()
        try:
            zk.set_async(prefix + "-probe", str(time.time()).encode()).get(timeout=1.0)
            record_ack(probe)
        except Exception:  # a timeout or a lost connection: no leader served this probe
            pass
        time.sleep(max(0.0, 0.05 - (time.monotonic() - started)))
    zk.stop()


threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
threads += [threading.Thread(target=cas_client) for _ in range(2)]
threads += [threading.Thread(target=reader), threading.Thread(target=prober)]
for t in threads:
    t.start()
print(f"load started on {hosts}", flush=True)
while time.monotonic() < deadline:
    try:
        if setup.exists(prefix + "-stop"):
            break
    except TRANSIENT:
        pass
    time.sleep(0.2)
stop.set()
for t in threads:
    t.join(timeout=60)
setup.stop()

# Every acknowledged create, on every member; and each member's committed config, which
# must be the same everywhere (a member that rejoined empty must not hold a stale one).
missing = {}
configs = {}
for member in members:
    lost = None
    for attempt in range(60):
        try:
            zk = client(member)
            zk.sync(prefix)
            present = set(zk.get_children(prefix))
            configs[member] = zk.get("/zookeeper/config")[0].decode()
            zk.stop()
            lost = [f"w{k}-{n:08d}" for k, ns in acked.items() for n in ns
                    if f"w{k}-{n:08d}" not in present]
            break
        except TRANSIENT:
            time.sleep(0.5)
    missing[member] = lost[:20] if lost is not None else "unreachable"

# The CAS history.
violations = []
final_value = final_version = None
for attempt in range(60):
    try:
        zk = client(hosts)
        data, stat = zk.get(prefix + "-counter")
        zk.stop()
        final_value, final_version = int(data), stat.version
        break
    except TRANSIENT:
        time.sleep(0.5)
if final_version is None:
    violations.append("the counter could not be read")
else:
    seen = set()
    for v in cas_acked:
        if v in seen:
            violations.append(f"two acknowledged CAS moved from version {v}")
        seen.add(v)
        if v >= final_version:
            violations.append(f"an acknowledged CAS from version {v} is not in the final version {final_version}")
    if final_value != final_version:
        violations.append(f"final value {final_value} != final version {final_version}: an increment was lost or applied twice")

# Clean up once verified, as an application that keeps a steady amount of data would: the
# next scenario then starts from the same tree size (recovery time grows with the number of
# znodes, so a tree that only grew would make later rounds slower than earlier ones).
cleaned = False
for attempt in range(20):
    try:
        zk = client(hosts)
        children = zk.get_children(prefix)
        for start in range(0, len(children), 500):
            batch = [zk.delete_async(f"{prefix}/{c}") for c in children[start:start + 500]]
            for result in batch:
                try:
                    result.get(timeout=30)
                except NoNodeError:
                    pass
        for node in (prefix, prefix + "-counter", prefix + "-probe", prefix + "-stop"):
            try:
                zk.delete(node)
            except NoNodeError:
                pass
        zk.stop()
        cleaned = True
        break
    except TRANSIENT:
        time.sleep(0.5)

summary = {
    "acknowledged": sum(len(ns) for ns in acked.values()),
    "in_doubt": in_doubt,
    "cas_acknowledged": len(cas_acked),
    "cas_conflicts": cas_conflicts[0],
    "cas_violations": violations[:20],
    "reads": reads,
    "longest_write_pause_ms": writes["longest"],
    "pauses": writes["long"],
    "longest_probe_gap_ms": probe["longest"],
    "probe_gaps": probe["long"],
    "missing": {m: v for m, v in missing.items() if v},
    "configs_differ": configs if len(set(configs.values())) > 1 else {},
    "cleaned": cleaned,
}
print(json.dumps(summary), flush=True)
bad = (summary["missing"] or violations or summary["configs_differ"] or summary["acknowledged"] == 0
       or reads["missing_after_sync"])
sys.exit(1 if bad else 0)

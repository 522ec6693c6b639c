"""Read-only mode through kazoo, the same file for Apache ZooKeeper 3.8 (the control)
and paddock-server. Run through e2e/compat/run_readonly.sh, which starts a 3-server
ensemble with read-only mode enabled and sets:

  RO_SERVERS  client addresses (host:port) of servers 1, 2 and 3, in that order
  RO_DIR      the run's directory: s<N>/run.sh starts server N (it records the pid
              in s<N>/pid)
  RO_TARGET   (optional) name of the server under test, for the notes
  RO_NOTES    (optional) file to which measured figures are appended

One test, in steps: servers 2 and 3 stop (kill -9); server 1, cut off from its quorum,
turns read-only (`isro` says `ro`); a client that does not ask for read-only is
refused; a kazoo client with read_only=True connects (CONNECTED_RO), reads, and gets
NotReadOnlyCallError for every write and for sync; its session id carries server 1's
id in its top byte, as ZooKeeper's do. Servers 2 and 3 start again: server 1 leaves
read-only mode and drops its read-only clients, and the kazoo client reconnects
read-write (CONNECTED) and writes. The client's state changes are compared with the
ones Apache ZooKeeper gives. Every wait is bounded.
"""

import os
import signal
import subprocess
import threading
import time

import ensemble_helpers
import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

from ensemble_helpers import fourlw, notes

SERVERS = [h for h in os.environ.get("RO_SERVERS", "").split(",") if h]
DIR = os.environ.get("RO_DIR", "")
TARGET = os.environ.get("RO_TARGET", "server")
NOTES = os.environ.get("RO_NOTES")
WAIT = float(os.environ.get("ZK_TEST_WAIT", "30"))

pytestmark = pytest.mark.skipif(
    len(SERVERS) != 3 or not DIR, reason="run through e2e/compat/run_readonly.sh"
)


note = notes(NOTES, TARGET)


def wait_until(predicate, timeout=WAIT, interval=0.02, what="condition"):
    return ensemble_helpers.wait_until(predicate, timeout, interval, what)


# ---- the servers ----------------------------------------------------------------------

STARTED = {}  # myid -> Popen of a server this test started (reaped when stopped)


def pid_of(myid):
    with open(os.path.join(DIR, "s%d" % myid, "pid")) as f:
        return int(f.read().strip())


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop(myid):
    pid = pid_of(myid)
    # Only a process of this run (its directory on the command line).
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        assert DIR.encode() in f.read(), "pid %d is not server %d of this run" % (pid, myid)
    os.kill(pid, signal.SIGKILL)
    p = STARTED.pop(myid, None)
    if p is not None:
        p.wait(timeout=WAIT)
    wait_until(lambda: not alive(pid), what="server %d (pid %d) to die" % (myid, pid))


def start(myid):
    STARTED[myid] = subprocess.Popen(
        ["bash", os.path.join(DIR, "s%d" % myid, "run.sh")],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


# ---- a kazoo client whose every state change is recorded -------------------------------


class Recorded:
    """A KazooClient whose connection states (KeeperState: CONNECTED_RO, CONNECTING,
    CONNECTED, EXPIRED_SESSION, ...) are recorded with the time of each change."""

    def __init__(self, hosts, read_only):
        self.changes = []
        self.lock = threading.Lock()
        # Reconnect at once and keep trying: the time to reconnect is the server's.
        retry = KazooRetry(max_tries=-1, delay=0.05, backoff=1, max_delay=0.1, max_jitter=0.01)
        self.client = KazooClient(
            hosts=hosts, timeout=10.0, read_only=read_only, connection_retry=retry
        )
        original = self.client._session_callback

        def record(state):
            with self.lock:
                self.changes.append((time.monotonic(), state))
            original(state)

        self.client._session_callback = record

    def states(self, since=0.0):
        with self.lock:
            return [s for t, s in self.changes if t >= since]

    def reached(self, state, since=0.0):
        with self.lock:
            return next((t for t, s in self.changes if t >= since and s == state), None)

    def close(self):
        try:
            self.client.stop()
            self.client.close()
        except Exception:
            pass


def collapse(states):
    """The states without immediate repeats."""
    out = []
    for s in states:
        if not out or out[-1] != s:
            out.append(s)
    return out


def multi_check(client):
    t = client.transaction()
    t.check("/ro", 0)
    return t.commit()


# What kazoo goes through, as Apache ZooKeeper 3.8 makes it: read-only, dropped when the
# server leaves read-only mode, told its (local) session expired by the read-write
# server, and connected with a new session.
EXPECTED_STATES = [
    "CONNECTING", "CONNECTED_RO", "CONNECTING", "EXPIRED_SESSION", "CONNECTING", "CONNECTED",
]


def test_partitioned_server_serves_reads_then_goes_read_write():
    survivor = SERVERS[0]
    setup = KazooClient(hosts=",".join(SERVERS), timeout=10.0)
    setup.start(timeout=WAIT)
    try:
        setup.ensure_path("/ro")
        setup.set("/ro", b"before")
        setup.sync("/ro")
    finally:
        setup.stop()
        setup.close()
    # Server 1 has the data: it is in every quorum of the write above or synced since.
    wait_until(lambda: fourlw(survivor, "isro") == "rw", what="isro rw on server 1")
    for h in SERVERS:
        assert fourlw(h, "isro") == "rw", h

    # ---- server 1 is cut off from its quorum ----
    t_stop = time.monotonic()
    stop(2)
    stop(3)
    wait_until(lambda: fourlw(survivor, "isro") == "ro", what="server 1 read-only")
    to_ro = time.monotonic() - t_stop
    note("read-only %.2fs after its peers stopped" % to_ro)

    # A client that does not ask for read-only is refused.
    rw = KazooClient(hosts=survivor, timeout=4.0, read_only=False)
    try:
        with pytest.raises(KazooTimeoutError):
            rw.start(timeout=3)
    finally:
        rw.stop()
        rw.close()

    ro = Recorded(survivor, read_only=True)
    try:
        ro.client.start(timeout=WAIT)
        assert ro.client.client_state == "CONNECTED_RO"
        session_id = ro.client.client_id[0]
        # Session ids of a server start with its id in the top byte.
        assert session_id >> 56 == 1, hex(session_id)
        assert ro.client.get("/ro")[0] == b"before"
        assert "ro" in ro.client.get_children("/")
        assert ro.client.exists("/ro") is not None
        for write in (
            lambda: ro.client.create("/ro/new", b"x"),
            lambda: ro.client.create("/ro/eph", b"x", ephemeral=True),
            lambda: ro.client.set("/ro", b"during"),
            lambda: ro.client.delete("/ro"),
            lambda: ro.client.set_acls("/ro", []),
            lambda: ro.client.sync("/ro"),
            lambda: multi_check(ro.client),
        ):
            with pytest.raises(NotReadOnlyCallError):
                write()
        assert ro.client.get("/ro")[0] == b"before"
        assert fourlw(survivor, "isro") == "ro"

        # ---- the quorum returns ----
        t_back = time.monotonic()
        start(2)
        start(3)
        wait_until(lambda: ro.reached("CONNECTED", since=t_back), what="CONNECTED again")
        to_rw = ro.reached("CONNECTED", since=t_back) - t_back
        left_ro = next(t for t, s in ro.changes if t >= t_back and s != "CONNECTED_RO") - t_back
        states = collapse(ro.states(since=t_back))
        note("read-only connection dropped %.2fs and client CONNECTED %.2fs after its "
             "peers were started; states %s" % (left_ro, to_rw, " -> ".join(states)))
        assert wait_until(lambda: fourlw(survivor, "isro") == "rw", what="isro rw")
        ro.client.set("/ro", b"after")
        assert ro.client.get("/ro")[0] == b"after"
        assert ro.client.client_state == "CONNECTED"
        assert ro.client.client_id[0] != session_id
        assert collapse(ro.states()) == EXPECTED_STATES
    finally:
        ro.close()

"""kazoo's recipes keep their guarantees while the leader of a paddock ensemble is
killed (kill -9) and restarted.

Run through e2e/zab/run_ensemble.sh, which starts a 3-node ensemble and sets:

  ZK_HOSTS   connect string of the ensemble (host:port,host:port,...)
  ZK_ADMIN   comma list of the servers' admin endpoints (http://ip:port)
  ZK_PIDDIR  (optional) directory where restarted servers' pids are recorded
             (<myid>.pid) so that the script can stop them

The leader is found through GET /status on the admin endpoints; its pid and command
line come from /proc (the paddock-server process whose --config names a zoo.cfg with that
admin address and whose dataDir/myid holds that id). A killed server is started again
with the same command line, working directory and log file.

Every wait is bounded. Checks:
  * Lock: 3 contenders; at no instant do two of them hold the lock. A holder counts its
    hold as over as soon as its connection is SUSPENDED or LOST (kazoo's caveat: after
    a connection loss a holder must stop until it knows its session survived).
  * Election: 3 contenders; exactly one leader at a time, same rule.
  * Counter: 3 clients increment concurrently; the final value is the number of
    acknowledged increments plus those whose outcome the client could not know (a
    connection lost in the middle of the write), and each of the latter is accounted
    for by value.
"""

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
import uuid

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    ConnectionLoss,
    KazooException,
    LockTimeout,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.retry import ForceRetryError, KazooRetry, RetryFailedError

ZK_HOSTS = os.environ.get("ZK_HOSTS", "")
ZK_ADMIN = [u.strip().rstrip("/") for u in os.environ.get("ZK_ADMIN", "").split(",") if u.strip()]
ZK_PIDDIR = os.environ.get("ZK_PIDDIR", "")
# Bound for single waits.
WAIT = float(os.environ.get("ZK_TEST_WAIT", "30"))
# How many times each test kills the leader.
KILLS = int(os.environ.get("ZK_KILLS", "2"))

pytestmark = pytest.mark.skipif(
    not ZK_HOSTS or not ZK_ADMIN,
    reason="needs a running ensemble: use e2e/zab/run_ensemble.sh (ZK_HOSTS, ZK_ADMIN)",
)


# --------------------------------------------------------------------------- helpers


def wait_until(predicate, timeout=WAIT, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def status(admin):
    try:
        with urllib.request.urlopen(admin + "/status", timeout=1.0) as r:
            return json.loads(r.read().decode())
    except Exception:
        return None


def statuses():
    return {admin: status(admin) for admin in ZK_ADMIN}


def stable_leader():
    """The leader's myid when every server answers, exactly one leads and the others
    follow it, synced, in its epoch; else None."""
    st = statuses()
    if any(s is None for s in st.values()):
        return None
    leaders = [s for s in st.values() if s["role"] == "leader"]
    if len(leaders) != 1:
        return None
    leader = leaders[0]
    for s in st.values():
        if s is leader:
            continue
        if s["role"] != "follower" or not s["synced"] or s["epoch"] != leader["epoch"]:
            return None
    return leader["myid"]


def wait_stable(timeout=WAIT):
    return wait_until(stable_leader, timeout, what="a stable ensemble: %r" % (statuses(),))


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _cfg(path):
    out = {}
    for line in _read(path).decode(errors="replace").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def find_server(myid):
    """(pid, argv, cwd, cfg path) of the running paddock-server with this id that
    belongs to this ensemble (its admin endpoint is one of ZK_ADMIN)."""
    admins = set(ZK_ADMIN)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            argv = [a.decode() for a in _read("/proc/%d/cmdline" % pid).split(b"\0") if a]
            state = _read("/proc/%d/stat" % pid).decode().rsplit(")", 1)[1].split()[0]
            cwd = os.readlink("/proc/%d/cwd" % pid)
        except OSError:
            continue
        if state == "Z" or not argv or not os.path.basename(argv[0]).startswith("paddock-server"):
            continue
        if "--config" not in argv[:-1]:
            continue
        cfg_path = argv[argv.index("--config") + 1]
        cfg_path = os.path.join(cwd, cfg_path)
        try:
            cfg = _cfg(cfg_path)
            data_dir = cfg.get("dataDir", "")
            sid = int(_read(os.path.join(data_dir, "myid")).decode().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        admin = "http://%s:%s" % (cfg.get("admin.serverAddress", ""), cfg.get("admin.serverPort", ""))
        if admin in admins and sid == myid:
            return pid, argv, cwd, cfg_path
    raise AssertionError("no running paddock-server with myid %d among %r" % (myid, ZK_ADMIN))


class Servers:
    """Kills the leader and starts it again."""

    def __init__(self):
        self.children = []
        self.kill_times = []

    def kill_leader(self):
        """kill -9 of the current leader; waits (bounded) until another server leads;
        returns (myid, argv, cwd, cfg, seconds until a new leader was seen)."""
        leader = wait_stable()
        pid, argv, cwd, cfg = find_server(leader)
        epoch = status_of(leader)["epoch"]
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        self._reap(pid)

        def new_leader():
            for s in statuses().values():
                if s and s["role"] == "leader" and s["myid"] != leader and s["epoch"] > epoch:
                    return s["myid"]
            return None

        wait_until(new_leader, what="a new leader after killing %d" % leader)
        took = time.monotonic() - t0
        self.kill_times.append(took)
        return leader, argv, cwd, cfg, took

    def _reap(self, pid):
        for c in self.children:
            if c.pid == pid:
                c.wait(timeout=WAIT)
                return
        wait_until(lambda: not _alive(pid), what="pid %d to die" % pid)

    def restart(self, myid, argv, cwd, cfg):
        log = open(os.path.join(os.path.dirname(cfg), "restart-%d.log" % myid), "ab")
        p = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        self.children.append(p)
        if ZK_PIDDIR:
            with open(os.path.join(ZK_PIDDIR, "%d.pid" % myid), "w") as f:
                f.write("%d\n" % p.pid)
        return p

    def kill_and_restart_leader(self):
        myid, argv, cwd, cfg, took = self.kill_leader()
        self.restart(myid, argv, cwd, cfg)
        wait_stable()
        return myid, took


def _alive(pid):
    try:
        state = _read("/proc/%d/stat" % pid).decode().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def status_of(myid):
    for s in statuses().values():
        if s and s["myid"] == myid:
            return s
    raise AssertionError("no status for server %d" % myid)


def fast_retry(**kw):
    opts = dict(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5, max_jitter=0.2)
    opts.update(kw)
    return KazooRetry(**opts)


def new_client():
    c = KazooClient(
        hosts=ZK_HOSTS,
        timeout=10.0,
        connection_retry=fast_retry(),
        command_retry=fast_retry(deadline=WAIT),
    )
    c.start(timeout=WAIT)
    return c


@pytest.fixture
def clients():
    made = []

    def make():
        c = new_client()
        made.append(c)
        return c

    yield make
    for c in made:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


@pytest.fixture
def servers():
    wait_stable()
    s = Servers()
    yield s
    # Leave the ensemble whole for the next test.
    wait_stable()


class Recorder:
    """Who holds the lock (or leads) at each instant, as the contenders see it."""

    def __init__(self):
        self.mu = threading.Lock()
        self.events = []  # (time, who, "enter" | "exit", why)
        self.holding = {}
        self.lost = {}
        self.violations = []
        self.entries = 0

    def listener(self, who):
        def on_state(state):
            if state in (KazooState.SUSPENDED, KazooState.LOST):
                with self.mu:
                    self.lost[who] = True
                    self._exit(who, "connection " + state)

        return on_state

    def start_attempt(self, who, client):
        """Before an attempt: only a connected client may try; forgets older losses."""
        with self.mu:
            if client.state != KazooState.CONNECTED:
                return False
            self.lost[who] = False
            return True

    def enter(self, who):
        """Counts a grant as a hold unless the connection was lost since the attempt
        began; returns whether it counts."""
        with self.mu:
            if self.lost.get(who):
                return False
            others = [w for w, h in self.holding.items() if h and w != who]
            now = time.monotonic()
            if others:
                self.violations.append((now, who, others))
            self.holding[who] = True
            self.entries += 1
            self.events.append((now, who, "enter", ""))
            return True

    def exit(self, who, why):
        with self.mu:
            self._exit(who, why)

    def _exit(self, who, why):
        if self.holding.get(who):
            self.holding[who] = False
            self.events.append((time.monotonic(), who, "exit", why))

    def is_lost(self, who):
        with self.mu:
            return self.lost.get(who, False)

    def overlaps(self):
        """Pairs of hold intervals of different contenders that overlap."""
        intervals = []
        open_ = {}
        for t, who, kind, _ in sorted(self.events):
            if kind == "enter":
                open_[who] = t
            elif who in open_:
                intervals.append((open_.pop(who), t, who))
        end = time.monotonic()
        for who, t in open_.items():
            intervals.append((t, end, who))
        intervals.sort()
        bad = []
        for i, (s1, e1, w1) in enumerate(intervals):
            for s2, e2, w2 in intervals[i + 1:]:
                if s2 >= e1:
                    break
                if w1 != w2:
                    bad.append(((s1, e1, w1), (s2, e2, w2)))
        return bad


def hold(rec, who, seconds, stop):
    """Holds for `seconds` or until the connection is lost or the test stops."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set() and not rec.is_lost(who):
        time.sleep(0.005)
    rec.exit(who, "released")


def run_with_kills(servers, rec, stop, threads, progress_before, progress_after):
    """Runs the contenders while the leader is killed and restarted KILLS times."""
    for t in threads:
        t.start()
    try:
        wait_until(lambda: rec.entries >= progress_before, what="contenders make progress")
        for _ in range(KILLS):
            before = rec.entries
            myid, took = servers.kill_and_restart_leader()
            print("killed leader %d; new leader after %.0f ms" % (myid, took * 1000))
            wait_until(
                lambda: rec.entries >= before + progress_after,
                what="progress after the leader %d was killed (%d grants so far)" % (myid, rec.entries),
            )
    finally:
        stop.set()
    for t in threads:
        t.join(timeout=WAIT)
        assert not t.is_alive(), "a contender did not stop"


# --------------------------------------------------------------------------- tests


def test_lock_mutual_exclusion_across_leader_kill(clients, servers):
    path = "/kazoo-failover/lock-" + uuid.uuid4().hex
    rec = Recorder()
    stop = threading.Event()
    errors = []

    def contender(who):
        c = clients()
        c.add_listener(rec.listener(who))
        lock = c.Lock(path, identifier=who)
        while not stop.is_set():
            if not rec.start_attempt(who, c):
                time.sleep(0.02)
                continue
            try:
                got = lock.acquire(timeout=2)
            except LockTimeout:
                got = False
            except KazooException as e:
                errors.append(repr(e))
                got = False
            if got:
                if rec.enter(who):
                    hold(rec, who, 0.03, stop)
                try:
                    lock.release()
                except KazooException as e:
                    errors.append(repr(e))

    threads = [threading.Thread(target=contender, args=("c%d" % i,), daemon=True) for i in range(3)]
    run_with_kills(servers, rec, stop, threads, progress_before=20, progress_after=20)
    print("lock: %d grants, %d events, errors: %r" % (rec.entries, len(rec.events), errors[:5]))
    assert not rec.violations, "two holders at once: %r" % rec.violations[:5]
    assert not rec.overlaps(), "overlapping holds: %r" % rec.overlaps()[:5]
    holders = {who for _, who, kind, _ in rec.events if kind == "enter"}
    assert len(holders) == 3, "every contender got the lock at some point: %r" % holders


def test_election_single_leader_across_leader_kill(clients, servers):
    path = "/kazoo-failover/election-" + uuid.uuid4().hex
    rec = Recorder()
    stop = threading.Event()
    elections = []
    errors = []

    def contender(who):
        c = clients()
        c.add_listener(rec.listener(who))
        election = c.Election(path, identifier=who)
        elections.append(election)

        def lead():
            if rec.enter(who):
                hold(rec, who, 0.05, stop)

        while not stop.is_set():
            if not rec.start_attempt(who, c):
                time.sleep(0.02)
                continue
            try:
                election.run(lead)
            except KazooException as e:
                errors.append(repr(e))
                time.sleep(0.02)

    threads = [threading.Thread(target=contender, args=("e%d" % i,), daemon=True) for i in range(3)]
    stopper = threading.Thread(
        target=lambda: (stop.wait(), [e.cancel() for e in elections]), daemon=True
    )
    stopper.start()
    try:
        run_with_kills(servers, rec, stop, threads, progress_before=10, progress_after=10)
    finally:
        stop.set()
        for e in elections:
            e.cancel()
    print("election: %d terms, errors: %r" % (rec.entries, errors[:5]))
    assert not rec.violations, "two leaders at once: %r" % rec.violations[:5]
    assert not rec.overlaps(), "overlapping terms: %r" % rec.overlaps()[:5]
    leaders = {who for _, who, kind, _ in rec.events if kind == "enter"}
    assert len(leaders) >= 2, "leadership moved between contenders: %r" % leaders


def test_counter_exact_across_leader_kill(clients, servers):
    path = "/kazoo-failover/counter-" + uuid.uuid4().hex
    setup = clients()
    assert setup.Counter(path, default=0).value == 0
    stop = threading.Event()
    lock = threading.Lock()
    # Resulting values of acknowledged increments; targets of increments whose write
    # was sent but whose answer was lost (applied or not: unknown to the client).
    acked = []
    unknown = []
    failed = []
    progress = [0]

    def incrementer():
        c = clients()
        # Contention (BadVersion → ForceRetry) is retried; a lost connection is not, so
        # the client knows which increments are in doubt instead of repeating them.
        retry = fast_retry(deadline=WAIT)
        retry.retry_exceptions = (ForceRetryError,)
        c.retry = retry
        counter = c.Counter(path, default=0)
        while not stop.is_set():
            if c.state != KazooState.CONNECTED:
                time.sleep(0.02)
                continue
            counter.pre_value = None
            counter.post_value = None
            try:
                counter += 1
            except (ConnectionLoss, OperationTimeoutError, SessionExpiredError) as e:
                with lock:
                    if counter.pre_value is not None:
                        unknown.append(counter.pre_value + 1)
                    else:
                        failed.append(repr(e))
                continue
            except (RetryFailedError, KazooException) as e:
                with lock:
                    failed.append(repr(e))
                continue
            with lock:
                acked.append(counter.post_value)
                progress[0] += 1

    threads = [threading.Thread(target=incrementer, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: progress[0] >= 50, what="increments")
        for _ in range(KILLS):
            before = progress[0]
            myid, took = servers.kill_and_restart_leader()
            print("killed leader %d; new leader after %.0f ms" % (myid, took * 1000))
            wait_until(lambda: progress[0] >= before + 50, what="increments after the kill")
    finally:
        stop.set()
    for t in threads:
        t.join(timeout=WAIT)
        assert not t.is_alive(), "an incrementer did not stop"

    reader = clients()
    reader.sync(path)
    data, stat = reader.get(path)
    final = int(data.decode())
    print(
        "counter: final %d, %d acknowledged, %d in doubt, %d failed before writing"
        % (final, len(acked), len(unknown), len(failed))
    )
    assert stat.version == final, "every applied increment is one setData"
    assert len(set(acked)) == len(acked), "two acknowledged increments produced the same value"
    assert not acked or max(acked) <= final, "an acknowledged increment was lost"
    # Every value 1..final was produced by exactly one applied increment: the
    # acknowledged ones, and the rest must be in-doubt increments that did apply.
    applied_unknown = sorted(set(range(1, final + 1)) - set(acked))
    candidates = sorted(unknown)
    for v in applied_unknown:
        assert v in candidates, (
            "value %d was written by no acknowledged or in-doubt increment (in doubt: %r)" % (v, candidates)
        )
        candidates.remove(v)
    assert final == len(acked) + len(applied_unknown)
    if not unknown:
        assert final == len(acked), "exact count of acknowledged increments"

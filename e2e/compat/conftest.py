"""Shared fixtures for the black-box ZooKeeper compatibility suite.

Target server: env ZK_HOSTS (default 127.0.0.1:2181). Every test works under
its own unique root znode, so tests are independent and can be rerun against
the same server. The server is expected to be configured like
e2e/compat/reference_zk.sh configures Apache ZooKeeper: tickTime 2000 (session
timeouts negotiated within [4000, 40000] ms), extended types (TTL) enabled,
super user digest for super:secret, and a container/TTL reaper interval of
about a second.
"""

import os
import re
import select
import signal
import subprocess
import sys
import uuid

import pytest
from kazoo.client import KazooClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ensemble_helpers  # noqa: E402 - found through the path above

ZK_HOSTS = os.environ.get("ZK_HOSTS", "127.0.0.1:2181")
# Bound for every single wait in the suite.
WAIT = float(os.environ.get("ZK_TEST_WAIT", "15"))
# Container and TTL reaping can take one reaper interval plus slack.
REAP_WAIT = float(os.environ.get("ZK_REAP_WAIT", "20"))
SUPER_AUTH = os.environ.get("ZK_SUPER_AUTH", "super:secret")


def wait_until(predicate, timeout=WAIT, interval=0.02, what="condition"):
    """Poll predicate() until it returns a truthy value; fail after timeout."""
    return ensemble_helpers.wait_until(predicate, timeout, interval, what)


def new_client(**kwargs):
    kwargs.setdefault("hosts", ZK_HOSTS)
    kwargs.setdefault("timeout", 10.0)
    c = KazooClient(**kwargs)
    c.start(timeout=WAIT)
    return c


def close_client(c):
    try:
        c.stop()
    except Exception:
        pass
    try:
        c.close()
    except Exception:
        pass


@pytest.fixture
def make_client():
    clients = []

    def make(**kwargs):
        c = new_client(**kwargs)
        clients.append(c)
        return c

    yield make
    for c in clients:
        close_client(c)


@pytest.fixture
def zk(make_client):
    return make_client()


@pytest.fixture
def root(request):
    """A fresh, unique, empty persistent znode for this test."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:60]
    path = "/compat-%s-%s" % (name, uuid.uuid4().hex[:8])
    c = new_client()
    try:
        c.create(path)
    finally:
        close_client(c)
    yield path
    # Cleanup as the super user so restrictive ACLs do not leave garbage.
    c = None
    try:
        c = new_client(auth_data=[("digest", SUPER_AUTH)])
        c.delete(path, recursive=True)
    except Exception:
        pass
    finally:
        if c is not None:
            close_client(c)


_HOLDER = r"""
import binascii, sys
from kazoo.client import KazooClient
hosts, timeout = sys.argv[1], float(sys.argv[2])
c = KazooClient(hosts=hosts, timeout=timeout)
c.start(timeout=15)
for p in sys.argv[3:]:
    c.create(p, b"holder", ephemeral=True)
sid, pw = c.client_id
print("READY %d %s" % (sid, binascii.hexlify(pw).decode()), flush=True)
sys.stdin.read()
"""


class Holder(object):
    """A kazoo session in a separate process that owns some ephemerals.

    freeze() (SIGSTOP) keeps the process alive but silent: its session then
    either expires on the server or can be taken over by another client,
    without the original client fighting back by reconnecting.
    """

    def __init__(self, session_timeout, paths):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, ZK_HOSTS, str(session_timeout)] + list(paths),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], WAIT + 5)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("READY "):
            self.kill()
            raise AssertionError("holder process did not start a session: %r" % line)
        _, sid, pw = line.split()
        self.session_id = int(sid)
        self.password = bytes.fromhex(pw)

    def freeze(self):
        self.proc.send_signal(signal.SIGSTOP)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def holder():
    made = []

    def make(paths, session_timeout=10.0):
        h = Holder(session_timeout, paths)
        made.append(h)
        return h

    yield make
    for h in made:
        h.kill()

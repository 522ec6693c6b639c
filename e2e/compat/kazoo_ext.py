"""Opcodes kazoo has no public API for, sent through kazoo's own connection.

kazoo 2.11.0 (the newest release) speaks only the ZooKeeper 3.4-era request
set plus reconfig: it has no createContainer (19), createTTL (21),
checkWatches (17), removeWatches (18), getEphemerals (103),
getAllChildrenNumber (104) or addWatch (106), and no persistent watches.
Rather than skip those features, this module defines jute request records for
them and submits them through the client's normal request queue
(``KazooClient._call``), so they share the session, xid sequence, ordering
and error mapping of every other kazoo call.

Each record also checks the exact length of the response body, because the
Java client deserialises a fixed record per opcode and breaks on a server
that sends more or less.

Where a later kazoo grows a native API (``client.add_watch``,
``create(container=...)``, ``create(ttl=...)``), the helpers use it instead.

``EventTap`` wraps the client's notification reader: it records every watch
event the server sends (type, path) in arrival order, before kazoo's own
dispatch, and delivers persistent / persistent-recursive watch events (which
kazoo 2.11.0 would drop as "no watcher registered") to registered callbacks.
"""

import inspect
import struct
import threading

import kazoo.version
from kazoo.client import KazooClient
from kazoo.protocol.connection import ConnectionHandler
from kazoo.protocol.serialization import (
    Watch,
    int_struct,
    read_string,
    stat_struct,
    write_buffer,
    write_string,
)
from kazoo.protocol.states import (
    EVENT_TYPE_MAP,
    Callback,
    WatchedEvent,
    ZnodeStat,
)
from kazoo.security import OPEN_ACL_UNSAFE

# CreateMode flags (CreateMode.java)
PERSISTENT = 0
EPHEMERAL = 1
PERSISTENT_SEQUENTIAL = 2
EPHEMERAL_SEQUENTIAL = 3
CONTAINER = 4
PERSISTENT_WITH_TTL = 5
PERSISTENT_SEQUENTIAL_WITH_TTL = 6

# AddWatchMode (AddWatchMode.java)
ADD_WATCH_PERSISTENT = 0
ADD_WATCH_PERSISTENT_RECURSIVE = 1

# WatcherType for checkWatches/removeWatches (Watcher.WatcherType)
WATCHER_CHILDREN = 1
WATCHER_DATA = 2
WATCHER_ANY = 3

# Watch event types (Watcher.Event.EventType)
EV_NODE_CREATED = 1
EV_NODE_DELETED = 2
EV_NODE_DATA_CHANGED = 3
EV_NODE_CHILDREN_CHANGED = 4


# The kazoo internals this module relies on (present in 2.x up to 2.11.0).
INTERNALS_OK = all((
    hasattr(KazooClient, "_call"),
    hasattr(ConnectionHandler, "_read_watch_event"),
    hasattr(ConnectionHandler, "_read_response"),
))


def _require_internals():
    if not INTERNALS_OK:
        import pytest

        pytest.skip("kazoo %s changed the internals kazoo_ext uses (_call, _read_watch_event); "
                    "update e2e/compat/kazoo_ext.py" % kazoo.version.__version__)


class ResponseShapeError(AssertionError):
    """The server's response body does not have the length the Java client expects."""


def _acl_bytes(acl):
    b = bytearray(int_struct.pack(len(acl)))
    for a in acl:
        b.extend(int_struct.pack(a.perms) + write_string(a.id.scheme) + write_string(a.id.id))
    return b


def _read_create2_response(buf, offset):
    path, offset = read_string(buf, offset)
    stat = ZnodeStat._make(stat_struct.unpack_from(buf, offset))
    offset += stat_struct.size
    if offset != len(buf):
        raise ResponseShapeError("Create2Response has %d trailing bytes" % (len(buf) - offset))
    return path, stat


class _Raw(object):
    """Minimal request object accepted by kazoo's connection loop."""

    watcher = None

    def __init__(self, type_, payload, parse, path=None):
        self.type = type_
        self._payload = bytes(payload)
        self._parse = parse
        self.path = path

    def serialize(self):
        return bytearray(self._payload)

    def deserialize(self, buf, offset):
        return self._parse(buf, offset)

    def __repr__(self):
        return "RawRequest(type=%d, path=%r)" % (self.type, self.path)


def _expect_body(expected):
    def parse(buf, offset):
        body = bytes(buf[offset:])
        if body != expected:
            raise ResponseShapeError("expected response body %r, got %r" % (expected, body))
        return True

    return parse


def call(client, request, timeout=10):
    """Submit a raw request through kazoo's queue and wait for the result."""
    _require_internals()
    async_result = client.handler.async_result()
    client._call(request, async_result)
    return async_result.get(timeout=timeout)


# ---------------------------------------------------------------- creates ---
def _native_create_supports(client, param):
    try:
        return param in inspect.signature(client.create).parameters
    except (TypeError, ValueError):
        return False


def create_container(client, path, value=b"", acl=None):
    """createContainer (opcode 19). Returns (path, stat)."""
    acl = acl or client.default_acl or OPEN_ACL_UNSAFE
    if _native_create_supports(client, "container"):
        return client.create(path, value, acl=acl, container=True, include_data=True)
    payload = write_string(path) + write_buffer(value) + _acl_bytes(acl) + int_struct.pack(CONTAINER)
    return call(client, _Raw(19, payload, _read_create2_response, path))


def create_ttl(client, path, value=b"", ttl_ms=1000, sequence=False, acl=None):
    """createTTL (opcode 21). Returns (path, stat)."""
    acl = acl or client.default_acl or OPEN_ACL_UNSAFE
    if _native_create_supports(client, "ttl"):
        return client.create(path, value, acl=acl, sequence=sequence, ttl=ttl_ms, include_data=True)
    flags = PERSISTENT_SEQUENTIAL_WITH_TTL if sequence else PERSISTENT_WITH_TTL
    payload = (write_string(path) + write_buffer(value) + _acl_bytes(acl)
               + int_struct.pack(flags) + struct.pack("!q", ttl_ms))
    return call(client, _Raw(21, payload, _read_create2_response, path))


def create_raw_mode(client, path, value=b"", flags=PERSISTENT, opcode=15, acl=None):
    """create (1) / create2 (15) with an arbitrary CreateMode flag value."""
    acl = acl or client.default_acl or OPEN_ACL_UNSAFE
    payload = write_string(path) + write_buffer(value) + _acl_bytes(acl) + int_struct.pack(flags)
    if opcode == 1:
        return call(client, _Raw(1, payload, lambda b, o: read_string(b, o)[0], path))
    return call(client, _Raw(opcode, payload, _read_create2_response, path))


# ------------------------------------------------------------ misc reads ---
def get_ephemerals(client, prefix="/"):
    """getEphemerals (opcode 103): this session's ephemeral paths under prefix."""

    def parse(buf, offset):
        n = int_struct.unpack_from(buf, offset)[0]
        offset += 4
        out = []
        for _ in range(max(n, 0)):
            s, offset = read_string(buf, offset)
            out.append(s)
        if offset != len(buf):
            raise ResponseShapeError("GetEphemeralsResponse has trailing bytes")
        return out

    return call(client, _Raw(103, write_string(prefix), parse, prefix))


def get_all_children_number(client, path):
    """getAllChildrenNumber (opcode 104): number of descendants of path."""

    def parse(buf, offset):
        if len(buf) - offset != 4:
            raise ResponseShapeError("GetAllChildrenNumberResponse must be 4 bytes")
        return int_struct.unpack_from(buf, offset)[0]

    return call(client, _Raw(104, write_string(path), parse, path))


# ---------------------------------------------------------------- watches ---
class EventTap(object):
    """Record all notifications for a client; dispatch persistent watches."""

    def __init__(self, client):
        self.client = client
        self.lock = threading.Lock()
        self.events = []  # (type:int, path:str) in arrival order
        self.persistent = []  # [path, mode, func]
        conn = client._connection
        original = conn._read_watch_event

        def tapped(buffer, offset):
            watch, _ = Watch.deserialize(buffer, offset)
            with self.lock:
                self.events.append((watch.type, watch.path))
                targets = [f for (p, m, f) in self.persistent if _persistent_matches(p, m, watch)]
            if targets and not client._stopped.is_set():
                ev = WatchedEvent(EVENT_TYPE_MAP.get(watch.type, watch.type), client._state, watch.path)
                for f in targets:
                    client.handler.dispatch_callback(Callback("watch", f, (ev,)))
            return original(buffer, offset)

        conn._read_watch_event = tapped

    def snapshot(self, path_prefix=None):
        with self.lock:
            evs = list(self.events)
        if path_prefix is None:
            return evs
        return [e for e in evs if e[1] == path_prefix or e[1].startswith(path_prefix.rstrip("/") + "/")]

    def clear(self):
        with self.lock:
            del self.events[:]


def _persistent_matches(path, mode, watch):
    if mode == ADD_WATCH_PERSISTENT:
        return watch.path == path
    if watch.type == EV_NODE_CHILDREN_CHANGED:
        return False
    return watch.path == path or path == "/" or watch.path.startswith(path + "/")


def tap(client):
    """The EventTap of a client (installed on first use, before any watch is set)."""
    t = getattr(client, "_compat_event_tap", None)
    if t is None:
        _require_internals()
        t = EventTap(client)
        client._compat_event_tap = t
    return t


def add_watch(client, path, func, mode):
    """addWatch (opcode 106) with a persistent / persistent-recursive mode."""
    t = tap(client)
    if hasattr(client, "add_watch"):  # a future kazoo with native support
        return client.add_watch(path, func, mode)
    payload = write_string(path) + int_struct.pack(mode)
    # Java client reads an ErrorResponse (one int, 0) as the body.
    result = call(client, _Raw(106, payload, _expect_body(b"\x00\x00\x00\x00"), path))
    with t.lock:
        t.persistent.append([path, mode, func])
    return result


def remove_watches(client, path, watcher_type=WATCHER_ANY):
    """removeWatches (opcode 18): removes this session's watches of that type on path."""
    payload = write_string(path) + int_struct.pack(watcher_type)
    result = call(client, _Raw(18, payload, _expect_body(b""), path))
    t = getattr(client, "_compat_event_tap", None)
    if t is not None and watcher_type == WATCHER_ANY:
        with t.lock:
            t.persistent = [w for w in t.persistent if w[0] != path]
    if watcher_type in (WATCHER_DATA, WATCHER_ANY):
        client._data_watchers.pop(path, None)
    if watcher_type in (WATCHER_CHILDREN, WATCHER_ANY):
        client._child_watchers.pop(path, None)
    return result


def check_watches(client, path, watcher_type=WATCHER_ANY):
    """checkWatches (opcode 17): raises NoWatcherError if no such watch exists."""
    payload = write_string(path) + int_struct.pack(watcher_type)
    return call(client, _Raw(17, payload, _expect_body(b""), path))


def flush_callbacks(client, timeout=10):
    """Wait until every callback kazoo has queued so far has run.

    kazoo runs watch callbacks in order on one thread; a marker queued now runs
    after everything received before it. Combined with ZooKeeper's ordering
    guarantee (a watch event reaches the client before the response of any
    later request on the same session), calling this after a request returns
    means every event triggered before that request has been delivered.
    """
    done = threading.Event()
    client.handler.dispatch_callback(Callback("watch", done.set, ()))
    if not done.wait(timeout):
        raise AssertionError("kazoo callback queue did not drain within %ss" % timeout)


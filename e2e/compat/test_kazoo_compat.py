"""Black-box compatibility tests: kazoo against a ZooKeeper-compatible server.

Run:  ZK_HOSTS=127.0.0.1:21810 e2e/.venv/bin/python -m pytest e2e/compat -q

Every assertion here was checked against Apache ZooKeeper 3.8.0 (Debian),
see e2e/compat/run_reference.sh. Opcodes kazoo 2.11.0 lacks (containers,
TTL, addWatch, removeWatches, checkWatches, getEphemerals,
getAllChildrenNumber) go through kazoo's own connection via kazoo_ext.
"""

import threading
import time

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    AuthFailedError,
    BadArgumentsError,
    BadVersionError,
    InvalidACLError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    NoWatcherError,
    RolledBackError,
    RuntimeInconsistency,
    UnimplementedError,
    ZookeeperError,
)
from kazoo.protocol.states import EventType, ZnodeStat
from kazoo.security import (
    ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    Permissions,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)

import kazoo_ext as kx
from conftest import REAP_WAIT, SUPER_AUTH, WAIT, ZK_HOSTS, close_client, wait_until

MIN_SESSION_TIMEOUT_MS = 4000  # 2 * tickTime(2000)


def ev(e):
    """A watch event as a comparable tuple."""
    return (e.type, e.state, e.path)


def changed(p):
    return (EventType.CHANGED, KazooState.CONNECTED, p)


def created(p):
    return (EventType.CREATED, KazooState.CONNECTED, p)


def deleted(p):
    return (EventType.DELETED, KazooState.CONNECTED, p)


def child(p):
    return (EventType.CHILD, KazooState.CONNECTED, p)


# --------------------------------------------------------------- basics ---
def test_create_get_set_delete(zk, root):
    p = root + "/node"
    assert zk.create(p, b"hello") == p
    data, st = zk.get(p)
    assert data == b"hello"
    assert st.version == 0 and st.dataLength == 5
    st2 = zk.set(p, b"world!")
    assert st2.version == 1 and st2.dataLength == 6
    assert zk.get(p)[0] == b"world!"
    assert zk.get_children(root) == ["node"]
    zk.delete(p)
    assert zk.exists(p) is None
    assert zk.get_children(root) == []
    with pytest.raises(NoNodeError):
        zk.get(p)


def test_empty_and_binary_data(zk, root):
    _, st = zk.create(root + "/empty", include_data=True)
    assert st.dataLength == 0
    assert zk.get(root + "/empty")[0] == b""
    blob = bytes(range(256)) * 4
    zk.create(root + "/bin", blob)
    data, st = zk.get(root + "/bin")
    assert data == blob and st.dataLength == 1024


def test_null_data_is_not_empty_data(zk, root):
    # kazoo sends value=None as a null buffer (length -1) and reads one back as
    # None; ZooKeeper keeps null data apart from b"".
    n, e = root + "/null", root + "/empty"
    _, st = zk.create(n, None, include_data=True)
    assert st.dataLength == 0
    zk.create(e, b"")
    assert zk.get(n) == (None, zk.exists(n))
    assert zk.get(e)[0] == b""
    st = zk.set(e, None)
    assert st.version == 1 and st.dataLength == 0
    assert zk.get(e)[0] is None
    zk.set(n, b"x")
    assert zk.get(n)[0] == b"x"
    zk.set(n, None)
    assert zk.get(n)[0] is None
    kids, parent = zk.get_children(root, include_data=True)
    assert sorted(kids) == ["empty", "null"] and parent.numChildren == 2


def test_large_value_roundtrip(zk, root):
    value = b"v" * 1000000  # just under jute.maxbuffer (0xfffff) with framing
    zk.create(root + "/big", value)
    data, st = zk.get(root + "/big")
    assert data == value and st.dataLength == len(value)


def test_oversized_request_rejected_session_survives(zk, root):
    sid = zk.client_id[0]
    # Apache ZooKeeper closes the connection ("Len error", > jute.maxbuffer),
    # so the client sees ConnectionLoss; any ZooKeeper error is acceptable,
    # but the node must not exist and the session must survive.
    with pytest.raises(ZookeeperError):
        zk.create(root + "/too-big", b"x" * (1024 * 1024 + 16))
    wait_until(lambda: zk.connected and zk.client_id is not None, what="reconnect")
    assert zk.client_id[0] == sid
    assert zk.exists(root + "/too-big") is None


# ----------------------------------------------------------------- stat ---
def test_stat_fields(zk, root):
    p = root + "/s"
    path, st = zk.create(p, b"hello", include_data=True)
    z_create = zk.last_zxid
    assert path == p
    assert st.czxid == z_create and st.mzxid == z_create and st.pzxid == z_create
    assert (st.version, st.cversion, st.aversion) == (0, 0, 0)
    assert st.dataLength == 5 and st.numChildren == 0 and st.ephemeralOwner == 0
    assert st.ctime == st.mtime
    assert abs(st.ctime / 1000.0 - time.time()) < 300, "ctime is epoch milliseconds"
    assert zk.exists(p) == st
    assert zk.get(p)[1] == st

    st2 = zk.set(p, b"hi")
    z_set = zk.last_zxid
    assert z_set > z_create
    assert st2.mzxid == z_set and st2.czxid == z_create and st2.pzxid == z_create
    assert st2.version == 1 and st2.dataLength == 2 and st2.ctime == st.ctime
    assert st2.mtime >= st2.ctime

    zk.create(p + "/c1")
    z_child = zk.last_zxid
    pst = zk.exists(p)
    assert pst.cversion == 1 and pst.numChildren == 1 and pst.pzxid == z_child
    assert pst.mzxid == z_set and pst.version == 1, "child create must not touch parent data"

    zk.set(p + "/c1", b"x")
    assert zk.exists(p).pzxid == z_child, "child data change must not touch parent pzxid"

    zk.delete(p + "/c1")
    z_del = zk.last_zxid
    pst = zk.exists(p)
    assert pst.cversion == 2 and pst.numChildren == 0 and pst.pzxid == z_del

    zk.set_acls(p, OPEN_ACL_UNSAFE)
    ast = zk.exists(p)
    assert ast.aversion == 1 and ast.version == 1 and ast.mzxid == z_set

    _, est = zk.create(p + "/eph", ephemeral=True, include_data=True)
    assert est.ephemeralOwner == zk.client_id[0]
    # root's own stat reflects our test root as a child
    assert zk.exists(root).numChildren == 1


def test_zxids_strictly_increase(zk, root):
    zxids = []
    for i in range(5):
        zk.create("%s/n%d" % (root, i))
        zxids.append(zk.last_zxid)
        zk.set("%s/n%d" % (root, i), b"x")
        zxids.append(zk.last_zxid)
    assert zxids == sorted(zxids) and len(set(zxids)) == len(zxids)


# --------------------------------------------------------------- errors ---
def test_error_codes(zk, root):
    missing = root + "/missing"
    with pytest.raises(NoNodeError):
        zk.get(missing)
    with pytest.raises(NoNodeError):
        zk.set(missing, b"x")
    with pytest.raises(NoNodeError):
        zk.delete(missing)
    with pytest.raises(NoNodeError):
        zk.get_children(missing)
    with pytest.raises(NoNodeError):
        zk.get_acls(missing)
    with pytest.raises(NoNodeError):
        zk.create(missing + "/child")
    assert zk.exists(missing) is None

    zk.create(root + "/a")
    with pytest.raises(NodeExistsError):
        zk.create(root + "/a")
    zk.create(root + "/a/b")
    with pytest.raises(NotEmptyError):
        zk.delete(root + "/a")
    with pytest.raises(BadVersionError):
        zk.set(root + "/a", b"x", version=3)
    with pytest.raises(BadVersionError):
        zk.delete(root + "/a/b", version=3)

    zk.create(root + "/e", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(root + "/e/child")
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(root + "/e/seq-", sequence=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(root + "/e/eph", ephemeral=True)

    with pytest.raises(InvalidACLError):
        zk.create(root + "/bad-acl", acl=[ACL(Permissions.ALL, Id("bogus-scheme", "x"))])
    # `auth` scheme needs an authenticated identity on the session
    with pytest.raises(InvalidACLError):
        zk.create(root + "/auth-acl", acl=[ACL(Permissions.ALL, Id("auth", ""))])
    # unknown CreateMode flag value
    with pytest.raises(BadArgumentsError):
        kx.create_raw_mode(zk, root + "/bad-mode", flags=7)
    # TTL mode through plain create2 (no ttl field) is rejected
    with pytest.raises(BadArgumentsError):
        kx.create_raw_mode(zk, root + "/ttl-mode", flags=kx.PERSISTENT_WITH_TTL)
    assert sorted(zk.get_children(root)) == ["a", "e"]


def test_conditional_set_and_delete(zk, root):
    p = root + "/cas"
    zk.create(p, b"0")
    assert zk.set(p, b"1", version=0).version == 1
    with pytest.raises(BadVersionError):
        zk.set(p, b"stale", version=0)
    assert zk.get(p) == (b"1", zk.exists(p))
    assert zk.set(p, b"2", version=-1).version == 2, "-1 matches any version"
    with pytest.raises(BadVersionError):
        zk.delete(p, version=1)
    assert zk.exists(p) is not None
    zk.delete(p, version=2)
    assert zk.exists(p) is None


# ----------------------------------------------------------- ephemerals ---
def test_ephemeral_visible_then_gone_after_close(make_client, root):
    a = make_client()
    b = make_client()
    p = root + "/eph"
    _, st = a.create(p, b"x", ephemeral=True, include_data=True)
    assert st.ephemeralOwner == a.client_id[0]
    events = []
    bst = b.exists(p, watch=events.append)
    assert bst.ephemeralOwner == a.client_id[0]
    assert b.get_children(root) == ["eph"]
    assert kx.get_ephemerals(a, root) == [p]
    assert kx.get_ephemerals(b, root) == []

    a.stop()  # closeSession: ephemerals go with the session, atomically
    b.sync(root)
    assert b.exists(p) is None
    assert b.get_children(root) == []
    kx.flush_callbacks(b)
    assert [ev(e) for e in events] == [deleted(p)]
    pst = b.exists(root)
    assert pst.numChildren == 0 and pst.cversion == 2


def test_get_ephemerals_and_all_children_number(zk, make_client, root):
    other = make_client()
    zk.create(root + "/x/y", makepath=True)
    zk.create(root + "/x/y/e1", ephemeral=True)
    zk.create(root + "/x/e2", ephemeral=True)
    other.create(root + "/x/e3", ephemeral=True)
    assert sorted(kx.get_ephemerals(zk, root)) == [root + "/x/e2", root + "/x/y/e1"]
    assert kx.get_ephemerals(zk, root + "/x/y") == [root + "/x/y/e1"]
    assert kx.get_ephemerals(other, root) == [root + "/x/e3"]
    assert kx.get_all_children_number(zk, root) == 5
    assert kx.get_all_children_number(zk, root + "/x/y") == 1
    with pytest.raises(NoNodeError):
        kx.get_all_children_number(zk, root + "/nope")


# ----------------------------------------------------------- sequential ---
def test_sequential_suffix_counts_child_creations(zk, root):
    """The suffix is the parent's count of child *creations* (ZooKeeper's
    persisted cversion), zero-padded to 10 digits. Deletions do not advance it,
    although the client-visible Stat.cversion counts them: ZooKeeper reports
    Stat.cversion = 2 * creations - numChildren (DataNode.copyStat)."""
    parent = root + "/q"
    zk.create(parent)
    names = [zk.create(parent + "/item-", b"", sequence=True) for _ in range(3)]
    assert names == [parent + "/item-%010d" % i for i in range(3)]
    assert zk.exists(parent).cversion == 3
    zk.create(parent + "/plain")  # 4th creation
    zk.delete(parent + "/plain")
    assert zk.exists(parent).cversion == 5, "Stat.cversion counts creations and deletions"
    p4 = zk.create(parent + "/item-", sequence=True)
    assert p4 == parent + "/item-0000000004", "a deletion does not advance the sequence"
    p5, st = zk.create(parent + "/eitem-", ephemeral=True, sequence=True, include_data=True)
    assert p5 == parent + "/eitem-0000000005"
    assert st.ephemeralOwner == zk.client_id[0]
    p6 = zk.create(parent + "/", sequence=True)
    assert p6 == parent + "/0000000006"
    zk.delete(parent + "/item-0000000000")
    zk.delete(parent + "/item-0000000001")
    p7 = zk.create(parent + "/item-", sequence=True)
    assert p7 == parent + "/item-0000000007"
    st = zk.exists(parent)
    # 8 creations, 3 deletions -> 5 children, cversion 2*8 - 5 = 11
    assert st.numChildren == 5 and st.cversion == 11
    assert sorted(zk.get_children(parent)) == sorted(
        ["item-0000000002", "item-0000000004", "eitem-0000000005", "0000000006", "item-0000000007"])
    # the parent's own sequence counter is per parent
    assert zk.create(root + "/other-", sequence=True) == root + "/other-0000000001"


# ----------------------------------------------------- container & TTL ---
def test_container_nodes(zk, make_client, root):
    other = make_client()
    never_used = root + "/never-used"
    used = root + "/used"
    kept = root + "/kept"
    eph_owned = root + "/eph-owned"
    path, st = kx.create_container(zk, never_used)
    assert path == never_used
    assert st.version == 0 and st.numChildren == 0
    assert st.ephemeralOwner == 0, "containers report ephemeralOwner 0 (as ZooKeeper 3.8 does)"
    kx.create_container(zk, used)
    kx.create_container(zk, kept)
    kx.create_container(zk, eph_owned)
    zk.create(kept + "/child")
    zk.create(used + "/child")
    other.create(eph_owned + "/lock", ephemeral=True)
    events = []
    zk.exists(used, watch=events.append)

    zk.delete(used + "/child")
    other.stop()  # the ephemeral child goes; its container is now empty too
    wait_until(lambda: zk.exists(used) is None, timeout=REAP_WAIT, what="emptied container reaped")
    wait_until(lambda: zk.exists(eph_owned) is None, timeout=REAP_WAIT,
               what="container emptied by session close reaped")
    kx.flush_callbacks(zk)
    assert [ev(e) for e in events] == [deleted(used)]
    assert zk.exists(never_used) is not None, "a container that never had a child stays"
    assert zk.exists(kept) is not None, "a container with a child stays"
    assert zk.get_children(kept) == ["child"]


def test_ttl_nodes(zk, root):
    with_child = root + "/ttl-with-child"
    kx.create_ttl(zk, with_child, b"", ttl_ms=200)
    zk.create(with_child + "/c")
    path, st = kx.create_ttl(zk, root + "/ttl", b"v", ttl_ms=200)
    assert path == root + "/ttl"
    assert st.version == 0 and st.dataLength == 1
    assert st.ephemeralOwner == 0, "TTL nodes report ephemeralOwner 0 (as ZooKeeper 3.8 does)"
    long_lived, _ = kx.create_ttl(zk, root + "/ttl-long", b"", ttl_ms=3600 * 1000)
    wait_until(lambda: zk.exists(root + "/ttl") is None, timeout=REAP_WAIT, what="TTL node expiry")
    assert zk.exists(with_child) is not None, "a TTL node with children does not expire"
    assert zk.exists(long_lived) is not None

    seq, _ = kx.create_ttl(zk, root + "/tseq-", b"", ttl_ms=3600 * 1000, sequence=True)
    # creations under root so far: ttl-with-child, ttl, ttl-long
    assert seq == root + "/tseq-0000000003"
    with pytest.raises(BadArgumentsError):
        kx.create_ttl(zk, root + "/ttl0", ttl_ms=0)
    with pytest.raises(BadArgumentsError):
        kx.create_ttl(zk, root + "/ttl-huge", ttl_ms=1 << 40)
    with pytest.raises(BadArgumentsError):
        kx.create_ttl(zk, root + "/ttl-neg", ttl_ms=-5)


# -------------------------------------------------------------- watches ---
def test_one_shot_data_watch(zk, make_client, root):
    other = make_client()
    p = root + "/w"
    zk.create(p, b"0")
    got = []
    assert zk.get(p, watch=got.append)[0] == b"0"
    other.set(p, b"1")
    other.set(p, b"2")
    zk.exists(p)  # any later reply on our session comes after the event
    kx.flush_callbacks(zk)
    assert [ev(e) for e in got] == [changed(p)], "one-shot: exactly one event"


def test_exists_watch_on_missing_node_fires_created(zk, root):
    p = root + "/later"
    got = []
    assert zk.exists(p, watch=got.append) is None
    zk.create(p)
    zk.set(p, b"x")
    kx.flush_callbacks(zk)
    assert [ev(e) for e in got] == [created(p)]
    got2 = []
    zk.exists(p, watch=got2.append)
    zk.delete(p)
    kx.flush_callbacks(zk)
    assert [ev(e) for e in got2] == [deleted(p)]


def test_child_watch(zk, root):
    p = root + "/parent"
    zk.create(p)
    got = []
    assert zk.get_children(p, watch=got.append) == []
    zk.set(p, b"data change does not fire a child watch")
    zk.create(p + "/a")
    zk.create(p + "/b")
    kx.flush_callbacks(zk)
    assert [ev(e) for e in got] == [child(p)]
    got2 = []
    zk.get_children(p, watch=got2.append)
    zk.set(p + "/a", b"grandchild data change: no event")
    zk.delete(p + "/a")
    kx.flush_callbacks(zk)
    assert [ev(e) for e in got2] == [child(p)]


def test_delete_fires_data_and_child_watches_once(zk, root):
    t = kx.tap(zk)
    p = root + "/doomed"
    zk.create(p)
    data_got, exists_got, child_got, parent_got = [], [], [], []
    zk.get(p, watch=data_got.append)
    zk.exists(p, watch=exists_got.append)
    zk.get_children(p, watch=child_got.append)
    zk.get_children(root, watch=parent_got.append)
    zk.delete(p)
    kx.flush_callbacks(zk)
    assert [ev(e) for e in data_got] == [deleted(p)]
    assert [ev(e) for e in exists_got] == [deleted(p)]
    assert [ev(e) for e in child_got] == [deleted(p)]
    assert [ev(e) for e in parent_got] == [child(root)]
    # on the wire: one notification per (path, type) per session, no duplicates
    assert t.snapshot(root) == [(kx.EV_NODE_DELETED, p), (kx.EV_NODE_CHILDREN_CHANGED, root)]


def test_watch_event_arrives_before_read_of_new_data(zk, make_client, root):
    """A client sees the watch event before it can read the data that fired it."""
    writer = make_client()
    p = root + "/order"
    zk.create(p, b"0")
    t = kx.tap(zk)
    for i in range(1, 21):
        zk.get(p, watch=lambda e: None)
        writer.set(p, str(i).encode())
        data, _ = zk.get(p)  # standalone server: the write is already applied
        assert data == str(i).encode()
        # the tap records notifications on the reader thread, in socket order,
        # before the reply above was handed to us
        assert len(t.snapshot(p)) == i, "event %d must precede the reply showing its data" % i
    assert t.snapshot(p) == [(kx.EV_NODE_DATA_CHANGED, p)] * 20


def test_datawatch_and_childrenwatch_recipes(zk, make_client, root):
    writer = make_client()
    p = root + "/dw"
    zk.create(p, b"v0")
    seen = []

    @zk.DataWatch(p)
    def _data(data, stat):
        seen.append((data, stat.version if stat else None))

    wait_until(lambda: seen == [(b"v0", 0)], what="DataWatch initial call")
    writer.set(p, b"v1")
    wait_until(lambda: len(seen) >= 2, what="DataWatch change")
    writer.delete(p)
    wait_until(lambda: len(seen) >= 3, what="DataWatch delete")
    writer.create(p, b"again")
    wait_until(lambda: len(seen) >= 4, what="DataWatch re-create")
    assert seen == [(b"v0", 0), (b"v1", 1), (None, None), (b"again", 0)]

    c = root + "/cw"
    zk.create(c)
    lists = []

    @zk.ChildrenWatch(c)
    def _children(children):
        lists.append(sorted(children))

    wait_until(lambda: lists == [[]], what="ChildrenWatch initial call")
    writer.create(c + "/a")
    wait_until(lambda: len(lists) >= 2, what="ChildrenWatch add a")
    writer.create(c + "/b")
    wait_until(lambda: len(lists) >= 3, what="ChildrenWatch add b")
    writer.delete(c + "/a")
    wait_until(lambda: len(lists) >= 4, what="ChildrenWatch remove a")
    assert lists == [[], ["a"], ["a", "b"], ["b"]]


def test_persistent_watch(zk, root):
    t = kx.tap(zk)
    p = root + "/pw"
    zk.create(p)
    got = []
    assert kx.add_watch(zk, p, got.append, kx.ADD_WATCH_PERSISTENT) is True
    zk.set(p, b"1")
    zk.set(p, b"2")
    zk.create(p + "/c")
    zk.create(p + "/c/gc")  # grandchild: not reported by a non-recursive watch
    zk.set(p + "/c", b"x")  # child data: not reported
    zk.delete(p + "/c/gc")
    zk.delete(p + "/c")
    zk.delete(p)
    zk.create(p)  # the watch outlives the node
    kx.flush_callbacks(zk)
    expected = [(kx.EV_NODE_DATA_CHANGED, p), (kx.EV_NODE_DATA_CHANGED, p),
                (kx.EV_NODE_CHILDREN_CHANGED, p), (kx.EV_NODE_CHILDREN_CHANGED, p),
                (kx.EV_NODE_DELETED, p), (kx.EV_NODE_CREATED, p)]
    assert t.snapshot(root) == expected
    assert [ev(e) for e in got] == [changed(p), changed(p), child(p), child(p), deleted(p), created(p)]

    assert kx.check_watches(zk, p, kx.WATCHER_ANY) is True
    assert kx.remove_watches(zk, p, kx.WATCHER_ANY) is True
    zk.set(p, b"after removal")
    kx.flush_callbacks(zk)
    assert len(t.snapshot(root)) == len(expected), "no events after removeWatches"
    with pytest.raises(NoWatcherError):
        kx.remove_watches(zk, p, kx.WATCHER_ANY)
    with pytest.raises(NoWatcherError):
        kx.check_watches(zk, p, kx.WATCHER_ANY)


def test_persistent_recursive_watch(zk, root):
    t = kx.tap(zk)
    p = root + "/tree"
    zk.create(p)
    got = []
    kx.add_watch(zk, p, got.append, kx.ADD_WATCH_PERSISTENT_RECURSIVE)
    zk.create(p + "/a")
    zk.create(p + "/a/b")
    zk.set(p + "/a/b", b"1")
    zk.set(p, b"top")
    zk.create(p + "x")  # sibling sharing the name prefix: not under p
    zk.create(root + "/elsewhere")
    zk.delete(p + "/a/b")
    kx.flush_callbacks(zk)
    expected = [(kx.EV_NODE_CREATED, p + "/a"), (kx.EV_NODE_CREATED, p + "/a/b"),
                (kx.EV_NODE_DATA_CHANGED, p + "/a/b"), (kx.EV_NODE_DATA_CHANGED, p),
                (kx.EV_NODE_DELETED, p + "/a/b")]
    assert t.snapshot(root) == expected, "recursive watches never send NodeChildrenChanged"
    assert [ev(e) for e in got] == [created(p + "/a"), created(p + "/a/b"), changed(p + "/a/b"),
                                    changed(p), deleted(p + "/a/b")]

    # a one-shot watch on a path also covered by the recursive watch:
    # still one notification on the wire, delivered to both
    oneshot = []
    zk.get(p + "/a", watch=oneshot.append)
    zk.set(p + "/a", b"z")
    kx.flush_callbacks(zk)
    assert t.snapshot(root)[len(expected):] == [(kx.EV_NODE_DATA_CHANGED, p + "/a")]
    assert [ev(e) for e in oneshot] == [changed(p + "/a")]
    assert ev(got[-1]) == changed(p + "/a")

    assert kx.remove_watches(zk, p, kx.WATCHER_ANY) is True
    zk.create(p + "/after")
    kx.flush_callbacks(zk)
    assert len(t.snapshot(root)) == len(expected) + 1


def test_remove_one_shot_watches_by_type(zk, root):
    t = kx.tap(zk)
    p = root + "/rw"
    zk.create(p)
    data_got, child_got = [], []
    zk.get(p, watch=data_got.append)
    zk.get_children(p, watch=child_got.append)
    assert kx.check_watches(zk, p, kx.WATCHER_DATA) is True
    assert kx.check_watches(zk, p, kx.WATCHER_CHILDREN) is True
    assert kx.remove_watches(zk, p, kx.WATCHER_DATA) is True
    with pytest.raises(NoWatcherError):
        kx.check_watches(zk, p, kx.WATCHER_DATA)
    zk.set(p, b"no data watch left")
    zk.create(p + "/kid")
    kx.flush_callbacks(zk)
    assert t.snapshot(root) == [(kx.EV_NODE_CHILDREN_CHANGED, p)]
    assert data_got == [] and [ev(e) for e in child_got] == [child(p)]
    with pytest.raises(NoWatcherError):
        kx.remove_watches(zk, p, kx.WATCHER_CHILDREN)


# ---------------------------------------------------------- transactions ---
def test_transaction_success_results(zk, root):
    a = root + "/a"
    zk.create(root + "/old", b"o")
    t = zk.transaction()
    t.create(a, b"A")
    t.create(a + "/kid")  # sees the create before it
    t.set_data(a, b"A2")
    t.check(a, 1)
    t.delete(a + "/kid")
    t.create(root + "/seq-", sequence=True)
    t.delete(root + "/old", version=0)
    results = t.commit()
    assert len(results) == 7
    assert results[0] == a and results[1] == a + "/kid"
    assert isinstance(results[2], ZnodeStat) and results[2].version == 1
    assert results[3] is True and results[4] is True
    assert results[5] == root + "/seq-0000000002"  # creations before it: old, a
    assert results[6] is True
    data, st = zk.get(a)
    assert data == b"A2" and st.version == 1 and st.numChildren == 0 and st.cversion == 2
    # all ops share one zxid
    assert st.czxid == st.mzxid == results[2].mzxid == st.pzxid
    assert zk.exists(root + "/old") is None


def test_transaction_failure_rolls_back_everything(zk, root):
    zk.create(root + "/exists", b"e")
    zk.create(root + "/victim", b"v")
    watched = []
    zk.get(root + "/victim", watch=watched.append)
    before = zk.exists(root)
    t = zk.transaction()
    t.create(root + "/new")
    t.set_data(root + "/victim", b"changed")
    t.create(root + "/exists")  # fails: NodeExists
    t.delete(root + "/victim")
    t.check(root + "/victim", 0)
    results = t.commit()
    assert [type(r) for r in results] == [
        RolledBackError, RolledBackError, NodeExistsError, RuntimeInconsistency, RuntimeInconsistency]
    assert zk.exists(root + "/new") is None
    assert zk.get(root + "/victim")[0] == b"v"
    after = zk.exists(root)
    assert (after.cversion, after.numChildren, after.pzxid) == (before.cversion, before.numChildren, before.pzxid)
    kx.flush_callbacks(zk)
    assert watched == [], "a failed multi fires no watches"


def test_transaction_check_op(zk, root):
    p = root + "/c"
    zk.create(p)
    t = zk.transaction()
    t.check(p, 5)
    t.create(root + "/x")
    assert [type(r) for r in t.commit()] == [BadVersionError, RuntimeInconsistency]
    t = zk.transaction()
    t.check(root + "/missing", 0)
    assert [type(r) for r in t.commit()] == [NoNodeError]
    t = zk.transaction()
    t.create(root + "/y")
    t.check(p, 0)
    t.set_data(p, b"v", version=0)
    t.check(p, 1)
    res = t.commit()
    assert res[0] == root + "/y" and res[1] is True and res[3] is True
    assert res[2].version == 1
    t = zk.transaction()
    assert t.commit() == [], "an empty multi succeeds with no results"


def test_transaction_fires_watches(zk, make_client, root):
    other = make_client()
    p = root + "/tw"
    zk.create(p, b"0")
    got, kids = [], []
    zk.get(p, watch=got.append)
    zk.get_children(root, watch=kids.append)
    t = other.transaction()
    t.set_data(p, b"1")
    t.create(root + "/new")
    assert len(t.commit()) == 2
    zk.sync(root)
    zk.exists(p)
    kx.flush_callbacks(zk)
    assert [ev(e) for e in got] == [changed(p)]
    assert [ev(e) for e in kids] == [child(root)]


# ------------------------------------------------------------------ ACLs ---
def test_world_acl_default(zk, root):
    zk.create(root + "/n")
    acls, st = zk.get_acls(root + "/n")
    assert acls == [ACL(Permissions.ALL, Id("world", "anyone"))]
    assert st.aversion == 0
    zk.create(root + "/ro", acl=READ_ACL_UNSAFE)
    assert zk.get(root + "/ro")[0] == b""
    with pytest.raises(NoAuthError):
        zk.set(root + "/ro", b"x")
    with pytest.raises(NoAuthError):
        zk.create(root + "/ro/child")


def test_digest_acl(make_client, root):
    owner = make_client(auth_data=[("digest", "alice:pw1")])
    anon = make_client()
    p = root + "/secret"
    acl = make_digest_acl("alice", "pw1", all=True)
    owner.create(p, b"s3cr3t", acl=[acl])
    owner.create(p + "/kid", b"k")
    acls, _ = owner.get_acls(p)
    assert acls == [ACL(Permissions.ALL, Id("digest", make_digest_acl_credential("alice", "pw1")))]
    with pytest.raises(NoAuthError):
        anon.get_acls(p)  # getACL needs READ or ADMIN (ZooKeeper >= 3.6)
    assert anon.exists(p) is not None, "exists needs no permission"
    with pytest.raises(NoAuthError):
        anon.get(p)
    with pytest.raises(NoAuthError):
        anon.get_children(p)
    with pytest.raises(NoAuthError):
        anon.set(p, b"x")
    with pytest.raises(NoAuthError):
        anon.create(p + "/new")
    with pytest.raises(NoAuthError):
        anon.delete(p + "/kid")
    with pytest.raises(NoAuthError):
        anon.set_acls(p, OPEN_ACL_UNSAFE)
    anon.add_auth("digest", "alice:wrong")  # digest auth itself always succeeds
    with pytest.raises(NoAuthError):
        anon.get(p)
    anon.add_auth("digest", "alice:pw1")  # identities accumulate on the session
    assert anon.get(p)[0] == b"s3cr3t"
    assert owner.get(p)[0] == b"s3cr3t"


def test_acl_permission_bits(make_client, root):
    owner = make_client(auth_data=[("digest", "bob:pw")])
    anon = make_client()
    p = root + "/perm"
    # bob: everything; world: read + create only
    owner.create(p, b"d", acl=[make_digest_acl("bob", "pw", all=True),
                               make_acl("world", "anyone", read=True, create=True)])
    assert anon.get(p)[0] == b"d"
    anon.create(p + "/by-anon")
    with pytest.raises(NoAuthError):
        anon.set(p, b"x")
    with pytest.raises(NoAuthError):
        anon.delete(p + "/by-anon")  # delete needs DELETE on the parent
    owner.delete(p + "/by-anon")


def test_set_acls_with_version(zk, root):
    p = root + "/acl"
    zk.create(p)
    read_admin = [make_acl("world", "anyone", read=True, admin=True)]
    st = zk.set_acls(p, read_admin, version=0)
    assert st.aversion == 1 and st.version == 0
    with pytest.raises(BadVersionError):
        zk.set_acls(p, OPEN_ACL_UNSAFE, version=0)
    acls, st = zk.get_acls(p)
    assert acls == read_admin and st.aversion == 1
    with pytest.raises(NoAuthError):
        zk.set(p, b"x")  # no WRITE
    st = zk.set_acls(p, READ_ACL_UNSAFE, version=-1)
    assert st.aversion == 2
    # setACL needs ADMIN, and the permission check comes before the version check
    with pytest.raises(NoAuthError):
        zk.set_acls(p, OPEN_ACL_UNSAFE, version=0)
    with pytest.raises(NoAuthError):
        zk.set_acls(p, OPEN_ACL_UNSAFE, version=2)
    assert zk.get_acls(p)[0] == READ_ACL_UNSAFE


def test_ip_acl(zk, root):
    local_ip = zk._connection._socket.getsockname()[0]
    if local_ip.startswith("::ffff:"):
        local_ip = local_ip[len("::ffff:"):]
    p = root + "/ip"
    zk.create(p, b"mine", acl=[make_acl("ip", local_ip, all=True)])
    assert zk.get(p)[0] == b"mine"
    zk.set(p, b"still mine")
    zk.create(root + "/net", b"n", acl=[make_acl("ip", "127.0.0.0/8", read=True)])
    assert zk.get(root + "/net")[0] == b"n"
    zk.create(root + "/other", b"o", acl=[make_acl("ip", "10.1.2.3", all=True)])
    with pytest.raises(NoAuthError):
        zk.get(root + "/other")


def test_auth_scheme_acl(make_client, root):
    carol = make_client(auth_data=[("digest", "carol:pw")])
    anon = make_client()
    p = root + "/authacl"
    carol.create(p, b"c", acl=[ACL(Permissions.ALL, Id("auth", ""))])
    acls, _ = carol.get_acls(p)
    # the server expands `auth` into the session's authenticated identities
    assert acls == [ACL(Permissions.ALL, Id("digest", make_digest_acl_credential("carol", "pw")))]
    assert carol.get(p)[0] == b"c"
    with pytest.raises(NoAuthError):
        anon.get(p)


def test_super_user_bypasses_acls(make_client, root):
    owner = make_client(auth_data=[("digest", "dave:pw")])
    p = root + "/locked"
    owner.create(p, b"x", acl=[make_digest_acl("dave", "pw", read=True)])  # even dave can't write
    with pytest.raises(NoAuthError):
        owner.set(p, b"y")
    su = make_client(auth_data=[("digest", SUPER_AUTH)])
    assert su.get(p)[0] == b"x"
    su.set(p, b"by super")
    su.set_acls(p, OPEN_ACL_UNSAFE)
    su.delete(p)
    assert su.exists(p) is None


def test_unknown_auth_scheme_fails_session(make_client):
    c = make_client()
    # the server answers the auth packet (xid -4) with AUTHFAILED (-115) and
    # closes the connection; see test_wire_compat for the exact bytes
    with pytest.raises(AuthFailedError):
        c.add_auth("no-such-scheme", "whatever")


# -------------------------------------------------------------- sessions ---
def test_session_resume_with_id_and_password(make_client, holder, root):
    p = root + "/held"
    h = holder([p], session_timeout=10.0)
    h.freeze()  # alive but silent: it will not fight over the session
    c = make_client(client_id=(h.session_id, h.password))
    assert c.client_id[0] == h.session_id, "same session id after resume"
    st = c.exists(p)
    assert st is not None and st.ephemeralOwner == h.session_id, "ephemerals kept"
    c.create(root + "/mine", ephemeral=True)
    c.stop()  # closing the resumed session removes every ephemeral of it
    observer = make_client()
    assert observer.exists(p) is None
    assert observer.exists(root + "/mine") is None


def test_resume_with_wrong_password_gets_new_session(make_client, holder, root):
    p = root + "/held"
    h = holder([p], session_timeout=10.0)
    h.freeze()
    states = []
    c = KazooClient(hosts=ZK_HOSTS, timeout=10.0, client_id=(h.session_id, b"\x01" * 16))
    c.add_listener(states.append)
    try:
        # The server answers the ConnectRequest with timeout 0 / session 0
        # (session expired); kazoo then starts a fresh session.
        c.start(timeout=WAIT)
        assert c.client_id[0] != h.session_id
        assert states[-1] == KazooState.CONNECTED
        st = c.exists(p)
        assert st is not None and st.ephemeralOwner == h.session_id, "victim session untouched"
    finally:
        close_client(c)


def test_session_expiry_removes_ephemerals(make_client, holder, root):
    p = root + "/expiring"
    h = holder([p], session_timeout=MIN_SESSION_TIMEOUT_MS / 1000.0)
    watcher = make_client()
    got = []
    assert watcher.exists(p, watch=got.append).ephemeralOwner == h.session_id
    h.freeze()
    wait_until(lambda: watcher.exists(p) is None, timeout=4 * MIN_SESSION_TIMEOUT_MS / 1000.0 + 10,
               what="ephemeral removed on session expiry")
    kx.flush_callbacks(watcher)
    assert [ev(e) for e in got] == [deleted(p)]
    states = []
    c = KazooClient(hosts=ZK_HOSTS, timeout=10.0, client_id=(h.session_id, h.password))
    c.add_listener(states.append)
    try:
        c.start(timeout=WAIT)
        assert c.client_id[0] != h.session_id, "an expired session cannot be resumed"
    finally:
        close_client(c)


def test_sync_then_read_sees_other_clients_write(zk, make_client, root):
    writer = make_client()
    p = root + "/s"
    zk.create(p, b"0")
    for i in range(1, 6):
        writer.set(p, str(i).encode())
        assert zk.sync(p) == p
        assert zk.get(p)[0] == str(i).encode()


def test_get_children_include_data(zk, root):
    for n in ("a", "b", "c"):
        zk.create(root + "/" + n)
    zk.delete(root + "/b")
    children, st = zk.get_children(root, include_data=True)
    assert sorted(children) == ["a", "c"]
    assert isinstance(st, ZnodeStat)
    assert st.numChildren == 2 and st.cversion == 4
    assert st == zk.exists(root)


def test_chroot_client(make_client, root):
    base = make_client()
    chrooted = make_client(hosts=ZK_HOSTS + root)
    assert chrooted.create("/x", b"1") == "/x"
    assert base.get(root + "/x")[0] == b"1"
    got = []
    chrooted.get("/x", watch=got.append)
    base.set(root + "/x", b"2")
    chrooted.exists("/x")
    kx.flush_callbacks(chrooted)
    assert [ev(e) for e in got] == [changed("/x")]
    seq = chrooted.create("/s-", sequence=True)
    assert seq == "/s-0000000001"
    t = chrooted.transaction()
    t.create("/y")
    assert t.commit() == ["/y"]
    assert sorted(chrooted.get_children("/")) == ["s-0000000001", "x", "y"]


def test_zookeeper_system_nodes(zk):
    assert zk.exists("/") is not None
    assert {"config", "quota"} <= set(zk.get_children("/zookeeper"))
    assert zk.exists("/zookeeper/config") is not None
    assert zk.exists("/zookeeper/quota") is not None
    acls, _ = zk.get_acls("/zookeeper/config")
    assert acls == [ACL(Permissions.READ, Id("world", "anyone"))]
    with pytest.raises(NoAuthError):
        zk.set("/zookeeper/config", b"nope")


def test_reconfig_unsupported_in_standalone(zk):
    with pytest.raises(UnimplementedError):
        zk.reconfig(joining=None, leaving="1", new_members=None)


def test_four_letter_words(zk):
    assert zk.command(b"ruok") == "imok"
    assert zk.command(b"isro") == "rw"
    srvr = zk.command(b"srvr")
    for key in ("Latency min/avg/max:", "Received:", "Sent:", "Connections:",
                "Outstanding:", "Zxid: 0x", "Mode: standalone", "Node count:"):
        assert key in srvr, "srvr lacks %r:\n%s" % (key, srvr)
    mntr = dict(line.split("\t", 1) for line in zk.command(b"mntr").splitlines() if "\t" in line)
    for key in ("zk_version", "zk_server_state", "zk_znode_count", "zk_watch_count",
                "zk_ephemerals_count", "zk_approximate_data_size", "zk_outstanding_requests",
                "zk_avg_latency", "zk_num_alive_connections"):
        assert key in mntr, "mntr lacks %s" % key
    assert mntr["zk_server_state"] == "standalone"
    assert int(mntr["zk_znode_count"]) >= 4


# --------------------------------------------------------------- recipes ---
def test_lock_mutual_exclusion_and_handover(make_client, root):
    c1 = make_client()
    c2 = make_client()
    path = root + "/lock"
    l1 = c1.Lock(path, "c1")
    l2 = c2.Lock(path, "c2")
    assert l1.acquire(timeout=WAIT)
    assert l2.acquire(blocking=False) is False
    result = {}

    def contend():
        result["got"] = l2.acquire(timeout=WAIT)

    th = threading.Thread(target=contend, daemon=True)
    th.start()
    wait_until(lambda: len(l1.contenders()) == 2, what="second contender queued")
    assert l1.contenders() == ["c1", "c2"]
    assert not l2.is_acquired
    l1.release()
    th.join(WAIT)
    assert result.get("got") is True and l2.is_acquired

    # now c2 holds it; c1 waits; c2's session closes -> c1 gets it
    l1b = c1.Lock(path, "c1-again")
    th2 = threading.Thread(target=lambda: result.__setitem__("again", l1b.acquire(timeout=WAIT)), daemon=True)
    th2.start()
    wait_until(lambda: len(l1b.contenders()) == 2, what="c1 queued behind c2")
    c2.stop()
    th2.join(WAIT)
    assert result.get("again") is True and l1b.is_acquired
    l1b.release()
    assert l1b.contenders() == []


def test_lock_stress_no_overlap(make_client, root):
    clients = [make_client(), make_client()]
    path = root + "/stress"
    state = {"inside": 0, "max_inside": 0, "done": 0}
    guard = threading.Lock()
    errors = []

    def worker(client, name):
        try:
            for i in range(5):
                lock = client.Lock(path, "%s-%d" % (name, i))
                if not lock.acquire(timeout=WAIT):
                    errors.append("%s could not acquire" % name)
                    return
                with guard:
                    state["inside"] += 1
                    state["max_inside"] = max(state["max_inside"], state["inside"])
                time.sleep(0.005)  # widen the critical section
                with guard:
                    state["inside"] -= 1
                    state["done"] += 1
                lock.release()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(clients[i % 2], "w%d" % i), daemon=True)
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 2)
    assert errors == []
    assert state["done"] == 20 and state["max_inside"] == 1


def test_election(make_client, root):
    c1 = make_client()
    c2 = make_client()
    path = root + "/election"
    leaders = []
    release = {"c1": threading.Event(), "c2": threading.Event()}

    def campaign(client, name):
        election = client.Election(path, name)

        def lead():
            leaders.append(name)
            release[name].wait(WAIT * 2)

        try:
            election.run(lead)
        except Exception:
            pass  # session closed while leading

    t1 = threading.Thread(target=campaign, args=(c1, "c1"), daemon=True)
    t1.start()
    wait_until(lambda: leaders == ["c1"], what="c1 elected")
    t2 = threading.Thread(target=campaign, args=(c2, "c2"), daemon=True)
    t2.start()
    wait_until(lambda: len(c2.Election(path).contenders()) == 2, what="c2 contending")
    assert leaders == ["c1"], "exactly one leader"
    assert c2.Election(path).contenders() == ["c1", "c2"]
    release["c1"].set()  # c1 steps down
    wait_until(lambda: leaders == ["c1", "c2"], what="c2 takes over after c1 leaves")
    t1.join(WAIT)

    # a third candidate; the current leader's session dies
    c3 = make_client()
    t3 = threading.Thread(target=campaign, args=(c3, "c3"), daemon=True)
    release["c3"] = threading.Event()
    t3.start()
    wait_until(lambda: len(c3.Election(path).contenders()) == 2, what="c3 contending")
    c2.stop()
    wait_until(lambda: leaders == ["c1", "c2", "c3"], what="c3 takes over after c2's session closes")
    release["c2"].set()
    release["c3"].set()
    t3.join(WAIT)


def test_counter_concurrent_increments(root):
    from conftest import new_client
    retry = dict(max_tries=-1, delay=0.005, backoff=1.5, max_delay=0.1, max_jitter=0.5, deadline=WAIT * 2)
    clients = [new_client(command_retry=retry) for _ in range(3)]
    path = root + "/counter"
    errors = []

    def bump(client):
        try:
            counter = client.Counter(path)
            for _ in range(20):
                counter += 1
        except Exception as e:
            errors.append(repr(e))

    try:
        threads = [threading.Thread(target=bump, args=(c,), daemon=True) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT * 2)
        assert errors == []
        assert clients[0].Counter(path).value == 60
        # every increment is one successful conditional setData
        assert clients[0].exists(path).version == 60
    finally:
        for c in clients:
            close_client(c)

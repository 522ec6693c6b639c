"""kazoo's reconfig (opcode 16) against an ensemble, the same file for Apache ZooKeeper
3.8 (the control) and paddock-server. Run through e2e/compat/run_reconfig.sh, which
starts servers 1-3 and a 4th server that syncs without being a member (an observer in
its own config; paddock's started with --join), and sets:

  ZK_HOSTS              connect string of members 1-3
  RECONFIG_JOINER_ID    the 4th server's id
  RECONFIG_JOINER_SPEC  its server line value as a participant,
                        host:quorumPort:electionPort:participant;host:clientPort
  RECONFIG_JOINER_HOST  its client address (host:port)
  RECONFIG_TARGET       (optional) name of the server under test, for the notes
  RECONFIG_NOTES        (optional) file to which behaviours that the tests accept
                        either way are appended (the runner prints them)
  ZK_SUPER_AUTH         (optional) super user credentials, default super:secret

The tests run in file order and build on each other (the ensemble changes): the shape
of /zookeeper/config; add the joiner (the answer is the new config text, server lines
and version=<hex>, with the config node's Stat); refuse a stale fromConfig
(BadVersionError); remove the joiner; a second reconfig while one is in flight
(ReconfigInProcessError); refuse a config without a synced quorum
(NewConfigNoQuorumError), a client that is not the super user (NoAuthError) and a
malformed server line (BadArgumentsError); the order of the checks, as ZooKeeper's
PrepRequestProcessor makes them (no reconfig in flight, fromConfig, server strings and
membership, a synced quorum, and last WRITE on /zookeeper/config), with every pair of
failing checks sent by a client without auth and by the super user; a change that
changes nothing (accepted, a new version); a non-incremental change; and last, the
leader leaves, asked first through a follower, then through the new leader itself.
Every wait is bounded.
"""

import os
import re
import time

import ensemble_helpers
import pytest
from kazoo.client import KazooClient
from kazoo.security import make_acl, make_digest_acl

from ensemble_helpers import fourlw, notes
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    ConnectionLoss,
    NewConfigNoQuorumError,
    NoAuthError,
)

ZK_HOSTS = os.environ.get("ZK_HOSTS", "127.0.0.1:2181")
JOINER_ID = int(os.environ.get("RECONFIG_JOINER_ID", "4"))
JOINER_SPEC = os.environ.get("RECONFIG_JOINER_SPEC", "")
JOINER_HOST = os.environ.get("RECONFIG_JOINER_HOST", "")
SUPER_AUTH = os.environ.get("ZK_SUPER_AUTH", "super:secret")
WAIT = float(os.environ.get("ZK_TEST_WAIT", "20"))
TARGET = os.environ.get("RECONFIG_TARGET", "server")
NOTES = os.environ.get("RECONFIG_NOTES")

SERVER_LINE = re.compile(r"^server\.(\d+)=(.+)$")

pytestmark = pytest.mark.skipif(
    not JOINER_SPEC or not JOINER_HOST, reason="run through e2e/compat/run_reconfig.sh"
)


note = notes(NOTES, TARGET)


def wait_until(predicate, timeout=WAIT, interval=0.05, what="condition"):
    return ensemble_helpers.wait_until(predicate, timeout, interval, what)


def client(hosts=ZK_HOSTS, super_user=True):
    c = KazooClient(hosts=hosts, timeout=10.0)
    c.start(timeout=WAIT)
    if super_user:
        c.add_auth("digest", SUPER_AUTH)
    return c


def close(c):
    try:
        c.stop()
        c.close()
    except Exception:
        pass


def parse_config(data):
    """(servers {id: value}, version int) of a /zookeeper/config text; every line must
    be a server line or the version line, and the version line comes last."""
    text = data.decode() if isinstance(data, bytes) else data
    lines = text.strip("\n").split("\n")
    servers = {}
    for line in lines[:-1]:
        m = SERVER_LINE.match(line)
        assert m, "unexpected config line %r in %r" % (line, text)
        servers[int(m.group(1))] = m.group(2)
    last = lines[-1]
    assert re.fullmatch(r"version=[0-9a-f]+", last), "last line %r of %r" % (last, text)
    return servers, int(last.split("=", 1)[1], 16)


def current_config(c):
    # The client's server may just have left the ensemble (a reconfig that removed it
    # drops its clients): kazoo reconnects elsewhere, and its retry waits for that.
    c.retry(c.sync, "/zookeeper/config")
    data, stat = c.retry(c.get, "/zookeeper/config")
    servers, version = parse_config(data)
    return servers, version, stat


def mode(hostport):
    for line in fourlw(hostport, "srvr").splitlines():
        if line.startswith("Mode: "):
            return line[len("Mode: "):].strip()
    return None


def member_hosts():
    return ZK_HOSTS.split(",")


def find_leader():
    return wait_until(
        lambda: next((h for h in member_hosts() if mode(h) == "leader"), None),
        what="a leader among " + ZK_HOSTS,
    )


def reconfig_until_synced(c, **kwargs):
    """Reconfig, retried (bounded) while the ensemble answers NewConfigNoQuorum because a
    server it needs has not finished syncing yet."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            return c.reconfig(**kwargs)
        except NewConfigNoQuorumError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="module")
def zk():
    c = client()
    yield c
    close(c)


def test_config_node_shape(zk):
    servers, version, stat = current_config(zk)
    assert sorted(servers) == [1, 2, 3]
    for sid, value in servers.items():
        _host, rest = value.split(":", 1)
        assert re.fullmatch(r"\d+:\d+:participant;[0-9.]+:\d+", rest), value
    assert JOINER_ID not in servers
    # Apache ZooKeeper gives an initial config without a version the zxid of the first
    # leader's NEWLEADER (0x100000000 here); paddock keeps 0. Recorded, not asserted:
    # clients only pass the version back as fromConfig.
    assert version >= 0
    note("initial config version %#x" % version)
    assert stat.dataLength == len(zk.get("/zookeeper/config")[0])


def test_add_joiner_returns_new_config(zk):
    before, version, _ = current_config(zk)
    joining = "server.%d=%s" % (JOINER_ID, JOINER_SPEC)
    data, stat = reconfig_until_synced(
        zk, joining=joining, leaving=None, new_members=None, from_config=version
    )
    assert isinstance(data, bytes)
    servers, new_version = parse_config(data)
    assert sorted(servers) == sorted(list(before) + [JOINER_ID])
    for sid in before:
        assert servers[sid] == before[sid]
    assert servers[JOINER_ID] == JOINER_SPEC
    assert new_version > version
    # The new version is the reconfig txn's zxid, which last modified the config node.
    assert stat.mzxid == new_version
    assert stat.dataLength == len(data)
    # Every member and the joiner read the same config.
    for h in member_hosts() + [JOINER_HOST]:
        c = client(hosts=h, super_user=False)
        try:
            got, got_version, _ = current_config(c)
            assert (got, got_version) == (servers, new_version), h
        finally:
            close(c)
    # The joiner now votes.
    wait_until(lambda: mode(JOINER_HOST) in ("follower", "leader"), what="joiner votes")


def test_stale_from_config_is_refused(zk):
    servers, version, _ = current_config(zk)
    assert JOINER_ID in servers
    with pytest.raises(BadVersionError):
        zk.reconfig(joining=None, leaving=str(JOINER_ID), new_members=None,
                    from_config=version - 1)
    # Nothing changed.
    assert current_config(zk)[:2] == (servers, version)


def test_remove_joiner(zk):
    servers, version, _ = current_config(zk)
    data, stat = zk.reconfig(joining=None, leaving=str(JOINER_ID), new_members=None,
                             from_config=version)
    new_servers, new_version = parse_config(data)
    assert sorted(new_servers) == sorted(s for s in servers if s != JOINER_ID)
    assert new_version > version
    assert stat.mzxid == new_version
    assert current_config(zk)[:2] == (new_servers, new_version)


def test_second_reconfig_while_one_is_in_flight(zk):
    """Two reconfigs sent back to back: the second arrives before the first commits and
    is refused with ReconfigInProcess. kazoo writes them one after the other, so on a
    loaded machine the first may commit before the second is read; the second is then a
    reconfig of its own on top of the first (its version is newer), and the pair is sent
    again, at most 5 times."""
    servers, version, _ = current_config(zk)
    assert JOINER_ID not in servers
    joining = "server.%d=%s" % (JOINER_ID, JOINER_SPEC)
    outcomes = []
    try:
        for _attempt in range(5):
            _, version, _ = current_config(zk)
            first = zk.reconfig_async(joining, None, None, version)
            second = zk.reconfig_async(joining, None, None, -1)
            data, stat = first.get(timeout=WAIT)
            got, v1 = parse_config(data)
            assert JOINER_ID in got and v1 > version
            try:
                data2, _ = second.get(timeout=WAIT)
                _, v2 = parse_config(data2)
                # Accepted only as a reconfig serialized after the first committed.
                assert v2 > v1, "the second reconfig was accepted with version %#x <= %#x" % (v2, v1)
                outcome = "accepted after the first committed"
            except Exception as e:  # noqa: BLE001 - recorded, then checked below
                if isinstance(e, AssertionError):
                    raise
                outcome = type(e).__name__
            outcomes.append(outcome)
            remove_joiner(zk)
            if outcome != "accepted after the first committed":
                break
    finally:
        # Back to members 1-3 for the tests that follow, whatever happened above.
        remove_joiner(zk)
    note("second reconfig while one is in flight: %s" % outcomes)
    assert outcomes[-1] == "ReconfigInProcessError", outcomes
    assert sorted(current_config(zk)[0]) == sorted(servers)


def remove_joiner(zk):
    """Removes the joiner when the config has it."""
    servers, version, _ = current_config(zk)
    if JOINER_ID in servers:
        zk.reconfig(joining=None, leaving=str(JOINER_ID), new_members=None, from_config=version)


def test_no_quorum_is_refused(zk):
    servers, version, _ = current_config(zk)
    host = servers[1].split(":", 1)[0]
    # Three participants that do not run: 3 synced voters of 6 are no quorum.
    fake = ",".join(
        "server.%d=%s:%d:%d:participant;%s:%d" % (100 + k, host, 1 + k, 11 + k, host, 21 + k)
        for k in range(3)
    )
    with pytest.raises(NewConfigNoQuorumError):
        zk.reconfig(joining=fake, leaving=None, new_members=None, from_config=version)
    # Non-incremental: one running member and two that do not run.
    members = ",".join(
        ["server.1=%s" % servers[1]]
        + ["server.%d=%s:%d:%d:participant;%s:%d" % (100 + k, host, 1 + k, 11 + k, host, 21 + k)
           for k in range(2)]
    )
    with pytest.raises(NewConfigNoQuorumError):
        zk.reconfig(joining=None, leaving=None, new_members=members, from_config=version)
    assert current_config(zk)[:2] == (servers, version)


def test_non_super_client_is_refused(zk):
    servers, version, _ = current_config(zk)
    c = client(super_user=False)
    try:
        with pytest.raises(NoAuthError):
            c.reconfig(joining=None, leaving="3", new_members=None, from_config=version)
        # Not allowed and also stale: ZooKeeper checks the ACL last.
        with pytest.raises(BadVersionError):
            c.reconfig(joining=None, leaving="3", new_members=None, from_config=version + 1)
    finally:
        close(c)
    assert current_config(zk)[:2] == (servers, version)


def test_bad_arguments(zk):
    servers, version, _ = current_config(zk)
    with pytest.raises(BadArgumentsError):
        zk.reconfig(joining="server.7=no-ports", leaving=None, new_members=None,
                    from_config=version)
    assert current_config(zk)[:2] == (servers, version)


def outcome_of(c, **kwargs):
    """The name of what a reconfig raised, or "accepted"."""
    try:
        c.reconfig(**kwargs)
        return "accepted"
    except Exception as e:  # noqa: BLE001 - compared by name
        return type(e).__name__


def fake_participants(host, n, first=100):
    """Server lines of n participants that do not run (ports nobody listens on)."""
    return [
        "server.%d=%s:%d:%d:participant;%s:%d" % (first + k, host, 1 + k, 11 + k, host, 21 + k)
        for k in range(n)
    ]


def test_checks_come_in_zookeepers_order(zk):
    """ZooKeeper checks a reconfig in this order: reconfig enabled, no reconfig in
    flight, fromConfig, the server strings and membership (BadArguments), a synced
    quorum of the new config (NewConfigNoQuorum), and only then WRITE on
    /zookeeper/config (NoAuth). Every pair of failing checks is sent here, by a client
    that is not allowed (no auth) and by the super user; the first failing check in
    that order decides the code. (Reconfig disabled and the in-flight pairs are in
    tests of their own / the server's unit tests.)"""
    servers, version, _ = current_config(zk)
    host = servers[1].split(":", 1)[0]
    addr1 = servers[1].split(";")[0].rsplit(":", 1)[0]  # host:quorum:election of server 1
    fake = fake_participants(host, 3)
    malformed = "server.7=no-ports"
    cases = [
        # (what, reconfig arguments, code for the client without auth, for the super user)
        ("valid, nothing else wrong",
         dict(leaving="99"), "NoAuthError", None),
        ("stale fromConfig",
         dict(leaving="3", from_config=version + 1), "BadVersionError", "BadVersionError"),
        ("stale fromConfig and a malformed server string",
         dict(joining=malformed, from_config=version - 1), "BadVersionError", "BadVersionError"),
        ("stale fromConfig and no quorum",
         dict(joining=",".join(fake), from_config=version + 1),
         "BadVersionError", "BadVersionError"),
        ("malformed server string",
         dict(joining=malformed), "BadArgumentsError", "BadArgumentsError"),
        ("a joiner without '='",
         dict(joining="server.7"), "BadArgumentsError", "BadArgumentsError"),
        ("a joiner without a client address",
         dict(joining="server.7=%s:1:2:participant" % host),
         "BadArgumentsError", "BadArgumentsError"),
        ("a malformed server string and no quorum",
         dict(joining=",".join(fake + [malformed])), "BadArgumentsError", "BadArgumentsError"),
        ("every voter leaves",
         dict(leaving="1,2,3"), "BadArgumentsError", "BadArgumentsError"),
        # standaloneEnabled=false: ZooKeeper's config parser throws a plain
        # IllegalArgumentException here, which it answers as MarshallingError.
        ("new members without a participant",
         dict(new_members="server.1=%s:observer;%s:29" % (addr1, host)),
         "MarshallingError", "MarshallingError"),
        ("a port that is no number",
         dict(joining="server.7=%s:abc:2:participant;%s:29" % (host, host)),
         "BadArgumentsError", "BadArgumentsError"),
        # The joiner's id is what follows the last '.' of the key: "7=" is server 7.
        # Valid (an observer), so only the client without auth sends it.
        ("a joiner key without 'server.'",
         dict(joining="7=%s:1:2:observer;%s:29" % (host, host)), "NoAuthError", None),
        ("an unknown key among new members",
         dict(new_members="server.1=%s;%s:29,foo=bar" % (servers[1].split(";")[0], host)),
         "BadArgumentsError", "BadArgumentsError"),
        ("a new member id that is no number",
         dict(new_members="server.x=%s" % servers[1]), "MarshallingError", "MarshallingError"),
        ("no synced quorum (incremental)",
         dict(joining=",".join(fake)), "NewConfigNoQuorumError", "NewConfigNoQuorumError"),
        ("no synced quorum (new members)",
         dict(new_members=",".join(["server.1=%s" % servers[1]] + fake[:2])),
         "NewConfigNoQuorumError", "NewConfigNoQuorumError"),
        ("a leaving id that is no number",
         dict(leaving="three"), "MarshallingError", "MarshallingError"),
        ("a joiner id that is no number",
         dict(joining="server.x=%s:1:2:participant;%s:29" % (host, host)),
         "MarshallingError", "MarshallingError"),
    ]
    anonymous = client(super_user=False)
    got = []
    try:
        for what, args, anon_code, super_code in cases:
            kwargs = dict(joining=None, leaving=None, new_members=None, from_config=version)
            kwargs.update(args)
            got.append((what, "no auth", outcome_of(anonymous, **kwargs), anon_code))
            if super_code is not None:
                got.append((what, "super", outcome_of(zk, **kwargs), super_code))
    finally:
        close(anonymous)
    wrong = ["%s (%s): got %s, ZooKeeper's order gives %s" % (w, who, g, e)
             for w, who, g, e in got if g != e]
    assert not wrong, "\n".join(wrong)
    assert current_config(zk)[:2] == (servers, version)


def set_config_acl(_zk, acl):
    """Sets /zookeeper/config's ACL through the leader. A reconfig's ACL check reads the
    leader's tree, and Apache ZooKeeper's leader may apply a setACL a moment after a
    follower answered it (seen on a loaded machine: a reconfig sent right after passed
    the old ACL); the leader answers only once it applied the change itself."""
    admin = client(hosts=find_leader())
    try:
        admin.set_acls("/zookeeper/config", acl)
    finally:
        close(admin)


OP_USER, OP_PASSWORD = "op", "op-secret"


def op_acl(**perms):
    """world:anyone:r plus digest op with the given permissions."""
    return [make_acl("world", "anyone", read=True), make_digest_acl(OP_USER, OP_PASSWORD, **perms)]


@pytest.fixture
def config_acl(zk):
    """Restores /zookeeper/config's ACL after a test that changes it."""
    acl, _ = zk.get_acls("/zookeeper/config")
    yield
    set_config_acl(zk, acl)


def test_reconfig_needs_write_on_the_config_node(zk, config_acl):
    """A client that is not the super user may reconfig when /zookeeper/config's ACL
    grants it WRITE; every other permission without WRITE is not enough."""
    servers, version, _ = current_config(zk)
    op = client(super_user=False)
    try:
        op.add_auth("digest", "%s:%s" % (OP_USER, OP_PASSWORD))
        set_config_acl(zk, op_acl(write=True))
        data, stat = op.reconfig(joining=None, leaving="99", new_members=None,
                                 from_config=version)
        got, v1 = parse_config(data)
        assert got == servers and v1 > version
        set_config_acl(zk, op_acl(read=True, create=True, delete=True, admin=True))
        with pytest.raises(NoAuthError):
            op.reconfig(joining=None, leaving="99", new_members=None, from_config=v1)
        # Stale and not allowed: the version is checked first.
        with pytest.raises(BadVersionError):
            op.reconfig(joining=None, leaving="99", new_members=None, from_config=version)
    finally:
        close(op)
    assert current_config(zk)[:2] == (servers, v1)


def test_in_flight_is_checked_before_version_and_acl(zk, config_acl):
    """One connection pipelines: a reconfig it may make, a setACL that takes its WRITE
    away, then reconfigs that are not allowed (one also with a stale fromConfig) while
    the first is still in flight: ReconfigInProcess, the first check, decides. Once the
    first committed, the ACL refuses.

    Whether the first is still in flight when the next ones are checked is a race the
    test cannot hold (a loaded machine lets the first commit first, on either server;
    both then answer BadVersion, rightly); such an attempt proves nothing and is made
    again, a bounded number of times."""
    seen = []
    for attempt in range(1, 6):
        servers, version, _ = current_config(zk)
        set_config_acl(zk, op_acl(write=True, admin=True))
        op = client(hosts=find_leader(), super_user=False)
        try:
            op.add_auth("digest", "%s:%s" % (OP_USER, OP_PASSWORD))
            first = op.reconfig_async(None, "99", None, version)
            revoke = op.set_acls_async("/zookeeper/config", op_acl(admin=True))
            second = op.reconfig_async(None, "99", None, version)
            stale = op.reconfig_async(None, "99", None, version - 1)
            data, _ = first.get(timeout=WAIT)
            got, v1 = parse_config(data)
            assert got == servers and v1 > version
            revoke.get(timeout=WAIT)
            outcomes = []
            for a in (second, stale):
                try:
                    a.get(timeout=WAIT)
                    outcomes.append("accepted")
                except Exception as e:  # noqa: BLE001 - compared by name
                    outcomes.append(type(e).__name__)
            seen.append(outcomes)
            # The first reconfig committed before both of the next were checked, or
            # between the two checks (then only the stale one sees the new version). A
            # server that checked the version before the in-flight reconfig would answer
            # the second pattern every time, and fail below after the last attempt.
            if outcomes in (["BadVersionError", "BadVersionError"],
                            ["ReconfigInProcessError", "BadVersionError"]):
                note("in-flight order: attempt %d lost the race (the first reconfig "
                     "committed before the next were checked: %s); again"
                     % (attempt, outcomes))
                continue
            assert outcomes == ["ReconfigInProcessError", "ReconfigInProcessError"]
            with pytest.raises(NoAuthError):
                op.reconfig(joining=None, leaving="99", new_members=None, from_config=v1)
        finally:
            close(op)
        assert current_config(zk)[:2] == (servers, v1)
        return
    pytest.fail("in 5 attempts the first reconfig never stayed in flight while the next "
                "ones were checked (answers seen: %s): either the race was always lost or "
                "the version is checked before the reconfig in flight" % seen)


def test_change_that_changes_nothing(zk):
    """Leaving a server that is no member is no error: ZooKeeper commits the same
    members as a new config version."""
    servers, version, _ = current_config(zk)
    data, stat = zk.reconfig(joining=None, leaving="99", new_members=None,
                             from_config=version)
    got, new_version = parse_config(data)
    assert got == servers
    assert new_version > version and stat.mzxid == new_version
    assert current_config(zk)[:2] == (servers, new_version)


def test_non_incremental_add_and_remove(zk):
    servers, version, _ = current_config(zk)
    joined = dict(servers)
    joined[JOINER_ID] = JOINER_SPEC
    members = ",".join("server.%d=%s" % (s, v) for s, v in sorted(joined.items()))
    data, stat = reconfig_until_synced(
        zk, joining=None, leaving=None, new_members=members, from_config=version
    )
    got, v1 = parse_config(data)
    assert got == joined
    assert v1 > version and stat.mzxid == v1
    members = ",".join("server.%d=%s" % (s, v) for s, v in sorted(servers.items()))
    data, stat = zk.reconfig(joining=None, leaving=None, new_members=members, from_config=v1)
    got, v2 = parse_config(data)
    assert got == servers
    assert v2 > v1 and stat.mzxid == v2


def leader_id_of(servers, leader_host):
    return next(sid for sid, v in servers.items() if v.split(";")[-1] == leader_host)


def remove_leader_through(zk, pick_client_host, allow_connection_loss=False):
    """Removes the current leader through a client connected to
    pick_client_host(leader, other members); checks the answer, that a new leader
    takes over among the remaining members, and that writes and reads go on there."""
    servers, version, _ = current_config(zk)
    leader = find_leader()
    leader_id = leader_id_of(servers, leader)
    others = [v.split(";")[-1] for s, v in sorted(servers.items()) if s != leader_id]
    via = pick_client_host(leader, others)
    c = client(hosts=via)
    try:
        try:
            # A leader elected moments ago (the test before removed the last one) may
            # refuse with NewConfigNoQuorum until the remaining members have synced with
            # it: Apache ZooKeeper does so under load (seen in CI). Nothing is committed
            # then, so the same reconfig is asked again, bounded.
            data, stat = reconfig_until_synced(c, joining=None, leaving=str(leader_id),
                                               new_members=None, from_config=version)
            outcome = "answered with the new config"
        except ConnectionLoss:
            if not allow_connection_loss:
                raise
            # The server dropped the connection as its leader changed before it sent the
            # answer; the client learns the outcome by reading the config.
            data, stat = None, None
            outcome = "ConnectionLoss (the reconfig committed)"
    finally:
        close(c)
    note("remove the leader through %s: %s" % (
        "the leader" if via == leader else "a follower", outcome))
    if data is None:
        w = client(hosts=",".join(others), super_user=False)
        try:
            got, new_version, stat = wait_until(
                lambda: (lambda cfg: cfg if cfg[1] > version else None)(current_config(w)),
                what="the committed config after a ConnectionLoss",
            )
        finally:
            close(w)
    else:
        got, new_version = parse_config(data)
    assert sorted(got) == sorted(s for s in servers if s != leader_id)
    assert new_version > version and stat.mzxid == new_version
    new_leader = wait_until(
        lambda: next((h for h in others if mode(h) == "leader"), None),
        what="a new leader among " + ",".join(others),
    )
    assert new_leader != leader
    w = client(hosts=",".join(others), super_user=False)
    try:
        path = w.create("/reconfig-after-leader-removal-", b"x", sequence=True)
        w.sync("/")
        assert w.get(path)[0] == b"x"
        assert current_config(w)[:2] == (got, new_version)
        w.delete(path)
    finally:
        close(w)


def test_remove_leader_through_a_follower(zk):
    """The leader leaves; the client that asks is connected to a follower (the request
    is forwarded). It is answered with the new config, a new leader takes over among the
    remaining members, and writes go on."""
    # The joiner votes again so that three voters remain after the leader leaves.
    servers, version, _ = current_config(zk)
    reconfig_until_synced(
        zk, joining="server.%d=%s" % (JOINER_ID, JOINER_SPEC), leaving=None,
        new_members=None, from_config=version,
    )
    # Apache ZooKeeper 3.8 mostly drops the follower's connections before the answer
    # goes out (the follower restarts as soon as it has queued the commit), so
    # ConnectionLoss is accepted here, after which the committed config is checked.
    remove_leader_through(zk, lambda leader, others: others[0], allow_connection_loss=True)


def test_remove_leader_through_the_leader(zk):
    """Last: the (new) leader leaves; the client that asks is connected to the leader
    itself. Same expectations."""
    remove_leader_through(zk, lambda leader, others: leader)

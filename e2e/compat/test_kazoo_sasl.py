"""SASL DIGEST-MD5 through kazoo's sasl_options, against a server whose JAAS Server
section has user_bob="bob_secret" and user_super="super_secret", with the SASL
authentication provider and zookeeper.superUser=super (run_sasl.sh starts Apache
ZooKeeper 3.8 and paddock-server so, one after the other).

SASL_PHASE=sasl: logins, the sasl ACL scheme, the super user, bad logins.
SASL_PHASE=enforce: the server also has enforce.auth.enabled=true and
enforce.auth.schemes=sasl: a client that did not log in is refused.
"""

import os
import time
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KeeperState
from kazoo.exceptions import (
    AuthFailedError,
    InvalidACLError,
    NoAuthError,
    SessionClosedRequireSaslError,
)
from kazoo.security import make_acl

HOSTS = os.environ.get("ZK_HOSTS", "127.0.0.1:2181")
PHASE = os.environ.get("SASL_PHASE", "sasl")
WAIT = 15


def sasl_client(user, password):
    c = KazooClient(
        hosts=HOSTS,
        timeout=10,
        sasl_options={"mechanism": "DIGEST-MD5", "username": user, "password": password},
    )
    c.start(timeout=WAIT)
    return c


def close(c):
    try:
        c.stop()
    finally:
        c.close()


def refused(user, password, wait=WAIT):
    """The exception a login of user/password ends with; None if it succeeds.

    kazoo reports the session CONNECTED before the SASL exchange, and a refused exchange
    moves the client to AUTH_FAILED and, at once, to CLOSED. Neither start() (which
    raises a time-out when the refusal lands before it looks) nor the client's current
    state (already CLOSED) can tell a refusal reliably, so the states kazoo's connection
    thread reports are recorded as they come, and a request made once CONNECTED gives
    the answer when the refusal comes later (AuthFailedError)."""
    c = KazooClient(
        hosts=HOSTS,
        timeout=10,
        sasl_options={"mechanism": "DIGEST-MD5", "username": user, "password": password},
    )
    states = []
    report = c._session_callback

    def record(state):
        states.append(state)
        report(state)

    # The connection thread reports every state through this one method.
    c._session_callback = record
    deadline = time.monotonic() + wait
    try:
        c.start_async()
        while time.monotonic() < deadline:
            if KeeperState.AUTH_FAILED in states:
                return AuthFailedError()
            if c.connected:
                try:
                    c.exists("/")
                except Exception as e:  # noqa: BLE001 - the type is what the test checks
                    return AuthFailedError() if KeeperState.AUTH_FAILED in states else e
                return None
            time.sleep(0.05)  # polling the recorded states, bounded by the deadline
        return KazooTimeoutError("neither connected nor refused within %s s: %s" % (wait, states))
    finally:
        close(c)


sasl_only = pytest.mark.skipif(PHASE != "sasl", reason="SASL_PHASE=sasl only")
enforce_only = pytest.mark.skipif(PHASE != "enforce", reason="SASL_PHASE=enforce only")


@sasl_only
def test_login_gives_the_sasl_id_for_acls():
    path = "/sasl-%s" % uuid.uuid4().hex
    acl = make_acl("sasl", "bob", all=True)
    bob = sasl_client("bob", "bob_secret")
    other = KazooClient(hosts=HOSTS, timeout=10)
    other.start(timeout=WAIT)
    try:
        bob.create(path, b"v", acl=[acl])
        assert bob.get(path)[0] == b"v"
        acls, _ = bob.get_acls(path)
        assert [(a.id.scheme, a.id.id, a.perms) for a in acls] == [("sasl", "bob", 31)]
        with pytest.raises(NoAuthError):
            other.get(path)
        # "auth" expands to the session's sasl id.
        bob.create(path + "-auth", b"", acl=[make_acl("auth", "", all=True)])
        acls, _ = bob.get_acls(path + "-auth")
        assert [(a.id.scheme, a.id.id) for a in acls] == [("sasl", "bob")]
        # zookeeper.superUser: the SASL user super passes every ACL.
        sup = sasl_client("super", "super_secret")
        try:
            assert sup.get(path)[0] == b"v"
        finally:
            close(sup)
        bob.delete(path)
        bob.delete(path + "-auth")
    finally:
        close(bob)
        close(other)


@sasl_only
def test_a_sasl_acl_id_must_be_a_valid_name():
    bob = sasl_client("bob", "bob_secret")
    try:
        with pytest.raises(InvalidACLError):
            bob.create(
                "/sasl-bad-%s" % uuid.uuid4().hex, b"", acl=[make_acl("sasl", "a@b@c", all=True)]
            )
    finally:
        close(bob)


@sasl_only
def test_wrong_password_and_unknown_user_fail_with_auth_failed():
    assert isinstance(refused("bob", "wrong"), AuthFailedError)
    assert isinstance(refused("nobody", "x"), AuthFailedError)
    # The server still serves everyone else.
    bob = sasl_client("bob", "bob_secret")
    close(bob)


@enforce_only
def test_enforce_auth_refuses_a_client_that_did_not_log_in():
    plain = KazooClient(hosts=HOSTS, timeout=10)
    plain.start(timeout=WAIT)  # the session itself is granted
    try:
        with pytest.raises(SessionClosedRequireSaslError):
            plain.get("/")
    finally:
        close(plain)
    bob = sasl_client("bob", "bob_secret")
    try:
        path = "/enforce-%s" % uuid.uuid4().hex
        bob.create(path, b"x")
        assert bob.get(path)[0] == b"x"
        bob.delete(path)
    finally:
        close(bob)


@enforce_only
def test_with_sasl_required_a_bad_login_fails():
    # The server answers SessionClosedRequireSaslAuth; kazoo retries until start() gives up.
    e = refused("bob", "wrong", wait=5)
    assert e is not None

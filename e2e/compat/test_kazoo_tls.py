"""kazoo over TLS (use_ssl, certfile/keyfile/ca) against a server with a secureClientPort,
JKS key and trust stores, ssl.clientAuth need (the default), client.portUnification=true
on its plaintext port and X509AuthenticationProvider.superUser=CN=admin,O=Example
(run_tls.sh starts Apache ZooKeeper 3.8 and paddock-server so, one after the other).

Environment: ZK_HOSTS (the plaintext port), ZK_SECURE (the TLS port), TLS_DIR (the PEM
files run_tls.sh made: ca.pem, client.{crt,key}, admin.{crt,key}, stranger.{crt,key}).
"""

import os
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.security import make_acl

PLAIN = os.environ.get("ZK_HOSTS", "127.0.0.1:2181")
SECURE = os.environ.get("ZK_SECURE", "127.0.0.1:2182")
TLS_DIR = os.environ.get("TLS_DIR", ".")
WAIT = 15


def pem(name):
    return os.path.join(TLS_DIR, name)


def tls_client(who="client", hosts=SECURE, wait=WAIT):
    kwargs = {"use_ssl": True, "ca": pem("ca.pem"), "verify_certs": True}
    if who:
        kwargs.update(certfile=pem(who + ".crt"), keyfile=pem(who + ".key"))
    c = KazooClient(hosts=hosts, timeout=10, **kwargs)
    c.start(timeout=wait)
    return c


def plain_client(hosts=PLAIN, wait=WAIT):
    c = KazooClient(hosts=hosts, timeout=10)
    c.start(timeout=wait)
    return c


def close(c):
    try:
        c.stop()
    finally:
        c.close()


def refused(start):
    """What starting a client with `start` ends with; None if it connects."""
    try:
        c = start()
    except Exception as e:  # noqa: BLE001 - the type is what the test checks
        return e
    close(c)
    return None


@pytest.fixture
def path():
    return "/kazoo-tls-" + uuid.uuid4().hex


def test_a_tls_client_with_a_certificate_writes_and_reads(path):
    c = tls_client()
    try:
        c.create(path, b"over tls")
        data, stat = c.get(path)
        assert data == b"over tls"
        assert stat.version == 0
        c.delete(path)
    finally:
        close(c)


def test_the_certificate_subject_is_an_x509_id_for_acls(path):
    c = tls_client()
    try:
        c.create(path, b"mine", acl=[make_acl("x509", "CN=client,O=Example", all=True)])
        assert c.get(path)[0] == b"mine"
        acl, _ = c.get_acls(path)
        assert [(a.id.scheme, a.id.id) for a in acl] == [("x509", "CN=client,O=Example")]
        p = plain_client()
        try:
            with pytest.raises(NoAuthError):
                p.get(path)
        finally:
            close(p)
        admin = tls_client("admin")
        try:
            assert admin.get(path)[0] == b"mine", "the x509 superUser reads every node"
        finally:
            close(admin)
        c.delete(path)
    finally:
        close(c)


def test_port_unification_takes_tls_and_plaintext_on_the_plain_port(path):
    c = tls_client(hosts=PLAIN)
    p = plain_client()
    try:
        c.create(path, b"u")
        assert p.get(path)[0] == b"u"
        p.delete(path)
    finally:
        close(c)
        close(p)


def test_bad_clients_are_refused_and_the_server_keeps_serving(path):
    # clientAuth need: no certificate, a certificate from another CA, plaintext on the
    # TLS port: each connection is closed, the client never connects.
    assert isinstance(refused(lambda: tls_client(None, wait=5)), KazooTimeoutError)
    assert isinstance(refused(lambda: tls_client("stranger", wait=5)), KazooTimeoutError)
    assert isinstance(refused(lambda: plain_client(SECURE, wait=5)), KazooTimeoutError)
    c = tls_client()
    try:
        c.create(path, b"still")
        assert c.get(path)[0] == b"still"
        c.delete(path)
    finally:
        close(c)

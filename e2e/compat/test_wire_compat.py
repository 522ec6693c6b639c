"""Byte-level checks of the ZooKeeper client protocol that no client library
exposes: the connect handshake, special xids, error replies, the multi and
multiRead encodings, setWatches on reconnect, whoAmI.

Every expectation was observed on Apache ZooKeeper 3.8.0 (Debian). Target:
the first host of ZK_HOSTS.
"""

import select
import socket
import struct
import uuid

import pytest

from conftest import WAIT, ZK_HOSTS, close_client, new_client

HOST, PORT = ZK_HOSTS.split(",")[0].rsplit(":", 1)
PORT = int(PORT)

# opcodes
CREATE, DELETE, EXISTS, GET_DATA, SET_DATA, GET_CHILDREN = 1, 2, 3, 4, 5, 8
CHECK, MULTI, CREATE2, MULTI_READ, CLOSE, PING = 13, 14, 15, 22, -11, 11
AUTH, SET_WATCHES, SET_WATCHES2, WHO_AM_I = 100, 101, 105, 107
# special xids
XID_NOTIFICATION, XID_PING, XID_AUTH, XID_SET_WATCHES = -1, -2, -4, -8

STAT = struct.Struct("!qqqqiiiqiiq")  # 68 bytes
SYNC_CONNECTED = 3


def ustr(s):
    b = s.encode()
    return struct.pack("!i", len(b)) + b


def buf(b):
    return struct.pack("!i", -1) if b is None else struct.pack("!i", len(b)) + b


def vec(strings):
    return struct.pack("!i", len(strings)) + b"".join(ustr(s) for s in strings)


OPEN_ACL = struct.pack("!i", 1) + struct.pack("!i", 31) + ustr("world") + ustr("anyone")


def create_body(path, data=b"", flags=0):
    return ustr(path) + buf(data) + OPEN_ACL + struct.pack("!i", flags)


def read_str(b, off):
    n = struct.unpack_from("!i", b, off)[0]
    off += 4
    if n < 0:
        return None, off
    return b[off:off + n].decode(), off + n


def read_buf(b, off):
    n = struct.unpack_from("!i", b, off)[0]
    off += 4
    if n < 0:
        return None, off
    return b[off:off + n], off + n


class Conn(object):
    """One raw TCP session to the server."""

    def __init__(self, timeout_ms=10000, session_id=0, password=b"\0" * 16,
                 read_only_byte=True, last_zxid=0):
        self.sock = socket.create_connection((HOST, PORT), timeout=WAIT)
        body = struct.pack("!iqiq", 0, last_zxid, timeout_ms, session_id) + buf(password)
        if read_only_byte:
            body += b"\0"
        self.sock.sendall(struct.pack("!i", len(body)) + body)
        self.connect_response = self.frame()
        self.xid = 0
        self.notifications = []
        if self.connect_response is not None and len(self.connect_response) >= 36:
            r = self.connect_response
            self.protocol_version, self.timeout, self.session_id = struct.unpack_from("!iiq", r)
            self.password, _ = read_buf(r, 16)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def frame(self):
        """One length-prefixed frame, or None on EOF."""
        head = self._read(4)
        if head is None:
            return None
        (n,) = struct.unpack("!i", head)
        return self._read(n)

    def _read(self, n):
        data = b""
        while len(data) < n:
            try:
                chunk = self.sock.recv(n - len(data))
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            data += chunk
        return data

    def send(self, xid, opcode, body=b""):
        payload = struct.pack("!ii", xid, opcode) + body
        self.sock.sendall(struct.pack("!i", len(payload)) + payload)

    def reply(self):
        """Next reply (xid, zxid, err, body); None on EOF."""
        f = self.frame()
        if f is None:
            return None
        xid, zxid, err = struct.unpack_from("!iqi", f)
        return xid, zxid, err, f[16:]

    def call(self, opcode, body=b"", xid=None):
        """Send a request; return its reply, collecting notifications on the way."""
        if xid is None:
            self.xid += 1
            xid = self.xid
        self.send(xid, opcode, body)
        while True:
            r = self.reply()
            assert r is not None, "connection closed while waiting for xid %d" % xid
            if r[0] == XID_NOTIFICATION:
                self.notifications.append(parse_notification(r))
                continue
            assert r[0] == xid, "reply xid %d, expected %d" % (r[0], xid)
            return r

    def at_eof(self, timeout=WAIT):
        """True if the server closes the connection (without sending anything more)."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return False
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def parse_notification(r):
    xid, zxid, err, body = r
    assert (xid, zxid, err) == (XID_NOTIFICATION, -1, 0), "notification header must be (-1, -1, 0)"
    etype, state = struct.unpack_from("!ii", body)
    path, off = read_str(body, 8)
    assert off == len(body)
    return etype, state, path


@pytest.fixture
def conns():
    made = []

    def make(**kw):
        c = Conn(**kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def wroot(conns):
    c = conns()
    path = "/compat-wire-%s" % uuid.uuid4().hex[:8]
    assert c.call(CREATE, create_body(path))[2] == 0
    yield path
    k = None
    try:
        k = new_client()
        k.delete(path, recursive=True)
    except Exception:
        pass
    finally:
        if k is not None:
            close_client(k)


# ------------------------------------------------------------ handshake ---
def test_connect_response_and_timeout_negotiation(conns):
    for asked, granted in ((1000, 4000), (10000, 10000), (100000, 40000)):
        c = conns(timeout_ms=asked)
        assert len(c.connect_response) == 4 + 4 + 8 + 4 + 16 + 1
        assert c.protocol_version == 0
        assert c.timeout == granted, "asked %d ms" % asked
        assert c.session_id != 0 and len(c.password) == 16
        assert c.connect_response[-1:] == b"\0", "readOnly=false echoed"


def test_connect_without_read_only_byte(conns):
    c = conns(read_only_byte=False)
    assert len(c.connect_response) == 36, "no trailing readOnly byte for an old-style request"
    assert c.timeout == 10000 and c.session_id != 0
    r = c.call(EXISTS, ustr("/") + b"\0")
    assert r[2] == 0 and len(r[3]) == STAT.size


def test_ping(conns):
    c = conns()
    c.send(XID_PING, PING)
    xid, zxid, err, body = c.reply()
    assert (xid, err, body) == (XID_PING, 0, b"")
    assert zxid >= 0


def test_replies_in_request_order(conns, wroot):
    c = conns()
    for i in range(1, 21):
        c.send(i, GET_DATA if i % 2 else EXISTS, ustr(wroot if i % 3 else wroot + "/missing") + b"\0")
    for i in range(1, 21):
        xid, _, err, body = c.reply()
        assert xid == i
        if i % 3:
            assert err == 0
        else:
            assert err == -101 and body == b"", "error replies carry no body"


def test_error_reply_shapes(conns):
    c = conns()
    xid, zxid, err, body = c.call(GET_DATA, ustr("/no/such/node") + b"\0")
    assert (err, body) == (-101, b"")
    assert zxid > 0, "error replies still carry the last zxid"
    # exists on a missing node: NONODE on the wire (clients turn it into null)
    assert c.call(EXISTS, ustr("/no/such/node") + b"\0")[2:] == (-101, b"")
    # unknown opcode: UNIMPLEMENTED, then ZooKeeper closes the connection
    xid, zxid, err, body = c.call(999)
    assert (err, body) == (-6, b"")
    assert c.at_eof()


# --------------------------------------------------------------- session ---
def test_resume_moves_session_and_closes_old_connection(conns):
    a = conns()
    b = conns(session_id=a.session_id, password=a.password)
    assert b.session_id == a.session_id and b.timeout == 10000
    assert a.at_eof(), "the server drops the session's previous connection"
    assert b.call(EXISTS, ustr("/") + b"\0")[2] == 0


def test_wrong_password_is_expired(conns):
    a = conns()
    b = conns(session_id=a.session_id, password=b"\x01" * 16)
    assert (b.timeout, b.session_id) == (0, 0), "timeout 0 / session 0 means expired"
    assert b.at_eof()
    # (ZooKeeper 3.8 also drops the owner's current connection before it checks
    # the password; not asserted.) The session itself lives on:
    a2 = conns(session_id=a.session_id, password=a.password)
    assert a2.session_id == a.session_id and a2.timeout == 10000
    assert a2.call(EXISTS, ustr("/") + b"\0")[2] == 0


def test_close_session(conns):
    a = conns()
    xid, zxid, err, body = a.call(CLOSE)
    assert (err, body) == (0, b"") and zxid > 0
    assert a.at_eof()
    b = conns(session_id=a.session_id, password=a.password)
    assert (b.timeout, b.session_id) == (0, 0), "a closed session cannot be resumed"


def test_client_with_future_zxid_is_refused(conns):
    c = conns(last_zxid=1 << 60)
    assert c.connect_response is None, "no ConnectResponse for a client ahead of the server"


# ------------------------------------------------------------------ auth ---
def _auth(c, scheme, cred):
    c.send(XID_AUTH, AUTH, struct.pack("!i", 0) + ustr(scheme) + buf(cred))
    return c.reply()


def test_auth_ok_and_unknown_scheme(conns):
    c = conns()
    xid, zxid, err, body = _auth(c, "digest", b"eve:pw")
    assert (xid, err, body) == (XID_AUTH, 0, b"")
    assert c.call(EXISTS, ustr("/") + b"\0")[2] == 0, "connection usable after auth"
    bad = conns()
    xid, zxid, err, body = _auth(bad, "no-such-scheme", b"x")
    assert (xid, err, body) == (XID_AUTH, -115, b"")
    assert bad.at_eof(), "AUTHFAILED closes the connection"


def test_who_am_i(conns):
    c = conns()
    xid, zxid, err, body = c.call(WHO_AM_I)
    assert err == 0
    n = struct.unpack_from("!i", body)[0]
    off, ids = 4, []
    for _ in range(n):
        scheme, off = read_str(body, off)
        user, off = read_str(body, off)
        ids.append((scheme, user))
    assert off == len(body)
    assert [s for s, _ in ids] == ["ip"]
    _auth(c, "digest", b"frank:pw")
    body = c.call(WHO_AM_I)[3]
    n = struct.unpack_from("!i", body)[0]
    off, ids = 4, []
    for _ in range(n):
        scheme, off = read_str(body, off)
        user, off = read_str(body, off)
        ids.append((scheme, user))
    assert sorted(s for s, _ in ids) == ["digest", "ip"] and ("digest", "frank") in ids


# ----------------------------------------------------------------- multi ---
def multi_header(t, done=False, err=-1):
    return struct.pack("!iBi", t, 1 if done else 0, err)


def parse_multi(body):
    out, off = [], 0
    while True:
        t, done, err = struct.unpack_from("!iBi", body, off)
        off += 9
        if done:
            assert (t, err) == (-1, -1), "end marker is (-1, true, -1)"
            break
        if t == -1:
            (code,) = struct.unpack_from("!i", body, off)
            off += 4
            assert code == err, "ErrorResponse repeats the header's err"
            out.append(("error", err))
            continue
        assert err == 0
        if t == CREATE:
            path, off = read_str(body, off)
            out.append(("create", path))
        elif t == CREATE2:
            path, off = read_str(body, off)
            stat = STAT.unpack_from(body, off)
            off += STAT.size
            out.append(("create2", path, stat))
        elif t == SET_DATA:
            out.append(("setData", STAT.unpack_from(body, off)))
            off += STAT.size
        elif t in (DELETE, CHECK):
            out.append(({DELETE: "delete", CHECK: "check"}[t],))
        elif t == GET_DATA:
            data, off = read_buf(body, off)
            stat = STAT.unpack_from(body, off)
            off += STAT.size
            out.append(("getData", data, stat))
        elif t == GET_CHILDREN:
            (n,) = struct.unpack_from("!i", body, off)
            off += 4
            kids = []
            for _ in range(n):
                k, off = read_str(body, off)
                kids.append(k)
            out.append(("getChildren", kids))
        else:
            raise AssertionError("unexpected multi result type %d" % t)
    assert off == len(body), "no trailing bytes after the end marker"
    return out


def test_multi_success_encoding(conns, wroot):
    c = conns()
    body = (multi_header(CREATE) + create_body(wroot + "/x")
            + multi_header(CHECK) + ustr(wroot) + struct.pack("!i", 0)
            + multi_header(SET_DATA) + ustr(wroot) + buf(b"z") + struct.pack("!i", -1)
            + multi_header(DELETE) + ustr(wroot + "/x") + struct.pack("!i", -1)
            + multi_header(CREATE2) + create_body(wroot + "/y")
            + multi_header(-1, done=True))
    xid, zxid, err, rbody = c.call(MULTI, body)
    assert err == 0
    res = parse_multi(rbody)
    # ZooKeeper 3.8 answers a create2 inside a multi with a plain CreateResult
    # (type 1, path only); Java clients accept either form.
    assert [r[0] for r in res] == ["create", "check", "setData", "delete", "create"]
    assert res[0][1] == wroot + "/x" and res[4][1] == wroot + "/y"
    set_stat = res[2][1]
    assert set_stat[4] == 1  # version
    assert set_stat[1] == zxid, "every op of a multi has the multi's zxid"
    stat = STAT.unpack(c.call(EXISTS, ustr(wroot + "/y") + b"\0")[3])
    assert stat[0] == zxid


def test_multi_failure_encoding(conns, wroot):
    c = conns()
    body = (multi_header(CREATE) + create_body(wroot + "/new")
            + multi_header(CREATE) + create_body(wroot)  # exists
            + multi_header(DELETE) + ustr(wroot) + struct.pack("!i", -1)
            + multi_header(-1, done=True))
    xid, zxid, err, rbody = c.call(MULTI, body)
    assert err == 0, "a failed multi still has err 0 in the reply header"
    assert parse_multi(rbody) == [("error", 0), ("error", -110), ("error", -2)]
    assert c.call(EXISTS, ustr(wroot + "/new") + b"\0")[2] == -101


def test_multi_read(conns, wroot):
    c = conns()
    c.call(CREATE, create_body(wroot + "/k", b"kv"))
    body = (multi_header(GET_DATA) + ustr(wroot + "/k") + b"\0"
            + multi_header(GET_CHILDREN) + ustr(wroot) + b"\0"
            + multi_header(GET_DATA) + ustr(wroot + "/nope") + b"\0"
            + multi_header(-1, done=True))
    xid, zxid, err, rbody = c.call(MULTI_READ, body)
    assert err == 0
    res = parse_multi(rbody)
    assert res[0][0] == "getData" and res[0][1] == b"kv"
    assert res[1] == ("getChildren", ["k"])
    assert res[2] == ("error", -101), "a failed read does not abort a multiRead"


def test_null_data_on_the_wire(conns, wroot):
    # A null buffer (length -1) stays null: getData answers -1, an empty node 0,
    # in plain replies, in multi and in multiRead.
    c = conns()
    assert c.call(CREATE, create_body(wroot + "/n", None))[2] == 0
    assert c.call(CREATE, create_body(wroot + "/e", b""))[2] == 0
    xid, zxid, err, body = c.call(GET_DATA, ustr(wroot + "/n") + b"\0")
    assert err == 0 and body[:4] == b"\xff\xff\xff\xff" and len(body) == 4 + STAT.size
    assert STAT.unpack_from(body, 4)[8] == 0, "dataLength of null data is 0"
    xid, zxid, err, body = c.call(GET_DATA, ustr(wroot + "/e") + b"\0")
    assert err == 0 and body[:4] == b"\0\0\0\0"
    body = (multi_header(CREATE) + create_body(wroot + "/m", None)
            + multi_header(SET_DATA) + ustr(wroot + "/e") + buf(None) + struct.pack("!i", -1)
            + multi_header(-1, done=True))
    xid, zxid, err, rbody = c.call(MULTI, body)
    assert err == 0 and [r[0] for r in parse_multi(rbody)] == ["create", "setData"]
    body = b"".join(multi_header(GET_DATA) + ustr(wroot + p) + b"\0" for p in ("/m", "/e", "/n"))
    xid, zxid, err, rbody = c.call(MULTI_READ, body + multi_header(-1, done=True))
    assert err == 0
    assert [(r[0], r[1]) for r in parse_multi(rbody)] == [("getData", None)] * 3
    assert c.call(SET_DATA, ustr(wroot + "/n") + buf(b"") + struct.pack("!i", -1))[2] == 0
    assert c.call(GET_DATA, ustr(wroot + "/n") + b"\0")[3][:4] == b"\0\0\0\0"


# --------------------------------------------------------------- watches ---
def test_notification_format(conns, wroot):
    a = conns()
    b = conns()
    assert a.call(GET_DATA, ustr(wroot) + b"\1")[2] == 0
    assert b.call(SET_DATA, ustr(wroot) + buf(b"1") + struct.pack("!i", -1))[2] == 0
    a.call(EXISTS, ustr(wroot) + b"\0")  # the event precedes this reply
    assert a.notifications == [(3, SYNC_CONNECTED, wroot)]


def test_set_watches_on_reconnect_fires_missed_events(conns, wroot):
    a = conns()
    r = a.call(GET_DATA, ustr(wroot) + b"\1")
    last_zxid = r[1]
    a.call(GET_CHILDREN, ustr(wroot) + b"\1")
    sid, pw = a.session_id, a.password
    a.close()  # drop the TCP connection, keep the session
    other = conns()
    assert other.call(SET_DATA, ustr(wroot) + buf(b"x") + struct.pack("!i", -1))[2] == 0
    assert other.call(CREATE, create_body(wroot + "/new"))[2] == 0
    a2 = conns(session_id=sid, password=pw)
    assert a2.session_id == sid
    body = (struct.pack("!q", last_zxid) + vec([wroot]) + vec([wroot + "/later"]) + vec([wroot]))
    xid, zxid, err, rbody = a2.call(SET_WATCHES, body, xid=XID_SET_WATCHES)
    assert (err, rbody) == (0, b"")
    assert sorted(a2.notifications) == [(3, SYNC_CONNECTED, wroot), (4, SYNC_CONNECTED, wroot)], \
        "missed data and child changes are reported before the setWatches reply"
    # the exists watch on the missing node was re-registered: creating it fires
    assert other.call(CREATE, create_body(wroot + "/later"))[2] == 0
    a2.call(EXISTS, ustr("/") + b"\0")
    assert a2.notifications[-1] == (1, SYNC_CONNECTED, wroot + "/later")


def test_set_watches2_restores_persistent_watches(conns, wroot):
    a = conns()
    last_zxid = a.call(EXISTS, ustr(wroot) + b"\0")[1]
    body = (struct.pack("!q", last_zxid) + vec([]) + vec([]) + vec([]) + vec([wroot]) + vec([wroot + "/r"]))
    xid, zxid, err, rbody = a.call(SET_WATCHES2, body, xid=XID_SET_WATCHES)
    assert (err, rbody) == (0, b"")
    other = conns()
    other.call(CREATE, create_body(wroot + "/r"))
    other.call(CREATE, create_body(wroot + "/r/deep"))
    other.call(SET_DATA, ustr(wroot) + buf(b"v") + struct.pack("!i", -1))
    a.call(EXISTS, ustr("/") + b"\0")
    assert a.notifications == [
        (1, SYNC_CONNECTED, wroot + "/r"),  # recursive on wroot/r: itself created
        (4, SYNC_CONNECTED, wroot),  # persistent on wroot: child added
        (1, SYNC_CONNECTED, wroot + "/r/deep"),
        (3, SYNC_CONNECTED, wroot),
    ]

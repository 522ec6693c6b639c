#!/usr/bin/env python3
"""Small network probes for e2e/images/test.sh (loopback only; every call is bounded).

    probe.py 4lw HOST PORT WORD        prints the four-letter word's answer
    probe.py http URL [USER:PASSWORD]  prints "STATUS BODY"
    probe.py digest USER:PASSWORD      prints ZooKeeper's digest USER:base64(sha1(USER:PASSWORD))

Exit code 1 when the peer cannot be reached or does not answer within 5 s.
"""

import base64
import hashlib
import ipaddress
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 5.0


def loopback(host):
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"probe.py: refusing non-loopback address {host}")


def four_letter_word(host, port, word):
    loopback(host)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as s:
        s.sendall(word.encode())
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def http_get(url, credentials=None):
    host = urllib.parse.urlsplit(url).hostname or ""
    loopback(host)
    request = urllib.request.Request(url)
    if credentials:
        token = base64.b64encode(credentials.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    # No proxy, whatever the environment says: the target is on this machine.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=TIMEOUT) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def digest(user_password):
    user = user_password.split(":", 1)[0]
    sha = hashlib.sha1(user_password.encode()).digest()
    return f"{user}:{base64.b64encode(sha).decode()}"


def main(argv):
    try:
        if len(argv) == 4 and argv[0] == "4lw":
            print(four_letter_word(*argv[1:]), end="")
        elif len(argv) in (2, 3) and argv[0] == "http":
            status, body = http_get(*argv[1:])
            print(status, body.strip())
        elif len(argv) == 2 and argv[0] == "digest":
            print(digest(argv[1]))
        else:
            raise SystemExit(__doc__)
    except (OSError, ValueError) as e:
        print(f"probe.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Helpers shared by the ensemble suites of e2e/compat (test_kazoo_reconfig.py,
test_kazoo_readonly.py): bounded waits, four-letter words, and notes for the runner to
print."""

import socket
import time


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it returns a truthy value (returned); fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def fourlw(hostport, word, timeout=3):
    """The answer to a four-letter word; "" if the server cannot be reached."""
    host, port = hostport.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(word.encode())
            out = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return out.decode(errors="replace")
                out += chunk
    except OSError:
        return ""


def notes(path, target):
    """A function that appends "<target>: <text>" lines to the file at path (the
    runner prints them at the end); does nothing without a path."""

    def note(text):
        if path:
            with open(path, "a") as f:
                f.write("%s: %s\n" % (target, text))

    return note

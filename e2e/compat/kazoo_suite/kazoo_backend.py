"""pytest plugin: kazoo's own test suite, unchanged, against a chosen backend.

Loaded by run.sh with ``-p kazoo_backend``. kazoo's harness
(kazoo/testing/common.py, ManagedZooKeeper.run) writes a zoo.cfg into each
server's working directory and then starts ``java ... QuorumPeerMain zoo.cfg``
through ``subprocess.Popen``. This plugin replaces the ``subprocess`` module the
harness sees with a shim whose ``Popen`` takes that java command line and:

* backend ``zookeeper`` (the control): runs it as it is (Debian's ZooKeeper
  jars), with the server's output in ``<working dir>/zookeeper.log``, where
  kazoo's ``get_logs()`` reads it;
* backend ``paddock``: translates it for ``paddock-server --config`` (the
  harness's zoo.cfg, the ``-D`` system properties that are ZooKeeper settings
  turned into zoo.cfg keys, the keys Paddock refuses to start with dropped and
  listed) and runs paddock-server instead.

For both, the zoo.cfg gets ``clientPortAddress``, ``secureClientPortAddress``
and ``admin.serverAddress`` = 127.0.0.1, so that no test server listens beyond
loopback (kazoo's harness leaves them unset: all interfaces). Nothing else of
kazoo's harness or tests changes: it still decides ports, peers, restarts,
read-only, JAAS and TLS settings.

Per-test outcomes go, one JSON object a line, to ``$KAZOO_SUITE_RESULTS``
(written as each test ends, so a run cut short still leaves what it did), and
the pid of every server started to ``$KAZOO_SUITE_PIDS`` (run.sh kills what is
left). SIGTERM ends the run as Ctrl-C does, so kazoo's atexit handler stops the
cluster.

Environment: KAZOO_SUITE_BACKEND (zookeeper|paddock), PADDOCK_SERVER_BIN
(paddock), KAZOO_SUITE_RESULTS, KAZOO_SUITE_PIDS, KAZOO_SUITE_LOGS (where each
server's log and configs are copied before kazoo's harness deletes its directory).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

BACKEND = os.environ.get("KAZOO_SUITE_BACKEND", "")
LOOPBACK = "127.0.0.1"

# zoo.cfg keys paddock-server refuses to start with (server/src/config/zk_keys.rs) and
# that kazoo's harness writes: dropped for the paddock run, each with the reason. None
# today: the TLS keys (secureClientPort, ssl.* with kazoo's JKS stores) and the SASL
# provider are passed through as they are.
PADDOCK_DROPPED = []
# Java system properties kazoo's harness passes that are ZooKeeper settings, and the
# zoo.cfg key paddock-server reads for each. Every other -D is JVM or logging.
PADDOCK_SYSPROPS = {
    "readonlymode.enabled": "readonlymode.enabled",
    "zookeeper.DigestAuthenticationProvider.superDigest": "superDigest",
    # The JAAS file (kazoo's harness always passes one; empty unless a SASL test
    # asked for a Server section): paddock-server reads it as this zoo.cfg key.
    "java.security.auth.login.config": "java.security.auth.login.config",
}


def _record_pid(pid, what):
    path = os.environ.get("KAZOO_SUITE_PIDS")
    if path:
        with open(path, "a") as f:
            f.write("%d %s\n" % (pid, what))


def _read_cfg(path):
    entries = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, value = line.split("=", 1)
            entries.append((key.strip(), value.strip()))
    return entries


def _with_loopback(entries):
    """The entries with every listening address set to 127.0.0.1."""
    forced = {
        "clientPortAddress": LOOPBACK,
        "secureClientPortAddress": LOOPBACK,
        "admin.serverAddress": LOOPBACK,
    }
    out = [(k, v) for k, v in entries if k not in forced]
    out.extend(forced.items())
    return out


def _write_cfg(path, entries, header):
    with open(path, "w") as f:
        f.write("# %s\n" % header)
        for k, v in entries:
            f.write("%s=%s\n" % (k, v))


def paddock_config(entries, java_args):
    """(zoo.cfg entries for paddock-server, [(key, value, why dropped)])."""
    kept, dropped = [], []
    for k, v in entries:
        why = next((w for rx, w in PADDOCK_DROPPED if rx.search(k)), None)
        if why:
            dropped.append((k, v, why))
        else:
            kept.append((k, v))
    for arg in java_args:
        if not arg.startswith("-D") or "=" not in arg:
            continue
        prop, value = arg[2:].split("=", 1)
        key = PADDOCK_SYSPROPS.get(prop)
        if key:
            kept = [(k, v) for k, v in kept if k != key]
            kept.append((key, value))
    return _with_loopback(kept), dropped


class _SubprocessShim:
    """What kazoo.testing.common sees as ``subprocess``: Popen goes to the backend."""

    def __getattr__(self, name):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(args, **kw):
        args = list(args)
        cfg = args[-1]
        workdir = os.path.dirname(cfg)
        log = open(os.path.join(workdir, "zookeeper.log"), "ab")
        log.write(("\n=== %s start (%s) ===\n" % (BACKEND, time.strftime("%H:%M:%S"))).encode())
        log.flush()
        entries = _read_cfg(cfg)
        if BACKEND == "paddock":
            pcfg, dropped = paddock_config(entries, args)
            path = os.path.join(workdir, "paddock.cfg")
            _write_cfg(path, pcfg, "kazoo harness zoo.cfg translated by kazoo_backend.py")
            with open(os.path.join(workdir, "paddock.dropped"), "w") as f:
                for k, v, why in dropped:
                    f.write("%s=%s  # %s\n" % (k, v, why))
            cmd = [os.environ["PADDOCK_SERVER_BIN"], "--config", path]
            env = dict(os.environ, NO_COLOR="1", RUST_LOG=os.environ.get("RUST_LOG", "info"))
        elif BACKEND == "zookeeper":
            _write_cfg(cfg, _with_loopback(entries), "kazoo harness zoo.cfg, loopback only")
            cmd, env = args, None
        else:
            raise RuntimeError("KAZOO_SUITE_BACKEND must be zookeeper or paddock")
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        log.close()
        _record_pid(proc.pid, " ".join(cmd[:1] + cmd[-1:]))
        return proc


def _keep_logs_then(destroy):
    """ManagedZooKeeper.destroy, which first copies the server's logs and configs to
    $KAZOO_SUITE_LOGS/<n>-server<id>/ (kazoo's harness removes its working dir)."""

    def wrapper(self):
        self.stop()
        keep = os.environ.get("KAZOO_SUITE_LOGS")
        if keep and os.path.exists(os.path.join(self.working_path, "zookeeper.log")):
            _KEPT[0] += 1
            dest = os.path.join(keep, "%03d-server%d" % (_KEPT[0], self.server_info.server_id))
            os.makedirs(dest, exist_ok=True)
            for name in ("zookeeper.log", "zoo.cfg", "paddock.cfg", "paddock.dropped"):
                src = os.path.join(self.working_path, name)
                if os.path.exists(src):
                    shutil.copy(src, dest)
        return destroy(self)

    return wrapper


_KEPT = [0]


def _sigterm(signum, frame):
    # As Ctrl-C: pytest ends the session (a SystemExit would only fail the running
    # test), writes its reports, and kazoo's atexit handler stops the cluster.
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config):
    if BACKEND not in ("zookeeper", "paddock"):
        raise pytest.UsageError("KAZOO_SUITE_BACKEND must be zookeeper or paddock")
    import kazoo.testing.common as common

    common.subprocess = _SubprocessShim()
    common.ManagedZooKeeper.destroy = _keep_logs_then(common.ManagedZooKeeper.destroy)
    signal.signal(signal.SIGTERM, _sigterm)
    config._kazoo_suite = {}


def _skip_reason(report):
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        return str(lr[2]).removeprefix("Skipped: ")
    return str(lr)


def _short(report):
    text = getattr(report, "longreprtext", "") or ""
    lines = [ln for ln in text.splitlines() if ln.startswith("E ")]
    if lines:
        return "\n".join(lines[-6:])[:1200]
    return text.strip().splitlines()[-1][:400] if text.strip() else ""


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report):
    st = _STATE.setdefault(report.nodeid, {"outcome": "passed", "duration": 0.0})
    st["duration"] += report.duration
    if report.skipped and report.when in ("setup", "call"):
        if st["outcome"] == "passed":
            st["outcome"] = "skipped"
            st["reason"] = _skip_reason(report)
    elif report.failed:
        outcome = "failed" if report.when == "call" else "error"
        if st["outcome"] in ("passed", "skipped"):
            st["outcome"] = outcome
            st["phase"] = report.when
            st["message"] = _short(report)
    if report.when == "teardown":
        _emit(report.nodeid, _STATE.pop(report.nodeid))


_STATE = {}


def pytest_collectreport(report):
    # A test module that cannot be imported is an error of every test it holds.
    if report.failed:
        _emit(
            report.nodeid,
            {"outcome": "error", "phase": "collect", "duration": 0.0, "message": _short(report)},
        )


def _emit(nodeid, st):
    path = os.environ.get("KAZOO_SUITE_RESULTS")
    if not path:
        return
    st = dict(st, nodeid=nodeid, duration=round(st["duration"], 2))
    with open(path, "a") as f:
        f.write(json.dumps(st, sort_keys=True) + "\n")
        f.flush()


def pytest_sessionfinish(session, exitstatus):
    for nodeid, st in list(_STATE.items()):
        st.setdefault("phase", "incomplete")
        _emit(nodeid, st)
    _STATE.clear()
    sys.stdout.flush()

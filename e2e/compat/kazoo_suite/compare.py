"""Compare kazoo's own test suite on Apache ZooKeeper (control) and on Paddock.

Reads OUT/zookeeper/results.jsonl and OUT/paddock/results.jsonl (written by
kazoo_backend.py), their reruns OUT/<backend>/rerun/results.jsonl when run.sh made
them (a test that failed and then passed on its one rerun counts as passed, and the
report lists it under its side), and expected_failures.txt; writes OUT/comparison.json and
OUT/report.txt, prints the report, and exits:

  0  every test that passes on ZooKeeper passes on Paddock, except the listed ones,
     and every listed one still fails on Paddock while it passes on ZooKeeper;
  1  otherwise: a defect not listed, a listed test that now passes on Paddock (take
     it off the list), a listed test the suite no longer has, or a test that fails
     on ZooKeeper too (the control is broken, so that test proves nothing);
  2  a run left no results at all.

expected_failures.txt: one test a line, "<pytest node id> <area it waits on>", e.g.
  kazoo/tests/test_client.py::TestClient::test_create_null_data  null data (issue 16.1)
Blank lines and lines starting with # are ignored. An id written with a leading "~" is
a test whose outcome on Paddock cannot tell (it passes or fails by a race in the client
while the area is missing): it may pass, and is reported, but does not fail the run;
it goes with the rest of its area.
"""

import argparse
import json
import os
import sys

PASS = "passed"


def load(path):
    out = {}
    if not os.path.exists(path):
        return None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                out[r["nodeid"]] = r
    return out


def load_expected(path):
    entries = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 1)
            if len(parts) < 2:
                sys.exit("%s:%d: no area given for %s" % (path, n, parts[0]))
            nodeid, tolerant = parts[0].removeprefix("~"), parts[0].startswith("~")
            if nodeid in entries:
                sys.exit("%s:%d: %s listed twice" % (path, n, nodeid))
            entries[nodeid] = {"area": parts[1].strip(), "may_pass": tolerant}
    return entries


def with_reruns(results, rerun):
    """Merges a side's rerun into its first run; returns the ids that passed only then."""
    recovered = []
    for nodeid, r in (rerun or {}).items():
        first = results.get(nodeid)
        if first and first["outcome"] in ("failed", "error") and r["outcome"] == PASS:
            results[nodeid] = dict(r, first_run=first)
            recovered.append(nodeid)
    return sorted(recovered)


def outcome(results, nodeid):
    r = results.get(nodeid)
    return r["outcome"] if r else "not run"


def first_line(r):
    if not r:
        return "(no result: the run ended before it)"
    msg = r.get("message") or r.get("reason") or ""
    return msg.strip().splitlines()[0][:300] if msg.strip() else ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--expected", required=True)
    ap.add_argument("--kazoo", default="?")
    ap.add_argument("--partial", action="store_true",
                    help="the runs were given a test selection: listed tests that did "
                         "not run are not reported as missing from the suite")
    a = ap.parse_args()

    zk = load(os.path.join(a.out, "zookeeper", "results.jsonl"))
    pd = load(os.path.join(a.out, "paddock", "results.jsonl"))
    if not zk or not pd:
        print("compare: a run left no results (zookeeper: %s, paddock: %s)"
              % (len(zk or {}), len(pd or {})))
        return 2
    recovered = {
        "zookeeper": with_reruns(zk, load(os.path.join(a.out, "zookeeper", "rerun", "results.jsonl"))),
        "paddock": with_reruns(pd, load(os.path.join(a.out, "paddock", "rerun", "results.jsonl"))),
    }
    expected = load_expected(a.expected)

    def secs(b):
        try:
            return int(open(os.path.join(a.out, b, "seconds")).read())
        except (OSError, ValueError):
            return None

    ids = sorted(set(zk) | set(pd))
    rows = []
    for t in ids:
        rows.append({
            "nodeid": t,
            "zookeeper": outcome(zk, t),
            "paddock": outcome(pd, t),
            "zookeeper_detail": first_line(zk.get(t)) if outcome(zk, t) != PASS else "",
            "paddock_detail": first_line(pd.get(t)) if outcome(pd, t) != PASS else "",
            "expected": (expected[t]["area"] if t in expected else None),
            "may_pass": bool(t in expected and expected[t]["may_pass"]),
        })

    defects = [r for r in rows if r["zookeeper"] == PASS and r["paddock"] != PASS]
    unlisted = [r for r in defects if r["expected"] is None]
    listed = [r for r in defects if r["expected"] is not None]
    listed_pass = [r for r in rows if r["expected"] is not None and r["paddock"] == PASS]
    now_pass = [r for r in listed_pass if not r["may_pass"]]
    lucky = [r for r in listed_pass if r["may_pass"]]
    control_fail = [r for r in rows if r["zookeeper"] not in (PASS, "skipped")]
    skipped = [r for r in rows if "skipped" in (r["zookeeper"], r["paddock"])]
    stale = [] if a.partial else sorted(t for t in expected if t not in zk and t not in pd)
    unconfirmed = [r for r in rows if r["expected"] is not None
                   and r["zookeeper"] != PASS and r["paddock"] != PASS]

    def count(results, o):
        return sum(1 for r in results.values() if r["outcome"] == o)

    lines = []
    w = lines.append
    w("kazoo %s's own test suite: Apache ZooKeeper (control) vs Paddock" % a.kazoo)
    for name, res in (("zookeeper", zk), ("paddock", pd)):
        w("  %-9s %4d tests: %d passed, %d failed, %d errors, %d skipped (%ss)" % (
            name, len(res), count(res, "passed"), count(res, "failed"),
            count(res, "error"), count(res, "skipped"), secs(name)))
    for name, res in (("zookeeper", zk), ("paddock", pd)):
        if recovered[name]:
            w("  %s: %d failed on the first run and passed on their rerun:"
              % (name, len(recovered[name])))
            for t in recovered[name]:
                w("    %s  (first run: %s)" % (t, first_line(res[t]["first_run"])))
    w("")
    w("Pass on ZooKeeper, not on Paddock: %d (%d listed in expected_failures.txt, %d not)"
      % (len(defects), len(listed), len(unlisted)))
    by_area = {}
    for r in listed:
        by_area.setdefault(r["expected"], []).append(r)
    for area in sorted(by_area):
        w("  [%s]" % area)
        for r in by_area[area]:
            w("    %-8s %s" % (r["paddock"], r["nodeid"]))
            w("             %s" % r["paddock_detail"])
    if lucky:
        w("  [listed with ~, passed on Paddock this time: their outcome cannot tell]")
        for r in lucky:
            w("    %-8s %s  (%s)" % (r["paddock"], r["nodeid"], r["expected"]))
    if unlisted:
        w("  [NOT LISTED: new defects]")
        for r in unlisted:
            w("    %-8s %s" % (r["paddock"], r["nodeid"]))
            w("             %s" % r["paddock_detail"])
    w("")
    w("Skipped on either side (kazoo's reason): %d" % len(skipped))
    for r in skipped:
        side = ("both" if r["zookeeper"] == r["paddock"] == "skipped"
                else "zookeeper" if r["zookeeper"] == "skipped" else "paddock")
        reason = r["zookeeper_detail"] if r["zookeeper"] == "skipped" else r["paddock_detail"]
        w("  %-9s %s: %s" % (side, r["nodeid"], reason))
    problems = []
    if control_fail:
        w("")
        w("Failing on ZooKeeper, the control (these tests prove nothing here): %d"
          % len(control_fail))
        for r in control_fail:
            w("  %-8s %s (paddock: %s)" % (r["zookeeper"], r["nodeid"], r["paddock"]))
            w("           %s" % r["zookeeper_detail"])
        problems.append("%d tests fail on the ZooKeeper control" % len(control_fail))
    if now_pass:
        w("")
        w("Listed in expected_failures.txt but passing on Paddock (remove them): %d"
          % len(now_pass))
        for r in now_pass:
            w("  %s  (%s)" % (r["nodeid"], r["expected"]))
        problems.append("%d listed tests now pass on Paddock" % len(now_pass))
    if stale:
        w("")
        w("Listed in expected_failures.txt but not in the suite: %d" % len(stale))
        for t in stale:
            w("  %s" % t)
        problems.append("%d listed tests are not in the suite" % len(stale))
    if unlisted:
        problems.append("%d tests pass on ZooKeeper but not on Paddock and are not listed"
                        % len(unlisted))
    extra_pd = [r for r in rows if r["zookeeper"] == "not run" and r["paddock"] != "not run"]
    if extra_pd:
        problems.append("%d tests ran on Paddock only (the control run was cut short)"
                        % len(extra_pd))
    w("")
    if problems:
        w("kazoo suite: FAILED: " + "; ".join(problems))
    else:
        w("kazoo suite: OK: %d tests pass on both, %d listed expected failures confirmed"
          % (sum(1 for r in rows if r["zookeeper"] == r["paddock"] == PASS), len(listed)))
    if unconfirmed:
        w("(%d listed tests fail on both sides, so their entries are unconfirmed)"
          % len(unconfirmed))

    report = "\n".join(lines) + "\n"
    with open(os.path.join(a.out, "report.txt"), "w") as f:
        f.write(report)
    with open(os.path.join(a.out, "comparison.json"), "w") as f:
        json.dump({
            "kazoo": a.kazoo,
            "seconds": {"zookeeper": secs("zookeeper"), "paddock": secs("paddock"),
                        "zookeeper_rerun": secs("zookeeper/rerun"),
                        "paddock_rerun": secs("paddock/rerun")},
            "defects": [r["nodeid"] for r in defects],
            "unlisted_defects": [r["nodeid"] for r in unlisted],
            "listed_now_passing": [r["nodeid"] for r in now_pass],
            "listed_may_pass_passed": [r["nodeid"] for r in lucky],
            "listed_not_in_suite": stale,
            "control_failures": [r["nodeid"] for r in control_fail],
            "passed_on_rerun": recovered,
            "tests": rows,
        }, f, indent=1, sort_keys=True)
    sys.stdout.write(report)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

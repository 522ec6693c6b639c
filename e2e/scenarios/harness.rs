//! How one scenario is run and measured: the load pod (load.py), the watch on the app's
//! sidecars and on the ensemble's conditions, the operator's Events and leadership
//! transfers before and after, and the row of the results table.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::app::{APP, http_get, one_leader};
use crate::common::operator::{kazoo, wait_available};
use crate::common::{Cluster, wait_for};
use serde_json::Value;

pub const CLIENT: &str = "zk-client.default.svc.cluster.local:2181";

/// The client addresses of the first `members` members, which the load checks at the end.
fn members(members: usize) -> String {
    (0..members)
        .map(|i| format!("zk-{i}.zk-headless.default.svc.cluster.local:2181"))
        .collect::<Vec<_>>()
        .join(",")
}
pub const PLANNED_PAUSE: Duration = Duration::from_secs(1);
pub const UNPLANNED_PAUSE: Duration = Duration::from_secs(5);
/// What a planned leader restart may cost: a transfer, not an election.
pub const TRANSFER_BOUND: &str = "0.2";

/// What a scenario must show besides the common targets.
pub struct Expect {
    /// Planned operations must not pause writes for a second; unplanned ones for five.
    pub planned: bool,
    /// Event reasons the operator must have published during the scenario.
    pub events: &'static [&'static str],
    /// The scenario restarts the leader on purpose: at least one leadership transfer,
    /// each within TRANSFER_BOUND seconds.
    pub transfers: bool,
    /// Conditions the ensemble's status must show True at some moment.
    pub conditions: &'static [&'static str],
    /// Members at the end of the scenario (the load checks every one of them).
    pub members: usize,
    /// How many members may be down at once (spec.replicas − Ready member pods), if
    /// the scenario bounds it: one for rolls and drains.
    pub max_down: Option<usize>,
}

/// What the watcher saw during one scenario.
#[derive(Debug, Default)]
struct Watched {
    rounds: u64,
    overlaps: Vec<String>,
    longest_without_leader: Duration,
    without_since: Option<Instant>,
    /// The ensemble's True conditions each time they changed (`Available+Progressing`).
    conditions: Vec<String>,
    /// The most members seen down at once (spec.replicas − Ready member pods).
    most_down: usize,
}

/// What the watcher reads from the API about once a second.
struct Refreshed {
    /// The app pods' (name, IP), terminating ones too: a pod being deleted still leads
    /// until its sidecar resigns, and must count both for gaps and for overlaps.
    app_pods: Vec<(String, String)>,
    /// spec.replicas − Ready member pods: members down as the kubelet sees them (each
    /// member's readiness probe is its /readyz: in the quorum and synced), independent of
    /// the operator's status.
    down: usize,
    /// The ensemble's True conditions, `Available+Progressing`, or `none`.
    conditions: String,
}

fn refresh(c: &Cluster) -> Result<Refreshed, String> {
    let app_pods = c
        .try_jsonpath(
            &["get", "pods", "-l", APP],
            "{range .items[*]}{.metadata.name}={.status.podIP} {end}",
        )?
        .split_whitespace()
        .filter_map(|p| p.split_once('='))
        .filter(|(_, ip)| !ip.is_empty())
        .map(|(name, ip)| (name.to_string(), ip.to_string()))
        .collect();
    let status = c.try_jsonpath(
        &["get", "zke", "zk"],
        "{.spec.replicas}/{range .status.conditions[?(@.status==\"True\")]}{.type} {end}",
    )?;
    let (replicas, conditions) = status.split_once('/').unwrap_or_default();
    let replicas: usize = replicas.parse().unwrap_or(0);
    let ready = c
        .try_jsonpath(
            &["get", "pods", "-l", "app.kubernetes.io/instance=zk"],
            "{range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status} {end}",
        )?
        .split_whitespace()
        .filter(|s| *s == "True")
        .count();
    let conditions = match conditions.split_whitespace().collect::<Vec<_>>().join("+") {
        none if none.is_empty() => "none".to_string(),
        some => some,
    };
    Ok(Refreshed {
        app_pods,
        down: replicas.saturating_sub(ready),
        conditions,
    })
}

/// Asks every app pod's `/self` every 50 ms until `stop`; the pods' addresses and the
/// ensemble's conditions are read about once a second.
fn watch(c: &Cluster, stop: &AtomicBool, seen: &Mutex<Watched>) {
    let mut ips: Vec<(String, String)> = Vec::new();
    let mut refreshed = Instant::now() - Duration::from_secs(10);
    while !stop.load(Ordering::Relaxed) {
        let round = Instant::now();
        if refreshed.elapsed() > Duration::from_secs(1) {
            // A kubectl that fails (a slow API server under load) skips this refresh; the
            // next round tries again.
            if let Ok(now) = refresh(c) {
                ips = now.app_pods;
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.most_down = seen.most_down.max(now.down);
                if seen.conditions.last() != Some(&now.conditions) {
                    seen.conditions.push(now.conditions);
                }
            }
            refreshed = Instant::now();
        }
        let leads = |name_ip: &(String, String)| -> bool {
            format!("{}:4041", name_ip.1)
                .parse::<SocketAddr>()
                .ok()
                .and_then(|addr| http_get(addr, "/v1/elections/my-app/self").ok())
                .is_some_and(|(status, _)| status == 200)
        };
        let leaders: Vec<&(String, String)> = ips.iter().filter(|p| leads(p)).collect();
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.rounds += 1;
        if leaders.len() > 1 {
            // Asked one after the other, a handover between two asks looks like two
            // leaders: ask again in the other order; a real overlap still shows.
            let again: Vec<&&(String, String)> =
                leaders.iter().rev().filter(|p| leads(p)).collect();
            if again.len() > 1 {
                seen.overlaps.push(
                    again
                        .iter()
                        .map(|p| p.0.clone())
                        .collect::<Vec<_>>()
                        .join("+"),
                );
            }
        }
        if leaders.is_empty() {
            seen.without_since.get_or_insert(round);
        } else if let Some(since) = seen.without_since.take() {
            seen.longest_without_leader = seen.longest_without_leader.max(since.elapsed());
        }
        drop(seen);
        std::thread::sleep(Duration::from_millis(50).saturating_sub(round.elapsed()));
    }
}

/// One row of the results table, and what its checks found.
#[derive(Debug, Default, Clone)]
pub struct Row {
    pub name: String,
    pub planned: bool,
    pub total: Duration,
    pub acknowledged: u64,
    pub lost: String,
    pub cas: u64,
    pub cas_violations: usize,
    pub write_pause_ms: u64,
    pub probe_gap_ms: u64,
    pub overlaps: usize,
    pub without_leader: Duration,
    pub most_down: usize,
    pub transfers: Transfers,
    pub events: String,
    pub conditions: String,
    /// Broken targets; empty when the row passes.
    pub failures: Vec<String>,
}

pub const HEADER: &str = "| scenario | kind | total | acked writes | lost | acked CAS | CAS violations | longest write pause | longest probe gap | sidecar overlaps | longest without app leader | most members down | leader transfers (≤ 200 ms) | operator events | conditions seen |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

impl Row {
    pub fn markdown(&self) -> String {
        format!(
            "| {} | {} | {:.1} s | {} | {} | {} | {} | {} ms | {} ms | {} | {} ms | {} | {} ({}) | {} | {} |",
            self.name,
            if self.planned { "planned" } else { "unplanned" },
            self.total.as_secs_f64(),
            self.acknowledged,
            self.lost,
            self.cas,
            self.cas_violations,
            self.write_pause_ms,
            self.probe_gap_ms,
            self.overlaps,
            self.without_leader.as_millis(),
            self.most_down,
            self.transfers.count,
            self.transfers.within_bound,
            self.events,
            self.conditions,
        )
    }
}

pub const SUMMARY_HEADER: &str = "| scenario | kind | runs | rows with lost writes | CAS violations | write pause min / median / max | probe gap max | overlaps | without app leader max | most members down | transfers (≤ 200 ms) | total median |\n|---|---|---|---|---|---|---|---|---|---|---|---|";

/// One line per scenario over every round, in the order the scenarios first ran.
pub fn summary(rows: &[Row]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        if !names.contains(&r.name.as_str()) {
            names.push(&r.name);
        }
    }
    let lines = names.iter().map(|name| {
        let runs: Vec<&Row> = rows.iter().filter(|r| r.name == *name).collect();
        let mut pauses: Vec<u64> = runs.iter().map(|r| r.write_pause_ms).collect();
        pauses.sort_unstable();
        let mut totals: Vec<Duration> = runs.iter().map(|r| r.total).collect();
        totals.sort_unstable();
        let max = |f: fn(&Row) -> u64| runs.iter().map(|r| f(r)).max().unwrap_or(0);
        let sum = |f: fn(&Row) -> u64| runs.iter().map(|r| f(r)).sum::<u64>();
        format!(
            "| {name} | {} | {} | {} | {} | {} / {} / {} ms | {} ms | {} | {} ms | {} | {} ({}) | {:.1} s |",
            if runs[0].planned { "planned" } else { "unplanned" },
            runs.len(),
            runs.iter().filter(|r| r.lost != "0").count(),
            sum(|r| r.cas_violations as u64),
            pauses[0],
            pauses[pauses.len() / 2],
            pauses[pauses.len() - 1],
            max(|r| r.probe_gap_ms),
            sum(|r| r.overlaps as u64),
            max(|r| r.without_leader.as_millis() as u64),
            max(|r| r.most_down as u64),
            sum(|r| r.transfers.count),
            sum(|r| r.transfers.within_bound),
            totals[totals.len() / 2].as_secs_f64(),
        )
    });
    format!("{SUMMARY_HEADER}\n{}", lines.collect::<Vec<_>>().join("\n"))
}

/// The load pod of one scenario.
fn start_load(c: &Cluster, pod: &str, prefix: &str, members: &str) {
    c.apply_yaml(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {pod}, labels: {{role: load}}}}
spec:
  restartPolicy: Never
  containers:
  - name: load
    image: paddock/kazoo
    args: ["/run/scenario/load.py", "{CLIENT}", "{prefix}", "{members}"]
    volumeMounts: [{{name: load, mountPath: /run/scenario}}]
  volumes:
  - name: load
    configMap: {{name: scenario-load}}
"#
    ));
    wait_for("the load to start", Duration::from_secs(90), || {
        let log = c.container_log("default", pod, "load");
        if log.contains("load started") {
            Ok(())
        } else {
            Err(log)
        }
    });
}

/// Stops the load pod and returns its summary.
fn finish_load(c: &Cluster, pod: &str, prefix: &str) -> Value {
    kazoo(
        c,
        &format!("{pod}-stop"),
        CLIENT,
        &format!("{prefix}-stop"),
        "stop",
        "write",
    );
    c.wait_pod_finished(pod, Duration::from_secs(180));
    let log = c.container_log("default", pod, "load");
    let summary = log
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .unwrap_or_else(|| panic!("no summary from the load:\n{log}"));
    // The load pods are bare pods: delete each once read, so that a drain never meets one.
    c.kubectl(&["delete", "pod", pod, &format!("{pod}-stop"), "--wait=false"]);
    summary
}

/// How often each reason occurs in the operator's Events on the ensemble so far. The
/// recorder aggregates repeats into one Event's series.count, so a scenario's Events are
/// the difference between two of these.
fn event_counts(c: &Cluster) -> BTreeMap<String, u64> {
    let out = c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=ZkEnsemble,involvedObject.name=zk",
        "-o",
        "json",
    ]);
    let list: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for e in list["items"].as_array().into_iter().flatten() {
        let n = e["series"]["count"]
            .as_u64()
            .or(e["count"].as_u64())
            .unwrap_or(1)
            .max(1);
        *reasons
            .entry(e["reason"].as_str().unwrap_or("?").to_string())
            .or_default() += n;
    }
    reasons
}

fn events_between(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(reason, n)| {
            let new = n.saturating_sub(before.get(reason).copied().unwrap_or(0));
            (new > 0).then(|| (reason.clone(), new))
        })
        .collect()
}

/// Leadership transfers the operator made, from its replicas' histograms.
#[derive(Debug, Default, Clone, Copy)]
pub struct Transfers {
    pub count: u64,
    pub within_bound: u64,
}

/// Each operator pod's transfer histogram (count, and count within TRANSFER_BOUND),
/// by pod name: a replica that is replaced starts again from zero.
fn operator_transfers(c: &Cluster) -> BTreeMap<String, Transfers> {
    let pods = c.jsonpath(
        &[
            "get",
            "pods",
            "-n",
            "paddock-system",
            "-l",
            "app.kubernetes.io/name=paddock-operator",
        ],
        "{range .items[*]}{.metadata.name}={.status.podIP} {end}",
    );
    let mut all = BTreeMap::new();
    for (name, ip) in pods.split_whitespace().filter_map(|p| p.split_once('=')) {
        let Ok(addr) = format!("{ip}:9090").parse::<SocketAddr>() else {
            continue;
        };
        let Ok((200, text)) = http_get(addr, "/metrics") else {
            continue;
        };
        let value = |prefix: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        all.insert(
            name.to_string(),
            Transfers {
                count: value("paddock_operator_leader_transfer_seconds_count "),
                within_bound: value(&format!(
                    "paddock_operator_leader_transfer_seconds_bucket{{le=\"{TRANSFER_BOUND}\"}} "
                )),
            },
        );
    }
    all
}

fn transfers_between(
    before: &BTreeMap<String, Transfers>,
    after: &BTreeMap<String, Transfers>,
) -> Transfers {
    let mut total = Transfers::default();
    for (pod, now) in after {
        let then = before.get(pod).copied().unwrap_or_default();
        total.count += now.count.saturating_sub(then.count);
        total.within_bound += now.within_bound.saturating_sub(then.within_bound);
    }
    total
}

pub fn leader_pod(c: &Cluster) -> String {
    c.wait_jsonpath(
        &["get", "zke", "zk"],
        "{.status.leader}",
        "a leader in the status",
        Duration::from_secs(60),
        |l| !l.is_empty(),
    )
}

/// A member that does not lead.
pub fn follower_pod(c: &Cluster) -> String {
    let leader = leader_pod(c);
    ["zk-0", "zk-1", "zk-2"]
        .into_iter()
        .find(|p| *p != leader)
        .unwrap_or("zk-0")
        .to_string()
}

/// Deletes the pod of the leader as it is now (`leader`), or of a follower. During a
/// roll the operator may just have deleted the pod in mind: a pod being deleted, or not
/// yet recreated by the StatefulSet, is passed over until one is there (60 s at most).
/// The pod deleted.
pub fn delete_member_pod(c: &Cluster, leader: bool) -> String {
    let role = if leader {
        "the leader's"
    } else {
        "a follower's"
    };
    wait_for(
        &format!("{role} pod, to delete it"),
        Duration::from_secs(60),
        || {
            let leads = leader_pod(c);
            let candidates: Vec<String> = match leader {
                true => vec![leads],
                false => ["zk-0", "zk-1", "zk-2"]
                    .into_iter()
                    .filter(|p| *p != leads)
                    .map(String::from)
                    .collect(),
            };
            for pod in candidates {
                let deleting =
                    c.try_jsonpath(&["get", "pod", &pod], "{.metadata.deletionTimestamp}");
                if !matches!(deleting.as_deref(), Ok("")) {
                    continue;
                }
                let (ok, out, err) = c.kubectl_raw(&["delete", "pod", &pod, "--wait=false"]);
                if ok {
                    return Ok(pod);
                }
                assert!(
                    err.contains("NotFound"),
                    "kubectl delete pod {pod} failed:\n{out}{err}"
                );
            }
            Err(format!(
                "no {role} pod that is not being deleted or recreated"
            ))
        },
    )
}

pub fn update_revision(c: &Cluster) -> String {
    c.jsonpath(&["get", "statefulset", "zk"], "{.status.updateRevision}")
}

/// Waits until the StatefulSet has an update revision other than `before`: the roll
/// that a change starts has begun.
pub fn wait_roll_begins(c: &Cluster, before: &str) {
    wait_for("the roll to begin", Duration::from_secs(60), || {
        let now = update_revision(c);
        if now != before { Ok(()) } else { Err(now) }
    });
}

/// Waits until the ensemble has settled after a scenario: Available, not Progressing,
/// every member ready and on the StatefulSet's update revision, one app leader.
fn settled(c: &Cluster, since: Instant) {
    wait_available(c, "zk", since);
    wait_for(
        "every member on the update revision",
        Duration::from_secs(300),
        || {
            let replicas: usize = c
                .jsonpath(&["get", "zke", "zk"], "{.spec.replicas}")
                .parse()
                .map_err(|e| format!("spec.replicas: {e}"))?;
            let update = update_revision(c);
            let revisions = c.jsonpath(
                &["get", "pods", "-l", "app.kubernetes.io/instance=zk"],
                "{.items[*].metadata.labels.controller-revision-hash}",
            );
            let revisions: Vec<&str> = revisions.split_whitespace().collect();
            if revisions.len() == replicas && revisions.iter().all(|r| *r == update) {
                Ok(())
            } else {
                Err(format!("update {update}, pods {revisions:?}"))
            }
        },
    );
    wait_for("one app leader", Duration::from_secs(120), || one_leader(c));
}

/// Whether `PADDOCK_SCENARIO_ONLY` (comma-separated parts of names; unset: all) selects
/// this scenario.
fn selected(name: &str) -> bool {
    match std::env::var("PADDOCK_SCENARIO_ONLY") {
        Ok(only) if !only.trim().is_empty() => only
            .split(',')
            .map(str::trim)
            .any(|part| !part.is_empty() && name.contains(part)),
        _ => true,
    }
}

/// Sets the flag when dropped, on a return or an unwind alike.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs `action` under the load and the watch; returns its row with the targets checked
/// (None when `PADDOCK_SCENARIO_ONLY` leaves it out).
pub fn scenario(
    c: &Cluster,
    n: usize,
    name: &str,
    expect: &Expect,
    action: impl FnOnce(&Cluster),
) -> Option<Row> {
    if !selected(name) {
        return None;
    }
    eprintln!("=== scenario {n}: {name}");
    let pod = format!("load-{n}");
    let prefix = format!("/scenario-{n}");
    let events_before = event_counts(c);
    let transfers_before = operator_transfers(c);
    start_load(c, &pod, &prefix, &members(expect.members));
    let stop = AtomicBool::new(false);
    let seen = Mutex::new(Watched::default());
    let started = Instant::now();
    let total = std::thread::scope(|s| {
        s.spawn(|| watch(c, &stop, &seen));
        // The scope joins the watcher before it returns or unwinds: a panicking action
        // must stop it too, or the test hangs instead of failing.
        let _stop_watch = StopOnDrop(&stop);
        // A few seconds of steady load first, so pauses are measured against it.
        std::thread::sleep(Duration::from_secs(3));
        let t = Instant::now();
        action(c);
        settled(c, t);
        let total = t.elapsed();
        std::thread::sleep(Duration::from_secs(2));
        total
    });
    let summary = finish_load(c, &pod, &prefix);
    let seen = seen.into_inner().unwrap_or_else(|e| e.into_inner());
    let without_leader = match seen.without_since {
        Some(since) => seen.longest_without_leader.max(since.elapsed()),
        None => seen.longest_without_leader,
    };
    let events = events_between(&events_before, &event_counts(c));
    let transfers = transfers_between(&transfers_before, &operator_transfers(c));
    let lost = summary["missing"].as_object().map_or(0, |m| m.len());
    let mut row = Row {
        name: name.to_string(),
        planned: expect.planned,
        total,
        acknowledged: summary["acknowledged"].as_u64().unwrap_or(0),
        lost: if lost == 0 {
            "0".into()
        } else {
            summary["missing"].to_string()
        },
        cas: summary["cas_acknowledged"].as_u64().unwrap_or(0),
        cas_violations: summary["cas_violations"].as_array().map_or(0, |v| v.len()),
        write_pause_ms: summary["longest_write_pause_ms"]
            .as_u64()
            .unwrap_or(u64::MAX),
        probe_gap_ms: summary["longest_probe_gap_ms"].as_u64().unwrap_or(u64::MAX),
        overlaps: seen.overlaps.len(),
        without_leader,
        most_down: seen.most_down,
        transfers,
        events: if events.is_empty() {
            "none".into()
        } else {
            events
                .iter()
                .map(|(reason, n)| format!("{reason}×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        conditions: seen.conditions.join(" → "),
        failures: Vec::new(),
    };
    row.failures = check(&row, expect, &summary, &events, &seen.conditions);
    if !row.failures.is_empty() {
        eprintln!(
            "--- events of the members meanwhile ---\n{}",
            member_events(c)
        );
    }
    eprintln!(
        "{}\n(load: {summary}; {} watch rounds, overlaps {:?}; {:.0} s since the load started; failures {:?})",
        row.markdown(),
        seen.rounds,
        seen.overlaps,
        started.elapsed().as_secs_f64(),
        row.failures,
    );
    Some(row)
}

/// The cluster's Events about the ensemble's members and their claims, oldest first, with
/// their times to the millisecond where the API has them: to see where a scenario's time
/// went.
fn member_events(c: &Cluster) -> String {
    let (_, out, _) = c.kubectl_raw(&["get", "events", "-o", "json"]);
    let list: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    let mut lines: Vec<(String, String)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["involvedObject"]["name"]
                .as_str()
                .is_some_and(|n| n == "zk" || n.starts_with("zk-") || n.starts_with("data-zk-"))
        })
        .map(|e| {
            let time = ["eventTime", "lastTimestamp", "firstTimestamp"]
                .iter()
                .find_map(|k| e[*k].as_str())
                .or(e["metadata"]["creationTimestamp"].as_str())
                .unwrap_or("?")
                .to_string();
            let line = format!(
                "{time} {} {} {}",
                e["involvedObject"]["name"].as_str().unwrap_or("?"),
                e["reason"].as_str().unwrap_or("?"),
                e["message"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(160)
                    .collect::<String>()
            );
            (time, line)
        })
        .collect();
    lines.sort();
    lines
        .into_iter()
        .map(|(_, l)| l)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The targets of issue 14 and the scenario's own expectations; what is broken.
fn check(
    row: &Row,
    expect: &Expect,
    summary: &Value,
    events: &BTreeMap<String, u64>,
    conditions: &[String],
) -> Vec<String> {
    let mut failures = Vec::new();
    if row.acknowledged == 0 {
        failures.push("no write was acknowledged".into());
    }
    if row.lost != "0" {
        failures.push(format!("acknowledged writes lost: {}", row.lost));
    }
    if row.cas_violations > 0 {
        failures.push(format!(
            "CAS history not linearizable: {}",
            summary["cas_violations"]
        ));
    }
    if summary["reads"]["missing_after_sync"]
        .as_array()
        .is_none_or(|v| !v.is_empty())
    {
        failures.push(format!(
            "acknowledged creates missing on a read after a sync: {}",
            summary["reads"]["missing_after_sync"]
        ));
    }
    if summary["configs_differ"]
        .as_object()
        .is_none_or(|m| !m.is_empty())
    {
        failures.push(format!(
            "the members' committed configs differ: {}",
            summary["configs_differ"]
        ));
    }
    if summary["cleaned"] != true {
        // Not a target, but the next scenarios would start from a bigger tree.
        failures.push("the load could not delete the scenario's znodes".into());
    }
    if row.overlaps > 0 {
        failures.push(format!("two app pods led at once {} times", row.overlaps));
    }
    let bound = if expect.planned {
        PLANNED_PAUSE
    } else {
        UNPLANNED_PAUSE
    };
    if Duration::from_millis(row.write_pause_ms) >= bound {
        failures.push(format!(
            "write pause {} ms, over {bound:?}",
            row.write_pause_ms
        ));
    }
    for reason in expect.events {
        if !events.contains_key(*reason) {
            failures.push(format!("no {reason} Event"));
        }
    }
    if expect.transfers && row.transfers.count == 0 {
        failures.push("the leader was restarted without a leadership transfer".into());
    }
    if row.transfers.within_bound < row.transfers.count {
        failures.push(format!(
            "{} of {} leadership transfers took over {TRANSFER_BOUND} s",
            row.transfers.count - row.transfers.within_bound,
            row.transfers.count
        ));
    }
    if let Some(max) = expect.max_down
        && row.most_down > max
    {
        failures.push(format!(
            "{} members were down at once (at most {max} may be)",
            row.most_down
        ));
    }
    for wanted in expect.conditions {
        if !conditions
            .iter()
            .any(|seen| seen.split('+').any(|c| c == *wanted))
        {
            failures.push(format!("the status never showed {wanted}=True"));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_has_one_line_per_scenario_over_the_rounds() {
        let row = |name: &str, pause: u64, lost: &str| Row {
            name: name.into(),
            planned: true,
            total: Duration::from_secs(pause),
            lost: lost.into(),
            write_pause_ms: pause,
            transfers: Transfers {
                count: 1,
                within_bound: 1,
            },
            ..Row::default()
        };
        let rows = [
            row("a", 30, "0"),
            row("b", 5, "0"),
            row("a", 10, "2 (w0-1)"),
            row("a", 20, "0"),
        ];
        let text = summary(&rows);
        let lines: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with("| a | planned | 3 | 1 | 0 | 10 / 20 / 30 ms |"),
            "{text}"
        );
        assert!(lines[0].ends_with("| 3 (3) | 20.0 s |"), "{text}");
        assert!(lines[1].starts_with("| b | planned | 1 | 0 |"), "{text}");
    }
}

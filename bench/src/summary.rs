//! `paddock-bench summarize DIR`: the comparison table, from the files compare.sh wrote.
//!
//! DIR/plan.tsv      one line per run slot, in table order: SETUP \t WORKLOAD \t SLUG
//! DIR/runs/SETUP.SLUG.SERVER.rN.json  round N's `--json` report (SERVER: paddock|zookeeper)
//! DIR/runs/SETUP.SLUG.SERVER.na       instead: why there is no figure (one line)
//! DIR/metrics.tsv   one line per measurement: NAME \t SERVER \t VALUE \t UNIT, where
//!                   VALUE is a number (lower is better) or a reason text
//!
//! With several rounds, every figure is the median over the rounds (errors: the sum).
//! Ratios are always Paddock ÷ ZooKeeper, with the verdict spelled out, since "higher is
//! better" holds for throughput and "lower is better" for everything else.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::report::{Latency, Report, fmt_us};

const SERVERS: [&str; 2] = ["paddock", "zookeeper"];

/// The medians over a slot's rounds.
struct Agg {
    measures: String,
    rounds: usize,
    throughput_ops_s: f64,
    /// Lowest and highest throughput of the rounds, to show the spread.
    throughput_range: (f64, f64),
    latency_us: Latency,
    errors: u64,
}

/// A cell: measured rounds, or the reason there are none.
enum Slot {
    Run(Agg),
    Missing(String),
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn aggregate(reports: &[Report]) -> Agg {
    let m = |f: fn(&Report) -> f64| median(reports.iter().map(f).collect());
    Agg {
        measures: reports
            .first()
            .map(|r| r.measures.clone())
            .unwrap_or_default(),
        rounds: reports.len(),
        throughput_ops_s: m(|r| r.throughput_ops_s),
        throughput_range: reports.iter().fold((f64::INFINITY, 0.0), |(lo, hi), r| {
            (lo.min(r.throughput_ops_s), hi.max(r.throughput_ops_s))
        }),
        latency_us: Latency {
            p50: m(|r| r.latency_us.p50),
            p99: m(|r| r.latency_us.p99),
            p999: m(|r| r.latency_us.p999),
            max: m(|r| r.latency_us.max),
            mean: m(|r| r.latency_us.mean),
        },
        errors: reports.iter().map(|r| r.errors.total).sum(),
    }
}

fn load_slot(dir: &Path, setup: &str, slug: &str, server: &str) -> Slot {
    let runs = dir.join("runs");
    let prefix = format!("{setup}.{slug}.{server}.r");
    let mut files: Vec<_> = std::fs::read_dir(&runs)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix) && n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut reports = Vec::new();
    for f in &files {
        let parsed = std::fs::read_to_string(runs.join(f))
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Report>(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(r) => reports.push(r),
            Err(e) => return Slot::Missing(format!("unreadable result {f} ({e})")),
        }
    }
    if !reports.is_empty() {
        return Slot::Run(aggregate(&reports));
    }
    match std::fs::read_to_string(runs.join(format!("{setup}.{slug}.{server}.na"))) {
        Ok(reason) => Slot::Missing(reason.trim().to_string()),
        Err(_) => Slot::Missing("no result".into()),
    }
}

/// "2.13× ahead" / "0.71× behind" / "1.02× even"; `higher_better` says which way wins.
pub fn verdict(paddock: f64, zookeeper: f64, higher_better: bool) -> String {
    if !(paddock.is_finite() && zookeeper.is_finite()) || zookeeper <= 0.0 || paddock < 0.0 {
        return "–".into();
    }
    let ratio = paddock / zookeeper;
    let word = if (0.95..=1.05).contains(&ratio) {
        "even"
    } else if (ratio > 1.0) == higher_better {
        "**ahead**"
    } else {
        "behind"
    };
    format!("{} {word}", fmt_ratio(ratio))
}

fn fmt_ratio(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.2}×")
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 100_000.0 {
        format!("{:.0}k", r / 1000.0)
    } else if r >= 10_000.0 {
        format!("{:.1}k", r / 1000.0)
    } else {
        format!("{r:.0}")
    }
}

fn cell_missing(s: &Slot) -> Option<&str> {
    match s {
        Slot::Missing(m) => Some(m),
        Slot::Run(_) => None,
    }
}

pub fn summarize(dir: &Path) -> Result<String, String> {
    let plan_path = dir.join("plan.tsv");
    let plan = std::fs::read_to_string(&plan_path)
        .map_err(|e| format!("cannot read {}: {e}", plan_path.display()))?;
    let mut out = String::new();
    let mut detail = String::new();
    let _ = writeln!(
        out,
        "| setup | workload | Paddock ops/s | ZooKeeper ops/s | throughput ratio | Paddock p99 | ZooKeeper p99 | p99 ratio |"
    );
    let _ = writeln!(out, "|---|---|--:|--:|---|--:|--:|---|");
    let _ = writeln!(
        detail,
        "| setup | workload | server | rounds | ops/s | ops/s range | p50 | p99 | p99.9 | max | errors |"
    );
    let _ = writeln!(detail, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    for line in plan.lines().filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [setup, workload, slug] = cols[..] else {
            return Err(format!("bad line in plan.tsv: {line:?}"));
        };
        let slots: Vec<Slot> = SERVERS
            .iter()
            .map(|s| load_slot(dir, setup, slug, s))
            .collect();
        let (p, z) = (&slots[0], &slots[1]);
        let thr = |s: &Slot| match s {
            Slot::Run(r) => fmt_rate(r.throughput_ops_s),
            Slot::Missing(m) => m.clone(),
        };
        let p99 = |s: &Slot| match s {
            Slot::Run(r) => fmt_us(r.latency_us.p99),
            Slot::Missing(_) => "–".into(),
        };
        let (thr_ratio, p99_ratio) = match (p, z) {
            (Slot::Run(a), Slot::Run(b)) => (
                verdict(a.throughput_ops_s, b.throughput_ops_s, true),
                verdict(a.latency_us.p99, b.latency_us.p99, false),
            ),
            _ => ("–".into(), "–".into()),
        };
        let label = match slots.iter().find_map(|s| match s {
            Slot::Run(r) => Some(r.measures.clone()),
            Slot::Missing(_) => None,
        }) {
            Some(m) if m == "notify" => format!("{workload} (notifications)"),
            Some(m) if m == "cycle" => format!("{workload} (session cycles)"),
            _ => workload.to_string(),
        };
        let _ = writeln!(
            out,
            "| {setup} | {label} | {} | {} | {thr_ratio} | {} | {} | {p99_ratio} |",
            thr(p),
            thr(z),
            p99(p),
            p99(z)
        );
        for (server, slot) in SERVERS.iter().zip(&slots) {
            let name = if *server == "paddock" {
                "Paddock"
            } else {
                "ZooKeeper"
            };
            match slot {
                Slot::Run(r) => {
                    let _ = writeln!(
                        detail,
                        "| {setup} | {workload} | {name} | {} | {} | {}–{} | {} | {} | {} | {} | {} |",
                        r.rounds,
                        fmt_rate(r.throughput_ops_s),
                        fmt_rate(r.throughput_range.0),
                        fmt_rate(r.throughput_range.1),
                        fmt_us(r.latency_us.p50),
                        fmt_us(r.latency_us.p99),
                        fmt_us(r.latency_us.p999),
                        fmt_us(r.latency_us.max),
                        r.errors
                    );
                }
                Slot::Missing(_) => {
                    let _ = writeln!(
                        detail,
                        "| {setup} | {workload} | {name} | {} | | | | | | | |",
                        cell_missing(slot).unwrap_or("")
                    );
                }
            }
        }
    }
    let metrics = metrics_table(dir)?;
    Ok(format!(
        "{out}\nRatios are Paddock ÷ ZooKeeper. Throughput: higher is better; latency: lower is better.\n\
         With several rounds, each figure is the median of the rounds (the detail table shows the spread).\n\
         watch-fanout: notifications delivered per second, latency from setData sent to event received.\n\
         ephemeral-churn: whole sessions per second (connect, create ephemeral, closeSession).\n\n\
         {detail}\n{metrics}"
    ))
}

fn metrics_table(dir: &Path) -> Result<String, String> {
    let path = dir.join("metrics.tsv");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(_) => return Ok(String::new()),
    };
    let mut order: Vec<String> = Vec::new();
    let mut cells: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [name, server, value, unit] = cols[..] else {
            return Err(format!("bad line in metrics.tsv: {line:?}"));
        };
        if !order.iter().any(|o| o == name) {
            order.push(name.to_string());
        }
        cells.insert(
            (name.to_string(), server.to_string()),
            (value.to_string(), unit.to_string()),
        );
    }
    let mut out = String::new();
    let _ = writeln!(out, "| measurement | Paddock | ZooKeeper | ratio |");
    let _ = writeln!(out, "|---|--:|--:|---|");
    for name in &order {
        let get = |server: &str| cells.get(&(name.clone(), server.to_string()));
        let show = |c: Option<&(String, String)>| match c {
            Some((v, u)) if v.parse::<f64>().is_ok() => format!("{v} {u}"),
            Some((v, _)) => v.clone(),
            None => "–".into(),
        };
        let num = |c: Option<&(String, String)>| c.and_then(|(v, _)| v.parse::<f64>().ok());
        let (p, z) = (get("paddock"), get("zookeeper"));
        let ratio = match (num(p), num(z)) {
            (Some(a), Some(b)) => verdict(a, b, false),
            _ => "–".into(),
        };
        let _ = writeln!(out, "| {name} | {} | {} | {ratio} |", show(p), show(z));
    }
    let _ = writeln!(
        out,
        "\nLower is better for every measurement in this table."
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(verdict(200.0, 100.0, true), "2.00× **ahead**");
        assert_eq!(verdict(200.0, 100.0, false), "2.00× behind");
        assert_eq!(verdict(50.0, 100.0, false), "0.50× **ahead**");
        assert_eq!(verdict(101.0, 100.0, true), "1.01× even");
        assert_eq!(verdict(1.0, 0.0, true), "–");
    }

    #[test]
    fn table_from_files() {
        let dir =
            std::env::temp_dir().join(format!("paddock-bench-summary-{}", std::process::id()));
        let runs = dir.join("runs");
        std::fs::create_dir_all(&runs).unwrap();
        std::fs::write(
            dir.join("plan.tsv"),
            "1-node\tread\tread\n3-node\tread\tread\n",
        )
        .unwrap();
        let report = |thr: f64, p99: f64| {
            format!(
                r#"{{"tool":"t","workload":"read","servers":["x:1"],"sessions":1,"inflight":1,
                "value_size":1,"keys":1,"duration_s":1.0,"warmup_s":0.0,"measures":"read","ops":1,
                "throughput_ops_s":{thr},"latency_us":{{"p50":1.0,"p99":{p99},"p999":1.0,"max":1.0,"mean":1.0}},
                "per_op":{{}},"errors":{{"total":0,"server":{{}},"protocol":0,"connection":0,"sessions_lost":0}}}}"#
            )
        };
        let put = |name: &str, text: String| std::fs::write(runs.join(name), text).unwrap();
        // Three rounds: the medians are 2000 ops/s and 100 µs.
        put("1-node.read.paddock.r1.json", report(1000.0, 50.0));
        put("1-node.read.paddock.r2.json", report(2000.0, 100.0));
        put("1-node.read.paddock.r3.json", report(3000.0, 900.0));
        put("1-node.read.zookeeper.r1.json", report(1000.0, 200.0));
        std::fs::write(
            runs.join("3-node.read.paddock.na"),
            "n/a (ensembles not yet implemented)\n",
        )
        .unwrap();
        put("3-node.read.zookeeper.r1.json", report(900.0, 300.0));
        std::fs::write(
            dir.join("metrics.tsv"),
            "RSS\tpaddock\t100\tMiB\nRSS\tzookeeper\t400\tMiB\nfailover\tpaddock\tn/a (x)\ts\n",
        )
        .unwrap();
        let t = summarize(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(t.contains("| 1-node | read | 2000 | 1000 | 2.00× **ahead** | 100 µs | 200 µs | 0.50× **ahead** |"), "{t}");
        assert!(
            t.contains("| 3-node | read | n/a (ensembles not yet implemented) | 900 |"),
            "{t}"
        );
        assert!(
            t.contains("| RSS | 100 MiB | 400 MiB | 0.25× **ahead** |"),
            "{t}"
        );
        assert!(t.contains("| failover | n/a (x) | – | – |"), "{t}");
    }
}

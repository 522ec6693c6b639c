//! paddock-bench: load generator for ZooKeeper-compatible servers (DESIGN §6).
//!
//! `paddock-bench --servers HOST:PORT,... --workload read|write|create-delete|mixed:R|
//! watch-fanout:M|ephemeral-churn [--sessions N] [--inflight K] [--value-size B]
//! [--duration D] [--json]`, plus the helper subcommands `populate`, `wait-serving`,
//! `wait-write` and `summarize` that bench/compare.sh uses.
//!
//! Exit status: 0 when the run completed without protocol or connection errors, 1 when
//! it completed but saw such errors (or a helper failed), 2 for usage errors and when
//! the run could not start (unreachable server, setup refused).

mod cli;
mod conn;
mod probe;
mod report;
mod stats;
mod summary;
mod workload;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use serde::Serialize;

use cli::{Cli, Command, RunArgs};
use workload::Plan;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = if cli.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut multi = tokio::runtime::Builder::new_multi_thread();
        multi.worker_threads(usize::from(cli.threads));
        multi
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paddock-bench: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            None => run(cli.run).await,
            Some(Command::Populate(a)) => {
                let json = a.json;
                helper(probe::populate(&a).await, json, |r| {
                    format!(
                        "populated {} znodes ({} existed) in {:.1} s, {:.0} creates/s; last {}",
                        r.created, r.existed, r.elapsed_s, r.creates_per_s, r.last_path
                    )
                })
            }
            Some(Command::WaitServing(a)) => {
                helper(probe::wait_serving(&a).await, a.json, wait_text)
            }
            Some(Command::WaitWrite(a)) => helper(probe::wait_write(&a).await, a.json, wait_text),
            Some(Command::Summarize(a)) => match summary::summarize(&a.dir) {
                Ok(table) => {
                    print!("{table}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("paddock-bench: {e}");
                    ExitCode::FAILURE
                }
            },
        }
    });
    // Sessions that are still winding down (after an error) must not delay the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

fn wait_text(r: &probe::WaitReport) -> String {
    match r.elapsed_ms {
        Some(ms) => format!(
            "{} answered after {ms:.1} ms ({} attempts)",
            r.server, r.attempts
        ),
        None => format!(
            "{} answered after {:.1} ms of probing ({} attempts)",
            r.server, r.probe_ms, r.attempts
        ),
    }
}

fn helper<T: Serialize>(
    result: Result<T, String>,
    json: bool,
    text: impl Fn(&T) -> String,
) -> ExitCode {
    match result {
        Ok(r) if json => match serde_json::to_string(&r) {
            Ok(s) => {
                println!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("paddock-bench: cannot encode the report: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(r) => {
            println!("{}", text(&r));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("paddock-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> ExitCode {
    let (Some(servers), Some(workload)) = (args.servers, args.workload) else {
        let mut cmd = Cli::command();
        let _ = cmd.print_help();
        eprintln!("\npaddock-bench: --servers and --workload are required");
        return ExitCode::from(2);
    };
    let plan = Plan {
        servers: servers.0,
        workload,
        sessions: args.sessions,
        inflight: args.inflight,
        value_size: args.value_size,
        keys: args.keys,
        duration: args.duration,
        warmup: args.warmup,
        ops: args.ops,
        root: args.root,
        net: args.net,
    };
    // The run itself is bounded (every wait has a limit); this is the last line of defence.
    let bound = plan.warmup
        + plan.duration
        + 4 * plan.net.request_timeout
        + std::time::Duration::from_secs(60);
    let outcome = match tokio::time::timeout(bound, workload::run(&plan)).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            eprintln!("paddock-bench: {e}");
            return ExitCode::from(2);
        }
        Err(_) => {
            eprintln!("paddock-bench: the run did not finish within {bound:?}; giving up");
            return ExitCode::FAILURE;
        }
    };
    let report = report::build(&plan, &outcome);
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("paddock-bench: cannot encode the report: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", report::human(&report));
    }
    if report.errors.protocol > 0 || report.errors.connection > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

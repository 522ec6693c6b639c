//! `paddock up`: a local ensemble on loopback (and optionally a sidecar) for
//! development. It runs the `paddock-server` (and `paddock-sidecar`) binaries that sit
//! next to this one, writes each server's zoo.cfg and data under a work directory,
//! waits until every server answers, prints how to reach them, and stops everything on
//! Ctrl-C (or as soon as one of them exits).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::exit::Failure;

/// What `paddock up` was asked for.
pub struct UpOptions {
    pub servers: u8,
    pub sidecar: bool,
    pub base_port: u16,
    pub dir: Option<PathBuf>,
}

/// The processes started; killed on drop so nothing outlives `paddock up`.
struct Children(Vec<(String, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Children {
    /// Fails when one of them has exited.
    fn check_running(&mut self, dir: &Path) -> Result<(), Failure> {
        for (name, child) in &mut self.0 {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Failure::Other(format!(
                    "{name} exited ({status}); logs in {}",
                    dir.display()
                )));
            }
        }
        Ok(())
    }
}

fn sibling(name: &str) -> Result<PathBuf, Failure> {
    let me = std::env::current_exe()
        .map_err(|e| Failure::Other(format!("cannot locate paddock itself: {e}")))?;
    let path = me.with_file_name(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(Failure::Other(format!(
            "{} not found next to paddock (build it: cargo build -p {name})",
            path.display()
        )))
    }
}

/// The zoo.cfg of server `id` (1-based) of an ensemble of `n` on 127.0.0.1.
fn zoo_cfg(dir: &Path, id: u16, n: u16, base: u16) -> String {
    let mut cfg = format!(
        "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\n\
         admin.serverPort={}\nadmin.serverAddress=127.0.0.1\n4lw.commands.whitelist=*\n\
         reconfigEnabled=true\nextendedTypesEnabled=true\n",
        dir.join(format!("server{id}")).display(),
        base + id - 1,
        base + 100 + id - 1,
    );
    if n > 1 {
        for peer in 1..=n {
            cfg.push_str(&format!(
                "server.{peer}=127.0.0.1:{}:{};127.0.0.1:{}\n",
                base + 200 + peer - 1,
                base + 300 + peer - 1,
                base + peer - 1
            ));
        }
    }
    cfg
}

/// Every port `paddock up` will listen on, with what it is for.
fn planned_ports(n: u16, base: u16, sidecar: bool) -> Vec<(u16, String)> {
    let mut ports = Vec::new();
    for id in 1..=n {
        ports.push((base + id - 1, format!("client port of server {id}")));
        ports.push((base + 100 + id - 1, format!("admin port of server {id}")));
        if n > 1 {
            ports.push((base + 200 + id - 1, format!("quorum port of server {id}")));
            ports.push((base + 300 + id - 1, format!("election port of server {id}")));
        }
    }
    if sidecar {
        ports.push((SIDECAR_PORT, "sidecar".to_string()));
    }
    ports
}

/// Refuses to start when a port is taken: otherwise whatever already listens there
/// (often an earlier `paddock up`) would answer our readiness checks, and the banner
/// would describe servers that never started.
fn check_ports_free(ports: &[(u16, String)]) -> Result<(), Failure> {
    let taken: Vec<String> = ports
        .iter()
        .filter(|(port, _)| std::net::TcpListener::bind(("127.0.0.1", *port)).is_err())
        .map(|(port, what)| format!("127.0.0.1:{port} ({what})"))
        .collect();
    if taken.is_empty() {
        return Ok(());
    }
    Err(Failure::Other(format!(
        "already in use: {}; stop what listens there (an earlier `paddock up`?) or pick \
         other ports with --base-port",
        taken.join(", ")
    )))
}

/// The sidecar's listen port.
const SIDECAR_PORT: u16 = 4040;

/// Sends `request` to 127.0.0.1:`port` and reads the answer until the server closes
/// (bounded); None when nothing answers.
fn ask_local(port: u16, request: &[u8]) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_millis(300),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(request).ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// Whether the server on `port` serves (its `srvr` names a mode).
fn ruok(port: u16) -> bool {
    ask_local(port, b"srvr").is_some_and(|answer| {
        answer.contains("Mode: ") && !answer.contains("not currently serving")
    })
}

/// Whether the sidecar answers `/readyz` with 200 (its session is connected).
fn sidecar_ready(port: u16) -> bool {
    ask_local(port, b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_some_and(|answer| answer.split_whitespace().nth(1) == Some("200"))
}

pub async fn up(opts: UpOptions) -> Result<(), Failure> {
    if !(1..=9).contains(&opts.servers) {
        return Err(Failure::Usage("--servers takes 1 to 9".into()));
    }
    let n = u16::from(opts.servers);
    let server_bin = sibling("paddock-server")?;
    let sidecar_bin = if opts.sidecar {
        Some(sibling("paddock-sidecar")?)
    } else {
        None
    };
    let dir = opts
        .dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("paddock-up-{}", std::process::id())));
    check_ports_free(&planned_ports(n, opts.base_port, opts.sidecar))?;
    let io = |what: &str, e: std::io::Error| Failure::Other(format!("{what}: {e}"));
    let mut children = Children(Vec::new());
    for id in 1..=n {
        let data = dir.join(format!("server{id}"));
        std::fs::create_dir_all(&data).map_err(|e| io(&data.display().to_string(), e))?;
        std::fs::write(data.join("myid"), format!("{id}\n")).map_err(|e| io("myid", e))?;
        let cfg_path = dir.join(format!("server{id}.cfg"));
        std::fs::write(&cfg_path, zoo_cfg(&dir, id, n, opts.base_port))
            .map_err(|e| io("zoo.cfg", e))?;
        let log =
            std::fs::File::create(dir.join(format!("server{id}.log"))).map_err(|e| io("log", e))?;
        let child = Command::new(&server_bin)
            .arg("--config")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| io("log", e))?)
            .stderr(log)
            .spawn()
            .map_err(|e| io("cannot start paddock-server", e))?;
        children.0.push((format!("server {id}"), child));
    }
    let ports: Vec<u16> = (1..=n).map(|id| opts.base_port + id - 1).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    for port in &ports {
        while !ruok(*port) {
            children.check_running(&dir)?;
            if Instant::now() > deadline {
                return Err(Failure::Other(format!(
                    "the server on 127.0.0.1:{port} did not start serving within 30 s; logs in {}",
                    dir.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let connect: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let connect = connect.join(",");
    println!("ensemble of {n} up: {connect}");
    for id in 1..=n {
        println!(
            "  server {id}: client 127.0.0.1:{}, admin http://127.0.0.1:{}/status",
            opts.base_port + id - 1,
            opts.base_port + 100 + id - 1
        );
    }
    if let Some(bin) = sidecar_bin {
        let log = std::fs::File::create(dir.join("sidecar.log")).map_err(|e| io("log", e))?;
        let listen = format!("127.0.0.1:{SIDECAR_PORT}");
        let child = Command::new(bin)
            .args(["--servers", &connect, "--listen", &listen])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| io("log", e))?)
            .stderr(log)
            .spawn()
            .map_err(|e| io("cannot start paddock-sidecar", e))?;
        children.0.push(("sidecar".into(), child));
        // Announce it only once it answers with a session, so the example works at once.
        while !sidecar_ready(SIDECAR_PORT) {
            children.check_running(&dir)?;
            if Instant::now() > deadline {
                return Err(Failure::Other(format!(
                    "the sidecar on {listen} was not ready within 30 s; logs in {}",
                    dir.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "  sidecar: http://{listen} (e.g. curl -X PUT {listen}/v1/elections/demo/candidates/me)"
        );
    }
    println!(
        "data and logs in {}; Ctrl-C stops everything",
        dir.display()
    );
    // SIGTERM too (e.g. `timeout`, a supervisor): children must not outlive us.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| io("cannot watch for SIGTERM", e))?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                println!("stopping");
                return Ok(());
            }
            _ = term.recv() => {
                println!("stopping");
                return Ok(());
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => children.check_running(&dir)?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_port_is_planned_once() {
        let ports = planned_ports(3, 2181, true);
        let mut numbers: Vec<u16> = ports.iter().map(|(p, _)| *p).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), ports.len());
        assert_eq!(ports.len(), 3 * 4 + 1);
        // Standalone: no quorum or election ports.
        assert_eq!(planned_ports(1, 2181, false).len(), 2);
    }

    #[test]
    fn a_taken_port_is_named() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let err = check_ports_free(&[(port, "client port of server 1".into())]).unwrap_err();
        let Failure::Other(message) = err else {
            panic!("{err:?}")
        };
        assert!(
            message.contains(&format!("127.0.0.1:{port} (client port of server 1)")),
            "{message}"
        );
        assert!(message.contains("--base-port"), "{message}");
        drop(held);
        check_ports_free(&[(port, "client port of server 1".into())]).unwrap();
    }
}

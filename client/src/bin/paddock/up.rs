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

fn ruok(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_millis(300),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut answer = String::new();
    s.write_all(b"srvr").is_ok()
        && s.read_to_string(&mut answer).is_ok()
        && answer.contains("Mode: ")
        && !answer.contains("not currently serving")
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
        let child = Command::new(bin)
            .args(["--servers", &connect, "--listen", "127.0.0.1:4040"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| io("log", e))?)
            .stderr(log)
            .spawn()
            .map_err(|e| io("cannot start paddock-sidecar", e))?;
        children.0.push(("sidecar".into(), child));
        println!(
            "  sidecar: http://127.0.0.1:4040 (e.g. curl -X PUT 127.0.0.1:4040/v1/elections/demo/candidates/me)"
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
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                for (name, child) in &mut children.0 {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(Failure::Other(format!(
                            "{name} exited ({status}); logs in {}", dir.display()
                        )));
                    }
                }
            }
        }
    }
}

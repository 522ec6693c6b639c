//! The `paddock` CLI against a real server: every command, its JSON form and its exit
//! codes. Each test runs against paddock-server and against Apache ZooKeeper 3.8.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Env, within};
use paddock_client::{CreateMode, EventType};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const PADDOCK: &str = env!("CARGO_BIN_EXE_paddock");
const WAIT: Duration = Duration::from_secs(15);

/// A finished CLI run.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success: {self:?}");
        self
    }

    fn fails(self, code: i32, message: &str) -> Run {
        assert_eq!(self.code, code, "exit code: {self:?}");
        assert_eq!(
            self.stderr.trim_end(),
            format!("paddock: {message}"),
            "one-line error: {self:?}"
        );
        assert_eq!(self.stderr.lines().count(), 1);
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    fn error_json(&self) -> Value {
        serde_json::from_str(&self.stderr)
            .unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {self:?}"))
    }
}

fn paddock(env: &Env) -> Command {
    let mut cmd = Command::new(PADDOCK);
    cmd.arg("--server")
        .arg(env.connect_string())
        .env_remove("PADDOCK_SERVER")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn run(env: &Env, args: &[&str]) -> Run {
    run_cmd(paddock(env).args(args), None).await
}

async fn run_with_stdin(env: &Env, args: &[&str], stdin: &[u8]) -> Run {
    run_cmd(paddock(env).args(args), Some(stdin)).await
}

async fn run_cmd(cmd: &mut Command, stdin: Option<&[u8]>) -> Run {
    within(WAIT, "paddock command", async {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn paddock");
        if let Some(data) = stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            pipe.write_all(data).await.expect("write stdin");
            drop(pipe);
        }
        let out = child.wait_with_output().await.expect("paddock output");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
}

async fn crud_text_and_exit_codes(env: Env) {
    assert_eq!(
        run(&env, &["create", "/a", "hello"]).await.ok().stdout,
        "/a\n"
    );
    assert_eq!(
        run(&env, &["create", "-s", "/a/n-"]).await.ok().stdout,
        "/a/n-0000000000\n"
    );
    assert_eq!(
        run(&env, &["get", "/a"]).await.ok().stdout,
        "hello",
        "data exactly as stored"
    );
    assert_eq!(run(&env, &["set", "/a", "world"]).await.ok().stdout, "");
    let got = run(&env, &["get", "-s", "/a"]).await.ok().stdout;
    assert!(got.starts_with("world\ncZxid = 0x"), "{got}");
    assert!(
        got.contains("dataVersion = 1\n") && got.contains("numChildren = 1\n"),
        "{got}"
    );
    let stat = run(&env, &["stat", "/a"]).await.ok().stdout;
    assert!(
        stat.contains("ephemeralOwner = 0x0\n") && stat.contains("dataLength = 5\n"),
        "{stat}"
    );
    assert!(
        stat.lines()
            .any(|l| l.starts_with("mtime = 20") && l.ends_with('Z')),
        "{stat}"
    );
    run(&env, &["create", "/a/b"]).await.ok();
    run(&env, &["create", "/a/b/c"]).await.ok();
    assert_eq!(
        run(&env, &["ls", "/a"]).await.ok().stdout,
        "b\nn-0000000000\n"
    );
    assert_eq!(
        run(&env, &["ls", "-R", "/a"]).await.ok().stdout,
        "/a\n/a/b\n/a/n-0000000000\n/a/b/c\n"
    );

    // Failures: one line naming the error and the path, and a distinct exit code.
    run(&env, &["get", "/a/missing"])
        .await
        .fails(3, "NoNode: /a/missing");
    run(&env, &["stat", "/nope"])
        .await
        .fails(3, "NoNode: /nope");
    run(&env, &["ls", "/nope"]).await.fails(3, "NoNode: /nope");
    run(&env, &["create", "/a"])
        .await
        .fails(4, "NodeExists: /a");
    run(&env, &["create", "/x/y"])
        .await
        .fails(3, "NoNode: /x/y");
    run(&env, &["set", "/a", "v", "-v", "0"])
        .await
        .fails(4, "BadVersion: /a");
    run(&env, &["delete", "/a"]).await.fails(4, "NotEmpty: /a");
    run(&env, &["delete", "/a/b/c", "-v", "3"])
        .await
        .fails(4, "BadVersion: /a/b/c");
    run(&env, &["delete", "-r", "/zzz"])
        .await
        .fails(3, "NoNode: /zzz");
    run(&env, &["delete", "-r", "/"]).await.fails(
        2,
        "refusing to delete everything: delete -r / (delete the children one by one)",
    );
    let bad = run(&env, &["get", "relative"]).await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(
        bad.stderr
            .starts_with("paddock: BadArguments: invalid path \"relative\""),
        "{bad:?}"
    );
    let usage = run(&env, &["get"]).await;
    assert_eq!(usage.code, 2, "{usage:?}");
    let usage = run(&env, &["frobnicate"]).await;
    assert_eq!(usage.code, 2, "{usage:?}");

    run(&env, &["delete", "/a/b/c", "-v", "0"]).await.ok();
    run(&env, &["delete", "-r", "/a"]).await.ok();
    run(&env, &["get", "/a"]).await.fails(3, "NoNode: /a");
}

async fn null_data_prints_as_null(env: Env) {
    let c = env.client().await;
    c.create_nullable("/n", None, CreateMode::Persistent)
        .await
        .unwrap();
    c.create("/e", b"", CreateMode::Persistent).await.unwrap();
    // zkCli prints null data as "null"; empty data prints nothing.
    assert_eq!(run(&env, &["get", "/n"]).await.ok().stdout, "null\n");
    assert_eq!(run(&env, &["get", "/e"]).await.ok().stdout, "");
    let got = run(&env, &["get", "-s", "/n"]).await.ok().stdout;
    assert!(got.starts_with("null\ncZxid = 0x"), "{got}");
    assert!(got.contains("dataLength = 0\n"), "{got}");
    let null = run(&env, &["--json", "get", "/n"]).await.ok().json();
    assert_eq!(null["data"], Value::Null, "{null}");
    assert!(null.get("dataBase64").is_none(), "{null}");
    let empty = run(&env, &["--json", "get", "/e"]).await.ok().json();
    assert_eq!(empty["data"], "", "{empty}");
}

async fn json_forms(env: Env) {
    let created = run(&env, &["--json", "create", "/j", "text"])
        .await
        .ok()
        .json();
    assert_eq!(created["path"], "/j");
    assert_eq!(created["stat"]["version"], 0);
    let czxid = created["stat"]["czxid"].as_i64().unwrap();
    assert!(czxid > 0);

    let got = run(&env, &["get", "/j", "--json"]).await.ok().json();
    assert_eq!(got["data"], "text");
    assert_eq!(got["stat"]["czxid"], czxid);
    assert_eq!(got["stat"]["dataLength"], 4);

    let set = run(&env, &["--json", "set", "/j", "more"])
        .await
        .ok()
        .json();
    assert_eq!(set["stat"]["version"], 1);
    let stat = run(&env, &["--json", "stat", "/j"]).await.ok().json();
    assert_eq!(stat["stat"]["version"], 1);
    assert_eq!(stat["stat"]["ephemeralOwner"], 0);

    // Binary data comes as base64.
    run_with_stdin(&env, &["set", "/j", "-"], &[0xff, 0x00, 0x01])
        .await
        .ok();
    let bin = run(&env, &["--json", "get", "/j"]).await.ok().json();
    assert_eq!(bin["dataBase64"], "/wAB");
    assert!(bin.get("data").is_none());

    run(&env, &["create", "/j/k"]).await.ok();
    let ls = run(&env, &["--json", "ls", "/j"]).await.ok().json();
    assert_eq!(ls["children"], serde_json::json!(["k"]));
    let tree = run(&env, &["--json", "ls", "-R", "/j"]).await.ok().json();
    assert_eq!(tree["nodes"], serde_json::json!(["/j", "/j/k"]));
    let acl = run(&env, &["--json", "getacl", "/j"]).await.ok().json();
    assert_eq!(acl["acl"][0]["scheme"], "world");
    assert_eq!(acl["acl"][0]["perms"], "cdrwa");
    let who = run(&env, &["--json", "whoami"]).await.ok().json();
    assert!(
        who["identities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["scheme"] == "ip"),
        "{who}"
    );
    let deleted = run(&env, &["--json", "delete", "-r", "/j"])
        .await
        .ok()
        .json();
    assert_eq!(deleted["deleted"], true);

    // Errors as JSON on stderr, with the same exit codes.
    let missing = run(&env, &["--json", "get", "/j"]).await;
    assert_eq!(missing.code, 3);
    assert_eq!(missing.stdout, "");
    let err = missing.error_json();
    assert_eq!(err["error"], "NoNode");
    assert_eq!(err["path"], "/j");
    assert_eq!(err["message"], "NoNode: /j");
    assert_eq!(err["exitCode"], 3);
    run(&env, &["create", "/j"]).await.ok();
    let exists = run(&env, &["--json", "create", "/j"]).await;
    assert_eq!(
        (exists.code, exists.error_json()["error"].clone()),
        (4, "NodeExists".into())
    );
}

async fn create_modes_and_stdin(env: Env) {
    // An ephemeral lives as long as the command's session: it is gone afterwards.
    assert_eq!(
        run(&env, &["create", "-e", "/eph"]).await.ok().stdout,
        "/eph\n"
    );
    run(&env, &["stat", "/eph"]).await.fails(3, "NoNode: /eph");
    let seq = run(&env, &["create", "-e", "-s", "/es-"]).await.ok().stdout;
    let digits = seq
        .trim_end()
        .strip_prefix("/es-")
        .unwrap_or_else(|| panic!("{seq:?}"));
    assert!(
        digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit()),
        "{seq:?}"
    );
    run(&env, &["create", "-c", "/box"]).await.ok();
    run(&env, &["create", "-t", "60s", "/ttl", "x"]).await.ok();
    let c = env.client().await;
    assert!(c.exists("/box").await.unwrap().is_some());
    assert!(c.exists("/ttl").await.unwrap().is_some());
    // -p creates missing parents.
    run(&env, &["create", "-p", "/deep/er/node", "v"])
        .await
        .ok();
    assert_eq!(c.get_data("/deep/er/node").await.unwrap().0, b"v");
    // Data from stdin, byte for byte.
    let blob: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    run_with_stdin(&env, &["create", "/blob", "-"], &blob)
        .await
        .ok();
    assert_eq!(c.get_data("/blob").await.unwrap().0, blob);
    let out = run(&env, &["get", "/blob"]).await;
    assert_eq!(out.code, 0);
    // A value over the server's limit: a clear error, nothing sent.
    let huge = vec![b'x'; 2 * 1024 * 1024];
    let too_big = run_with_stdin(&env, &["set", "/blob", "-"], &huge).await;
    assert_eq!(too_big.code, 2, "{too_big:?}");
    assert!(
        too_big
            .stderr
            .starts_with("paddock: BadArguments: /blob: request of ")
            && too_big.stderr.contains("jute.maxbuffer"),
        "{too_big:?}"
    );
    // Conflicting flags are a usage error.
    assert_eq!(run(&env, &["create", "-c", "-e", "/bad"]).await.code, 2);
    assert_eq!(run(&env, &["create", "-t", "soon", "/bad"]).await.code, 2);
}

async fn acls_and_auth(env: Env) {
    let hash = paddock_client::acl::digest_id("alice", "pw").id;
    run(
        &env,
        &["addauth", "digest", "alice:pw", "--", "create", "/sec", "s"],
    )
    .await
    .ok();
    run(
        &env,
        &[
            "setacl",
            "/sec",
            &format!("digest:{hash}:cdrwa,world:anyone:r"),
        ],
    )
    .await
    .ok();
    // Servers show digest hashes only to those with ADMIN rights.
    assert_eq!(
        run(&env, &["getacl", "/sec"]).await.ok().stdout,
        "digest:alice:x:cdrwa\nworld:anyone:r\n"
    );
    assert_eq!(
        run(&env, &["--auth", "digest:alice:pw", "getacl", "/sec"])
            .await
            .ok()
            .stdout,
        format!("digest:{hash}:cdrwa\nworld:anyone:r\n")
    );
    assert_eq!(run(&env, &["get", "/sec"]).await.ok().stdout, "s");
    run(&env, &["set", "/sec", "t"])
        .await
        .fails(6, "NoAuth: /sec");
    run(&env, &["--auth", "digest:alice:pw", "set", "/sec", "t"])
        .await
        .ok();
    run(
        &env,
        &["addauth", "digest", "alice:pw", "--", "set", "/sec", "u"],
    )
    .await
    .ok();
    run(&env, &["setacl", "/sec", "digest:x:y:q"]).await.fails(
        2,
        "ACL: \"digest:x:y:q\": unknown permission 'q' (expected letters of cdrwa)",
    );
    run(&env, &["setacl", "/sec", "world:anyone:r", "-v", "9"])
        .await
        .fails(6, "NoAuth: /sec");
    let who = run(&env, &["addauth", "digest", "bob:pw"])
        .await
        .ok()
        .stdout;
    assert!(who.lines().any(|l| l == "digest:bob"), "{who}");
    run(&env, &["addauth", "no-such-scheme", "x"]).await.fails(
        6,
        "AuthFailed: the server refused the no-such-scheme credentials",
    );
    let nested = run(&env, &["addauth", "digest", "a:b", "--", "bogus"]).await;
    assert_eq!(nested.code, 2, "{nested:?}");
    assert_eq!(nested.stderr.lines().count(), 1, "{nested:?}");
}

async fn watch_streams_events_until_interrupted(env: Env) {
    let c = env.client().await;
    c.create("/w", b"", CreateMode::Persistent).await.unwrap();
    for json in [false, true] {
        let mut cmd = paddock(&env);
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd
            .args(["watch", "-R", "/w"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn paddock watch");
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = within(WAIT, "watch ready", stderr.next_line())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            ready,
            "paddock: watching /w and everything under it (Ctrl-C to stop)"
        );
        c.set_data("/w", b"1", None).await.unwrap();
        c.create("/w/x", b"", CreateMode::Persistent).await.unwrap();
        c.delete("/w/x", None).await.unwrap();
        let mut lines = Vec::new();
        for _ in 0..3 {
            lines.push(
                within(WAIT, "event line", stdout.next_line())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        if json {
            let events: Vec<Value> = lines
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(
                events[0],
                serde_json::json!({"event": "NodeDataChanged", "path": "/w"})
            );
            assert_eq!(events[1]["event"], EventType::NodeCreated.name());
            assert_eq!(events[2]["path"], "/w/x");
        } else {
            assert_eq!(
                lines,
                ["NodeDataChanged /w", "NodeCreated /w/x", "NodeDeleted /w/x"]
            );
        }
        // Ctrl-C ends it cleanly.
        let pid = child.id().expect("watch pid").to_string();
        let status = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let status = within(WAIT, "watch exits", child.wait()).await.unwrap();
        assert_eq!(status.code(), Some(0));
    }
    // Watching needs a server too.
    let dead = run_cmd(
        Command::new(PADDOCK)
            .args([
                "--server",
                &dead_server(),
                "--timeout",
                "300ms",
                "watch",
                "/w",
            ])
            .env_remove("PADDOCK_SERVER"),
        None,
    )
    .await;
    assert_eq!(dead.code, 5, "{dead:?}");
}

fn dead_server() -> String {
    let ip = common::binary_ip(7);
    format!("{ip}:{}", common::free_port(ip))
}

async fn config_and_four_letter_words(env: Env) {
    let config = run(&env, &["config"]).await.ok();
    let as_json = run(&env, &["--json", "config"]).await.ok().json();
    assert!(as_json["servers"].is_object());
    assert!(config.stdout.ends_with('\n'), "{config:?}");
    if as_json["standalone"] == true {
        // Nothing to print but the fact: an empty line would look like a failure.
        assert!(as_json["raw"].as_str().unwrap().trim().is_empty());
        assert!(
            config
                .stdout
                .starts_with("standalone server: no ensemble configuration"),
            "{config:?}"
        );
    } else {
        assert_eq!(
            as_json["raw"].as_str().unwrap().trim_end(),
            config.stdout.trim_end()
        );
    }

    let addr = env.addr.to_string();
    let srvr = run_cmd(
        Command::new(PADDOCK).args(["--server", &addr, "srvr"]),
        None,
    )
    .await
    .ok();
    assert!(srvr.stdout.contains("Mode: standalone\n"), "{srvr:?}");
    assert!(srvr.stdout.contains("Zookeeper version: "), "{srvr:?}");
    let srvr = run_cmd(
        Command::new(PADDOCK).args(["--server", &addr, "--json", "srvr"]),
        None,
    )
    .await
    .ok()
    .json();
    assert_eq!(srvr[0]["server"], addr.as_str());
    assert_eq!(srvr[0]["Mode"], "standalone");
    assert!(srvr[0]["Node count"].as_i64().unwrap() >= 3);
    let mntr = run_cmd(
        Command::new(PADDOCK).args(["--server", &addr, "--json", "mntr"]),
        None,
    )
    .await
    .ok()
    .json();
    assert!(mntr[0]["zk_znode_count"].as_i64().unwrap() >= 3, "{mntr}");
    assert_eq!(mntr[0]["zk_server_state"], "standalone");
    let text = run_cmd(
        Command::new(PADDOCK).args(["--server", &addr, "mntr"]),
        None,
    )
    .await
    .ok();
    assert!(
        text.stdout
            .lines()
            .any(|l| l.starts_with("zk_znode_count\t")),
        "{text:?}"
    );
    // Every server of the list answers; the chroot does not matter.
    let two = format!("{addr},{addr}/chroot");
    let both = run_cmd(
        Command::new(PADDOCK).args(["--server", &two, "--json", "srvr"]),
        None,
    )
    .await
    .ok()
    .json();
    assert_eq!(both.as_array().unwrap().len(), 2);
    // The server list may come from PADDOCK_SERVER.
    let from_env = run_cmd(
        Command::new(PADDOCK)
            .arg("srvr")
            .env("PADDOCK_SERVER", &addr),
        None,
    )
    .await
    .ok();
    assert!(from_env.stdout.contains("Mode: standalone"));
    // Standalone servers refuse reconfig.
    let reconfig = run(
        &env,
        &["reconfig", "--add", "server.9=127.0.0.9:2888:3888;2181"],
    )
    .await;
    assert_eq!(reconfig.code, 1, "{reconfig:?}");
    assert_eq!(run(&env, &["reconfig"]).await.code, 2);
}

async fn cannot_connect_and_bad_input(env: Env) {
    let dead = dead_server();
    let start = std::time::Instant::now();
    let out = run_cmd(
        Command::new(PADDOCK)
            .args(["--server", &dead, "--timeout", "500ms", "ls", "/"])
            .env_remove("PADDOCK_SERVER"),
        None,
    )
    .await;
    assert_eq!(out.code, 5, "{out:?}");
    assert!(
        out.stderr.starts_with(&format!(
            "paddock: ConnectionLoss: cannot connect to {dead}"
        )),
        "{out:?}"
    );
    assert_eq!(out.stderr.lines().count(), 1);
    assert!(start.elapsed() < Duration::from_secs(5));
    // Nothing listens there: the default 5 s timeout is not waited out.
    let start = std::time::Instant::now();
    let out = run_cmd(
        Command::new(PADDOCK)
            .args(["--server", &dead, "get", "/x"])
            .env_remove("PADDOCK_SERVER"),
        None,
    )
    .await;
    assert_eq!(out.code, 5, "{out:?}");
    assert!(out.stderr.contains("refused"), "{out:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "a refused connection took {:?}",
        start.elapsed()
    );
    let out = run_cmd(
        Command::new(PADDOCK).args(["--server", &dead, "--json", "srvr"]),
        None,
    )
    .await;
    assert_eq!(out.code, 5, "{out:?}");
    assert_eq!(out.error_json()["error"], "FourLetterWord");
    // Malformed connect strings: usage errors that say what is wrong.
    for bad in ["", "host:port", "a:1,,b:2", "h:1/chroot/"] {
        let out = run_cmd(
            Command::new(PADDOCK).args(["--server", bad, "ls", "/"]),
            None,
        )
        .await;
        assert_eq!(out.code, 2, "{bad:?}: {out:?}");
        assert!(
            out.stderr
                .starts_with("paddock: BadArguments: invalid connect string"),
            "{out:?}"
        );
    }
    // A live server in the list is found past a dead one.
    let mixed = format!("{dead},{}{}", env.addr, env.ns);
    run_cmd(
        Command::new(PADDOCK).args(["--server", &mixed, "ls", "/"]),
        None,
    )
    .await
    .ok();
    // A chroot that does not exist: NoNode for the chrooted path.
    let out = run_cmd(
        Command::new(PADDOCK).args(["--server", &format!("{}/no/such/root", env.addr), "ls", "/"]),
        None,
    )
    .await;
    assert_eq!(out.code, 3, "{out:?}");
}

/// `paddock ls ... | head -1`: the reader goes away early; the CLI ends quietly (killed by
/// SIGPIPE, as ls or cat are) instead of panicking on the closed pipe.
async fn a_closed_stdout_pipe_ends_the_cli_quietly(env: Env) {
    let c = env.client().await;
    c.create("/many", b"", CreateMode::Persistent)
        .await
        .unwrap();
    for i in 0..2000 {
        c.create(
            &format!(
                "/many/child-with-a-long-name-so-that-the-listing-outgrows-a-pipe-buffer-{i:05}"
            ),
            b"",
            CreateMode::Persistent,
        )
        .await
        .unwrap();
    }
    let mut cmd = paddock(&env);
    cmd.args(["ls", "/many"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn paddock");
    let stdout = child.stdout.take().expect("stdout pipe");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .await
        .expect("the first line");
    assert!(first.starts_with("child-with-a-long-name-"), "{first:?}");
    // The read end closes here, with most of the listing unread.
    let out = within(WAIT, "paddock ls", child.wait_with_output())
        .await
        .expect("paddock output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
}

backend_tests!(
    a_closed_stdout_pipe_ends_the_cli_quietly,
    crud_text_and_exit_codes,
    null_data_prints_as_null,
    json_forms,
    create_modes_and_stdin,
    acls_and_auth,
    watch_streams_events_until_interrupted,
    config_and_four_letter_words,
    cannot_connect_and_bad_input,
);

// ---- paddock up ---------------------------------------------------------------------------

/// A port P of 127.0.0.1 with P and P + 100 (client and admin port of `up --servers 1
/// --base-port P`) free right now.
fn free_base_port() -> u16 {
    for _ in 0..100 {
        let port = common::free_port(std::net::Ipv4Addr::LOCALHOST);
        if port < 65_000 && std::net::TcpListener::bind(("127.0.0.1", port + 100)).is_ok() {
            return port;
        }
    }
    panic!("no free pair of ports on 127.0.0.1");
}

/// `paddock up --servers 1 --base-port BASE --dir DIR`, stdin closed.
fn up_one_server(base: u16, dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(PADDOCK);
    cmd.args([
        "up",
        "--servers",
        "1",
        "--base-port",
        &base.to_string(),
        "--dir",
    ])
    .arg(dir)
    .stdin(Stdio::null());
    cmd
}

/// Whether `cond` holds within `limit`, asked every 50 ms.
fn polls(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn up_names_a_port_in_use_instead_of_starting() {
    common::paddock_server_bin(); // `up` runs the paddock-server next to paddock
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = up_one_server(port, dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port} (client port of server 1)")),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no banner: {:?}", out.stdout);
    drop(held);
}

#[test]
fn up_prints_its_banner_once_serving_and_stops_on_sigterm() {
    common::paddock_server_bin();
    let base = free_base_port();
    let dir = tempfile::tempdir().unwrap();
    let mut up = up_one_server(base, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = up.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let mut banner = Vec::new();
    while !banner
        .iter()
        .any(|l: &String| l.contains("Ctrl-C stops everything"))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => banner.push(line),
            Err(_) => {
                let _ = up.kill();
                let _ = up.wait();
                panic!("no banner within 40 s: {banner:?}");
            }
        }
    }
    assert_eq!(banner[0], format!("ensemble of 1 up: 127.0.0.1:{base}"));
    // The banner is true: the server it names serves.
    let srvr = std::process::Command::new(PADDOCK)
        .args(["--server", &format!("127.0.0.1:{base}"), "srvr"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&srvr.stdout).contains("Mode: standalone"),
        "{srvr:?}"
    );
    // SIGTERM stops it and its server (bounded).
    // SAFETY: kill(2) on the pid of a child we started and have not reaped.
    unsafe { libc::kill(up.id() as i32, libc::SIGTERM) };
    let stopped = polls(Duration::from_secs(10), || {
        matches!(up.try_wait(), Ok(Some(_)))
    });
    if !stopped {
        let _ = up.kill();
        let _ = up.wait();
        panic!("paddock up did not stop within 10 s of SIGTERM");
    }
    let gone = polls(Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", base)).is_err()
    });
    assert!(gone, "the server outlived paddock up");
}

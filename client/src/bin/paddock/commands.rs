//! What each command does.

use std::io::Read;
use std::time::Duration;

use paddock_client::acl::{format_acl, parse_acl, perms_to_string};
use paddock_client::{AddWatchMode, Client, CreateMode, CreateOptions, Error, SessionState};
use serde_json::{Value, json};

use crate::exit::Failure;
use crate::output::{data_json, print_json, stat_json, stat_text, write_data};
use crate::{Cli, Command, Global, fourlw, parse_nested};

/// How long a session the CLI asks for (it only matters for `watch`).
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(cli: Cli) -> Result<(), Failure> {
    let global = cli.global;
    match cli.command {
        Command::Srvr => four_letter_word(&global, "srvr").await,
        Command::Mntr => four_letter_word(&global, "mntr").await,
        Command::Watch { path, recursive } => watch(&global, &path, recursive).await,
        Command::Up {
            servers,
            sidecar,
            base_port,
            dir,
        } => {
            crate::up::up(crate::up::UpOptions {
                servers,
                sidecar,
                base_port,
                dir,
            })
            .await
        }
        command => {
            let client = connect(&global).await?;
            let result = execute(&client, &global, command).await;
            client.close().await;
            result
        }
    }
}

async fn connect(global: &Global) -> Result<Client, Failure> {
    // A server that is not running refuses at once; say so at once instead of
    // retrying for the whole timeout.
    let mut builder = Client::builder(global.server.as_str())
        .session_timeout(SESSION_TIMEOUT)
        .connect_timeout(global.timeout)
        .request_timeout(global.timeout)
        .give_up_when_refused();
    for entry in &global.auth {
        let (scheme, auth) = entry.split_once(':').ok_or_else(|| {
            Failure::Usage(format!(
                "--auth {entry:?}: expected SCHEME:AUTH, e.g. digest:alice:secret"
            ))
        })?;
        builder = builder.auth(scheme, auth.as_bytes().to_vec());
    }
    if let Some(ca) = &global.tls_ca {
        let mut tls = paddock_client::TlsOptions::new(ca)
            .hostname_verification(!global.tls_no_hostname_check);
        if let (Some(cert), Some(key)) = (&global.tls_cert, &global.tls_key) {
            tls = tls.client_cert(cert, key);
        }
        builder = builder.tls(tls);
    } else if global.tls_cert.is_some() {
        return Err(Failure::Usage("--tls-cert needs --tls-ca".into()));
    }
    if let Some(user) = &global.sasl_user {
        let password = match (
            &global.sasl_password_file,
            std::env::var("PADDOCK_SASL_PASSWORD"),
        ) {
            (Some(path), _) => std::fs::read_to_string(path)
                .map(|p| p.trim_end_matches(['\r', '\n']).to_string())
                .map_err(|e| {
                    Failure::Usage(format!("--sasl-password-file {}: {e}", path.display()))
                })?,
            (None, Ok(password)) => password,
            (None, Err(_)) => {
                return Err(Failure::Usage(
                    "--sasl-user needs a password: PADDOCK_SASL_PASSWORD or --sasl-password-file"
                        .into(),
                ));
            }
        };
        builder = builder.sasl_digest(user, password);
    }
    Ok(builder.connect().await?)
}

async fn execute(client: &Client, global: &Global, command: Command) -> Result<(), Failure> {
    let json = global.json;
    match command {
        Command::Ls { path, recursive } => ls(client, json, path, recursive).await?,
        Command::Get { path, stat } => get(client, json, path, stat).await?,
        Command::Set {
            path,
            data,
            version,
        } => {
            let data = read_data(&data)?;
            let st = client.set_data(&path, &data, version).await?;
            if json {
                print_json(&json!({ "path": path, "stat": stat_json(&st) }));
            }
        }
        Command::Create {
            path,
            data,
            ephemeral,
            sequential,
            container,
            ttl,
            parents,
        } => {
            let data = match data {
                Some(d) => read_data(&d)?,
                None => Vec::new(),
            };
            let mode = create_mode(ephemeral, sequential, container, ttl.is_some());
            let mut options = CreateOptions::new(mode);
            if let Some(ttl) = ttl {
                options = options.ttl(ttl);
            }
            if parents && let Some(parent) = paddock_client::path::parent(&path) {
                client.ensure_path(parent, CreateMode::Persistent).await?;
            }
            let (created, st) = client
                .create(&path, &data, options)
                .await
                .map_err(|e| explain_create_error(e, ttl.is_some()))?;
            if json {
                print_json(&json!({ "path": created, "stat": stat_json(&st) }));
            } else {
                println!("{created}");
            }
        }
        Command::Delete {
            path,
            recursive,
            version,
        } => delete(client, json, path, recursive, version).await?,
        Command::Stat { path } => {
            let st = client.exists(&path).await?.ok_or_else(|| Error::Server {
                code: paddock_client::ErrorCode::NoNode,
                path: Some(path.clone()),
            })?;
            if json {
                print_json(&json!({ "path": path, "stat": stat_json(&st) }));
            } else {
                print!("{}", stat_text(&st));
            }
        }
        Command::Getacl { path } => {
            let (acl, st) = client.get_acl(&path).await?;
            if json {
                let entries: Vec<Value> = acl
                    .iter()
                    .map(|a| json!({ "scheme": a.id.scheme, "id": a.id.id, "perms": perms_to_string(a.perms) }))
                    .collect();
                print_json(&json!({ "path": path, "acl": entries, "aversion": st.aversion }));
            } else {
                for entry in &acl {
                    println!("{}", format_acl(entry));
                }
            }
        }
        Command::Setacl { path, acl, version } => {
            let acl = parse_acl(&acl).map_err(|e| Failure::Usage(format!("ACL: {e}")))?;
            let st = client.set_acl(&path, &acl, version).await?;
            if json {
                print_json(&json!({ "path": path, "stat": stat_json(&st) }));
            }
        }
        Command::Addauth {
            scheme,
            credentials,
            command,
        } => {
            client.add_auth(&scheme, credentials.as_bytes()).await?;
            if command.is_empty() {
                who_am_i(client, json).await?;
            } else {
                let nested = parse_nested(&command)?;
                if matches!(
                    nested,
                    Command::Srvr | Command::Mntr | Command::Watch { .. } | Command::Up { .. }
                ) {
                    return Err(Failure::Usage(
                        "addauth runs commands that use the session (not srvr, mntr or watch); use --auth instead".into(),
                    ));
                }
                Box::pin(execute(client, global, nested)).await?;
            }
        }
        Command::Whoami => who_am_i(client, json).await?,
        Command::Config => {
            let (data, st) = client.get_config().await?;
            let text = String::from_utf8_lossy(&data).into_owned();
            if json {
                print_json(&config_json(&text, st.version));
            } else if text.trim().is_empty() {
                println!("{STANDALONE_CONFIG}");
            } else {
                print_text(&text);
            }
        }
        Command::Reconfig {
            add,
            remove,
            members,
            from_config,
        } => reconfig(client, json, [add, remove, members], from_config).await?,
        // These need no session; `run` handles them before connecting.
        Command::Srvr => four_letter_word(global, "srvr").await?,
        Command::Mntr => four_letter_word(global, "mntr").await?,
        Command::Watch { .. } => {
            return Err(Failure::Usage("watch opens its own session".into()));
        }
        Command::Up { .. } => {
            return Err(Failure::Usage(
                "up starts servers; it does not use a session".into(),
            ));
        }
    }
    Ok(())
}

/// ls, or ls -r: the node and every descendant.
async fn ls(client: &Client, json: bool, path: String, recursive: bool) -> Result<(), Failure> {
    if recursive {
        let mut nodes = vec![path.clone()];
        nodes.extend(client.descendants(&path).await?);
        if json {
            print_json(&json!({ "path": path, "nodes": nodes }));
        } else {
            for node in nodes {
                println!("{node}");
            }
        }
    } else {
        let mut children = client.get_children(&path).await?;
        children.sort();
        if json {
            print_json(&json!({ "path": path, "children": children }));
        } else {
            for child in children {
                println!("{child}");
            }
        }
    }
    Ok(())
}

/// get: the data as zkCli prints it (null data as "null"), and with -s the stat.
async fn get(client: &Client, json: bool, path: String, stat: bool) -> Result<(), Failure> {
    let (data, st) = client.get_data_nullable(&path).await?;
    if json {
        // Null data (not the same as empty) is `"data": null`.
        let (key, value) = match &data {
            Some(bytes) => data_json(bytes),
            None => ("data", Value::Null),
        };
        let mut out = json!({ "path": path, "stat": stat_json(&st) });
        out[key] = value;
        print_json(&out);
    } else {
        // zkCli prints null data as the line "null".
        let data = match data {
            Some(bytes) => bytes,
            None => b"null\n".to_vec(),
        };
        write_data(&data).map_err(io_failure)?;
        if stat {
            if !data.is_empty() && !data.ends_with(b"\n") {
                println!();
            }
            print!("{}", stat_text(&st));
        }
    }
    Ok(())
}

/// The create mode of create's flags: a container, else ephemeral or persistent, with
/// a sequence number and with a TTL (persistent only) as asked.
fn create_mode(ephemeral: bool, sequential: bool, container: bool, ttl: bool) -> CreateMode {
    match (ephemeral, sequential, container, ttl) {
        (_, _, true, _) => CreateMode::Container,
        (true, true, _, _) => CreateMode::EphemeralSequential,
        (true, false, _, _) => CreateMode::Ephemeral,
        (false, true, _, true) => CreateMode::PersistentSequentialWithTtl,
        (false, false, _, true) => CreateMode::PersistentWithTtl,
        (false, true, _, false) => CreateMode::PersistentSequential,
        (false, false, _, false) => CreateMode::Persistent,
    }
}

/// delete, or delete -r (never of "/", and the node must exist).
async fn delete(
    client: &Client,
    json: bool,
    path: String,
    recursive: bool,
    version: Option<i32>,
) -> Result<(), Failure> {
    if recursive {
        if path == "/" {
            return Err(Failure::Usage(
                "refusing to delete everything: delete -r / (delete the children one by one)"
                    .into(),
            ));
        }
        // delete_all tolerates a vanished tree; the command should not.
        if client.exists(&path).await?.is_none() {
            return Err(Error::Server {
                code: paddock_client::ErrorCode::NoNode,
                path: Some(path),
            }
            .into());
        }
        client.delete_all(&path).await?;
    } else {
        client.delete(&path, version).await?;
    }
    if json {
        print_json(&json!({ "path": path, "deleted": true }));
    }
    Ok(())
}

/// reconfig with `[add, remove, members]` (at least one) and an optional fromConfig.
async fn reconfig(
    client: &Client,
    json: bool,
    changes: [Option<String>; 3],
    from_config: Option<String>,
) -> Result<(), Failure> {
    let [add, remove, members] = changes;
    if add.is_none() && remove.is_none() && members.is_none() {
        return Err(Failure::Usage(
            "reconfig needs --add, --remove or --members".into(),
        ));
    }
    let from = match from_config {
        None => None,
        Some(v) => Some(parse_config_version(&v)?),
    };
    let (data, st) = client
        .reconfig(add.as_deref(), remove.as_deref(), members.as_deref(), from)
        .await?;
    let text = String::from_utf8_lossy(&data).into_owned();
    if json {
        print_json(&config_json(&text, st.version));
    } else {
        print_text(&text);
    }
    Ok(())
}

async fn who_am_i(client: &Client, json: bool) -> Result<(), Failure> {
    let ids = client.who_am_i().await?;
    if json {
        let ids: Vec<Value> = ids
            .iter()
            .map(|i| json!({ "scheme": i.auth_scheme, "user": i.user }))
            .collect();
        print_json(&json!({ "identities": ids }));
    } else {
        for id in ids {
            println!("{}:{}", id.auth_scheme, id.user);
        }
    }
    Ok(())
}

/// What `config` says on a server outside any ensemble (its /zookeeper/config is empty).
const STANDALONE_CONFIG: &str = "standalone server: no ensemble configuration \
    (/zookeeper/config is empty). An ensemble lists server.N lines in zoo.cfg; `paddock up \
    --servers 3` runs one locally.";

/// What the server's refusal of a create means when the create needed extended types.
fn explain_create_error(e: Error, extended: bool) -> Failure {
    if extended && e.code() == paddock_client::ErrorCode::Unimplemented {
        return Failure::Other(
            "this server has TTL nodes turned off: set extendedTypesEnabled=true in its \
             zoo.cfg and restart it (`paddock up` turns it on)"
                .into(),
        );
    }
    e.into()
}

/// Text ending with exactly one newline (so the next prompt starts on its own line).
fn print_text(text: &str) {
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
}

/// `/zookeeper/config` as JSON: its servers by id, its version, and the raw text;
/// `standalone` when the server is in no ensemble.
fn config_json(text: &str, node_version: i32) -> Value {
    let mut servers = serde_json::Map::new();
    let mut version = Value::Null;
    for line in text.lines() {
        if let Some((key, value)) = line.split_once('=') {
            if let Some(id) = key.strip_prefix("server.") {
                servers.insert(id.to_string(), value.into());
            } else if key == "version" {
                version = value.into();
            }
        }
    }
    json!({
        "servers": servers,
        "version": version,
        "nodeVersion": node_version,
        "raw": text,
        "standalone": text.trim().is_empty(),
    })
}

fn parse_config_version(text: &str) -> Result<i64, Failure> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| {
        Failure::Usage(format!(
            "--from-config {text:?}: expected a number (hex with 0x)"
        ))
    })
}

/// Data from the command line, or from stdin for `-`.
fn read_data(arg: &str) -> Result<Vec<u8>, Failure> {
    if arg == "-" {
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .map_err(io_failure)?;
        Ok(data)
    } else {
        Ok(arg.as_bytes().to_vec())
    }
}

fn io_failure(e: std::io::Error) -> Failure {
    Failure::Other(e.to_string())
}

async fn four_letter_word(global: &Global, word: &str) -> Result<(), Failure> {
    let servers = fourlw::servers(&global.server)?;
    let mut answers = Vec::new();
    let mut first_error = None;
    for server in &servers {
        match fourlw::ask(server, word, global.timeout).await {
            Ok(answer) => answers.push((server.clone(), answer)),
            Err(e) => {
                if servers.len() > 1 {
                    crate::exit::report(&e, global.json);
                }
                first_error.get_or_insert(e);
            }
        }
    }
    if global.json {
        let objects: Vec<Value> = answers
            .iter()
            .map(|(server, answer)| match word {
                "mntr" => fourlw::mntr_json(server, answer),
                _ => fourlw::srvr_json(server, answer),
            })
            .collect();
        if !objects.is_empty() {
            print_json(&Value::Array(objects));
        }
    } else {
        for (server, answer) in &answers {
            if servers.len() > 1 {
                println!("--- {server}");
            }
            print_text(answer);
        }
    }
    match first_error {
        Some(e) if answers.is_empty() => Err(e),
        Some(_) => Err(Failure::Other(format!(
            "{word}: some servers did not answer"
        ))),
        None => Ok(()),
    }
}

/// Streams changes under `path` until Ctrl-C. A session that expires is replaced by a
/// new one (the gap is announced), so the stream goes on.
async fn watch(global: &Global, path: &str, recursive: bool) -> Result<(), Failure> {
    let mode = if recursive {
        AddWatchMode::PersistentRecursive
    } else {
        AddWatchMode::Persistent
    };
    let json = global.json;
    let announce = |state: &str| {
        if json {
            print_json(&json!({ "state": state }));
        } else {
            eprintln!("paddock: session {state}");
        }
    };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let client = connect(global).await?;
        let mut events = client.add_watch(path, mode).await?;
        let mut states = client.state_changes();
        eprintln!(
            "paddock: watching {path}{} (Ctrl-C to stop)",
            if recursive {
                " and everything under it"
            } else {
                ""
            }
        );
        loop {
            tokio::select! {
                _ = &mut ctrl_c => {
                    client.close().await;
                    return Ok(());
                }
                event = events.next() => match event {
                    Some(event) => {
                        if json {
                            print_json(&json!({ "event": event.event_type.name(), "path": event.path }));
                        } else {
                            println!("{} {}", event.event_type, event.path);
                        }
                    }
                    None => break, // the session ended; states say how
                },
                state = states.next() => match state {
                    Some(state) => announce(&state.to_string()),
                    None => break,
                },
            }
        }
        match client.state() {
            SessionState::Expired => continue, // start over with a new session
            SessionState::AuthFailed => {
                return Err(Error::AuthFailed {
                    scheme: "(session)".into(),
                }
                .into());
            }
            _ => return Err(Error::Closed.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_ttl_create_says_what_to_enable() {
        let refused = Error::Server {
            code: paddock_client::ErrorCode::Unimplemented,
            path: Some("/ttl".into()),
        };
        let Failure::Other(message) = explain_create_error(refused, true) else {
            panic!("not explained")
        };
        assert!(message.contains("extendedTypesEnabled=true"), "{message}");
        // Other errors, and other creates, stay as they are.
        let exists = Error::Server {
            code: paddock_client::ErrorCode::NodeExists,
            path: Some("/ttl".into()),
        };
        assert!(matches!(explain_create_error(exists, true), Failure::Zk(_)));
        let plain = Error::Server {
            code: paddock_client::ErrorCode::Unimplemented,
            path: None,
        };
        assert!(matches!(explain_create_error(plain, false), Failure::Zk(_)));
    }

    #[test]
    fn config_json_says_standalone() {
        assert_eq!(config_json("", 0)["standalone"], true);
        let ensemble = config_json("server.1=a:1:2;3\nversion=100000000\n", 1);
        assert_eq!(ensemble["standalone"], false);
        assert_eq!(ensemble["servers"]["1"], "a:1:2;3");
        assert_eq!(ensemble["version"], "100000000");
    }
}

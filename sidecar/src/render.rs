//! `--render PATH=FILE`: keeps FILE equal to the config subtree at PATH.
//!
//! The file is rewritten after every change, atomically (written to a temporary file in
//! the same directory, flushed, then renamed over FILE), so a reader always sees one
//! complete document. Only consistent reads are rendered (see `hub`).
//!
//! Format: a node without children renders as its value, byte for byte (a config file
//! kept in one node). A subtree renders as a JSON object mapping each node's path,
//! relative to PATH, to its value (leaves and nodes with data; values that are not
//! UTF-8 in base64; null data, as ZooKeeper clients can write it, as null). While PATH
//! does not exist, or the session is down, the file is left as it was.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::app::App;
use crate::config::{self, Tree};
use crate::hub::{Filter, load_consistent};
use crate::session::Link;
use crate::value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderSpec {
    /// Config path (relative to the config root).
    pub rel: String,
    pub file: PathBuf,
}

impl RenderSpec {
    /// Parses `PATH=FILE`.
    pub fn parse(s: &str) -> Result<RenderSpec, String> {
        let (path, file) = s
            .split_once('=')
            .ok_or_else(|| format!("--render {s:?}: expected PATH=FILE"))?;
        if file.is_empty() {
            return Err(format!("--render {s:?}: FILE is empty"));
        }
        let rel = crate::names::config_path(path)
            .map_err(|e| format!("--render {s:?}: {}", e.message))?;
        Ok(RenderSpec {
            rel,
            file: PathBuf::from(file),
        })
    }
}

/// The file's content for a subtree; `None` if the subtree does not exist.
pub fn content(rel: &str, tree: &Tree) -> Option<Vec<u8>> {
    let root = tree.get(rel)?;
    if tree.len() == 1 {
        return Some(root.bytes().to_vec());
    }
    let prefix = if rel.is_empty() {
        String::new()
    } else {
        format!("{rel}/")
    };
    let mut obj = Map::new();
    for (path, node) in tree {
        if node.bytes().is_empty() && node.stat.num_children > 0 {
            continue;
        }
        let key = if path == rel {
            String::new()
        } else {
            path.strip_prefix(&prefix).unwrap_or(path).to_string()
        };
        let text = node.data.as_deref().map(value::text_or_base64);
        obj.insert(key, text.map_or(Value::Null, Value::String));
    }
    let mut out = serde_json::to_vec_pretty(&Value::Object(obj)).unwrap_or_default();
    out.push(b'\n');
    Some(out)
}

/// Replaces `file` with `data` atomically.
pub fn write_atomic(file: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "render".into());
    let tmp = dir.join(format!(".{name}.paddock-{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, file)?;
        // Make the rename itself durable (best effort: not every filesystem allows it).
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Keeps `spec.file` current until shutdown.
pub async fn run(app: Arc<App>, spec: RenderSpec) {
    let filter = Filter::Subtree(app.layout.config(&spec.rel));
    let mut slots = app.sessions.subscribe();
    let mut shutdown = app.shutdown_signal();
    let mut written: Option<Vec<u8>> = None;
    let mut warned_missing = false;
    loop {
        if app.shutting_down() {
            return;
        }
        slots.borrow_and_update();
        if app.sessions.link() != Link::Connected {
            tokio::select! {
                _ = slots.changed() => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let loaded = {
            let app2 = app.clone();
            let rel = spec.rel.clone();
            load_consistent(&app.hub, &filter, move || {
                let app = app2.clone();
                let rel = rel.clone();
                async move {
                    let client = app.sessions.client()?;
                    config::read_tree(&client, &app.layout, &rel).await
                }
            })
            .await
        };
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(path = %spec.rel, error = %e, "render read failed; retrying");
                tokio::select! {
                    _ = slots.changed() => {}
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        };
        let mut sub = loaded.sub;
        if !loaded.consistent {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        match content(&spec.rel, &loaded.value) {
            Some(data) if written.as_ref() != Some(&data) => {
                let file = spec.file.clone();
                let bytes = data.clone();
                let result = tokio::task::spawn_blocking(move || write_atomic(&file, &bytes))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
                match result {
                    Ok(()) => {
                        tracing::info!(path = %spec.rel, file = %spec.file.display(), index = loaded.index, "rendered");
                        app.metrics.rendered(true);
                        if let Some(first) = sub.take_first_at() {
                            app.metrics.watch_lag(first.elapsed());
                        }
                        written = Some(data);
                        warned_missing = false;
                    }
                    Err(e) => {
                        tracing::warn!(path = %spec.rel, file = %spec.file.display(), error = %e, "cannot write the rendered file; retrying");
                        app.metrics.rendered(false);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            Some(_) => {}
            None => {
                if !warned_missing {
                    warned_missing = true;
                    tracing::warn!(path = %spec.rel, file = %spec.file.display(), "config path does not exist; the file is left as it is");
                }
            }
        }
        tokio::select! {
            () = sub.next_relevant(&filter) => {}
            _ = slots.changed() => {}
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Node;
    use paddock_client::Stat;

    fn node(data: &str, children: i32) -> Node {
        Node {
            data: Some(data.as_bytes().to_vec()),
            stat: Stat {
                num_children: children,
                ..Stat::default()
            },
        }
    }

    #[test]
    fn parses_specs() {
        let s = RenderSpec::parse("app/settings=/etc/app/settings.json").unwrap();
        assert_eq!(s.rel, "app/settings");
        assert_eq!(s.file, PathBuf::from("/etc/app/settings.json"));
        assert!(RenderSpec::parse("nofile").is_err());
        assert!(RenderSpec::parse("a=").is_err());
        assert!(RenderSpec::parse("a/../b=/tmp/x").is_err());
    }

    #[test]
    fn renders_a_leaf_verbatim_and_a_tree_as_json() {
        let mut t = Tree::new();
        assert_eq!(content("app", &t), None);
        t.insert("app".into(), node("{\"a\":1}", 0));
        assert_eq!(content("app", &t).unwrap(), b"{\"a\":1}");
        t.insert("app".into(), node("", 2));
        t.insert("app/db".into(), node("", 1));
        t.insert("app/db/url".into(), node("pg://x", 0));
        t.insert("app/mode".into(), node("fast", 0));
        let v: Value = serde_json::from_slice(&content("app", &t).unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({"db/url": "pg://x", "mode": "fast"}));
        // Null data: null in a tree (a leaf left empty stays ""), nothing as a leaf file.
        t.insert(
            "app/none".into(),
            Node {
                data: None,
                ..node("", 0)
            },
        );
        t.insert("app/blank".into(), node("", 0));
        let v: Value = serde_json::from_slice(&content("app", &t).unwrap()).unwrap();
        assert_eq!(v["none"], Value::Null);
        assert_eq!(v["blank"], "");
        let mut leaf = Tree::new();
        leaf.insert(
            "x".into(),
            Node {
                data: None,
                ..node("", 0)
            },
        );
        assert_eq!(content("x", &leaf).unwrap(), b"");
    }

    #[test]
    fn writes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("out.json");
        write_atomic(&f, b"one").unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }
}

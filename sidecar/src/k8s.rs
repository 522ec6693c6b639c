//! `--leader-label`: keeps the label `paddock.dev/leader=true|false` on the sidecar's own
//! pod equal to whether the candidate campaigning by flag leads, so that a Service can
//! select the leader (`paddock.dev/leader: "true"`).
//!
//! The label follows leadership as this sidecar sees it: `false` from the moment the
//! session is suspended or the candidate resigns, `true` only while leading. It is set
//! to `false` at startup (a restarted container may find its pod still labelled) and
//! before exit. A failed patch is retried with backoff; only the latest wish is applied.
//!
//! The Kubernetes client is built lazily, on the first patch, and only with
//! `--leader-label`. It needs `patch` on pods in its namespace (see the README for the
//! Role). [`PodLabeler`] is the seam: [`KubeLabeler`] talks to the API server,
//! [`RecordingLabeler`] records calls for tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OnceCell, watch};

/// The label key.
pub const LABEL: &str = "paddock.dev/leader";

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// "Set my pod's leader label."
pub trait PodLabeler: Send + Sync {
    fn set_leader(&self, leader: bool) -> BoxFuture<'_, Result<(), String>>;
}

/// Patches the pod through the Kubernetes API (in-cluster config or kubeconfig).
pub struct KubeLabeler {
    pod: String,
    namespace: String,
    client: OnceCell<kube::Client>,
}

/// Where the service account's namespace is mounted in a pod.
const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

impl KubeLabeler {
    /// The pod is `POD_NAME` (else `HOSTNAME`), the namespace `POD_NAMESPACE` (else the
    /// service account's).
    pub fn from_env() -> Result<KubeLabeler, String> {
        let pod = std::env::var("POD_NAME")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
            .ok_or("--leader-label needs the pod's name: set POD_NAME (fieldRef metadata.name)")?;
        let namespace = std::env::var("POD_NAMESPACE")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| {
                std::fs::read_to_string(NAMESPACE_FILE)
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            })
            .ok_or(
                "--leader-label needs the pod's namespace: set POD_NAMESPACE (fieldRef metadata.namespace)",
            )?;
        Ok(KubeLabeler {
            pod,
            namespace,
            client: OnceCell::new(),
        })
    }

    pub fn pod(&self) -> &str {
        &self.pod
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    async fn patch(&self, leader: bool) -> Result<(), String> {
        use k8s_openapi::api::core::v1::Pod;
        use kube::api::{Api, Patch, PatchParams};
        let client = self
            .client
            .get_or_try_init(|| async {
                kube::Client::try_default()
                    .await
                    .map_err(|e| format!("cannot build a Kubernetes client: {e}"))
            })
            .await?
            .clone();
        let pods: Api<Pod> = Api::namespaced(client, &self.namespace);
        let patch = serde_json::json!({
            "metadata": { "labels": { LABEL: if leader { "true" } else { "false" } } }
        });
        pods.patch(&self.pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot patch pod {}/{}: {e}", self.namespace, self.pod))
    }
}

impl PodLabeler for KubeLabeler {
    fn set_leader(&self, leader: bool) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.patch(leader))
    }
}

/// Records every call; can be told to fail the next few.
#[derive(Default)]
pub struct RecordingLabeler {
    calls: Mutex<Vec<bool>>,
    failures: AtomicUsize,
    changed: tokio::sync::Notify,
}

impl RecordingLabeler {
    /// Every value set successfully, in order.
    pub fn calls(&self) -> Vec<bool> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn fail_next(&self, n: usize) {
        self.failures.store(n, Ordering::SeqCst);
    }

    /// Waits until the calls satisfy `cond`.
    pub async fn wait_for(&self, cond: impl Fn(&[bool]) -> bool) {
        loop {
            let notified = self.changed.notified();
            if cond(&self.calls()) {
                return;
            }
            notified.await;
        }
    }
}

impl PodLabeler for RecordingLabeler {
    fn set_leader(&self, leader: bool) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let failing = self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                return Err("injected failure".to_string());
            }
            if let Ok(mut calls) = self.calls.lock() {
                calls.push(leader);
            }
            self.changed.notify_waiters();
            Ok(())
        })
    }
}

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Applies `leading` to the label until shutdown, then sets it to `false` and returns.
pub async fn follow(
    labeler: Arc<dyn PodLabeler>,
    mut leading: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut applied: Option<bool> = None;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let stopping = *shutdown.borrow_and_update();
        let want = *leading.borrow_and_update() && !stopping;
        if applied != Some(want) {
            match labeler.set_leader(want).await {
                Ok(()) => {
                    tracing::info!(label = LABEL, value = want, "pod label set");
                    applied = Some(want);
                    backoff = FIRST_BACKOFF;
                }
                Err(e) => {
                    tracing::warn!(label = LABEL, value = want, error = %e, retry_in = ?backoff, "cannot set the pod label");
                    let pause = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        _ = leading.changed() => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            }
        }
        if stopping {
            return;
        }
        tokio::select! {
            changed = leading.changed() => {
                if changed.is_err() {
                    // Nobody can lead any more: make the label say so, then stop.
                    if applied != Some(false) {
                        let _ = labeler.set_leader(false).await;
                    }
                    return;
                }
            }
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within<F: Future>(f: F) -> tokio::time::Timeout<F> {
        tokio::time::timeout(Duration::from_secs(5), f)
    }

    #[tokio::test]
    async fn label_follows_leadership_and_ends_false() {
        let fake = Arc::new(RecordingLabeler::default());
        let (leading, leading_rx) = watch::channel(false);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(follow(fake.clone(), leading_rx, shutdown_rx));
        // A stale "true" from an earlier container is overwritten at once.
        within(fake.wait_for(|c| c == [false])).await.unwrap();
        leading.send_replace(true);
        within(fake.wait_for(|c| c == [false, true])).await.unwrap();
        leading.send_replace(false);
        within(fake.wait_for(|c| c == [false, true, false]))
            .await
            .unwrap();
        leading.send_replace(true);
        within(fake.wait_for(|c| c.len() == 4)).await.unwrap();
        shutdown.send_replace(true);
        within(task).await.unwrap().unwrap();
        assert_eq!(fake.calls(), vec![false, true, false, true, false]);
    }

    #[tokio::test]
    async fn failed_patches_are_retried_with_the_latest_wish() {
        let fake = Arc::new(RecordingLabeler::default());
        fake.fail_next(2);
        let (leading, leading_rx) = watch::channel(true);
        let (_shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(follow(fake.clone(), leading_rx, shutdown_rx));
        within(fake.wait_for(|c| c == [true])).await.unwrap();
        // Flapping while a patch fails: only the latest value matters.
        fake.fail_next(1);
        leading.send_replace(false);
        leading.send_replace(true);
        leading.send_replace(false);
        within(fake.wait_for(|c| c.last() == Some(&false)))
            .await
            .unwrap();
        assert!(fake.calls().len() <= 3, "{:?}", fake.calls());
        drop(leading);
        within(task).await.unwrap().unwrap();
        assert_eq!(fake.calls().last(), Some(&false));
    }

    #[tokio::test]
    async fn no_label_without_a_pod_name_is_a_clear_error() {
        // from_env reads the environment; only check the message shape when unset.
        if std::env::var("POD_NAME").is_err() && std::env::var("HOSTNAME").is_err() {
            let err = KubeLabeler::from_env().err().unwrap_or_default();
            assert!(err.contains("POD_NAME"), "{err}");
        }
    }
}

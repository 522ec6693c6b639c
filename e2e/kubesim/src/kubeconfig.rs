//! Kubeconfig files for the cluster's identities (client certificates, one context).

use std::path::Path;

use crate::pki::CertFiles;

pub fn write(
    path: &Path,
    server: &str,
    ca: &Path,
    files: &CertFiles,
    user: &str,
) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubesim", "cluster": {
            "server": server,
            "certificate-authority": ca.display().to_string(),
        }}],
        "users": [{"name": user, "user": {
            "client-certificate": files.cert.display().to_string(),
            "client-key": files.key.display().to_string(),
        }}],
        "contexts": [{"name": "kubesim", "context": {"cluster": "kubesim", "user": user}}],
        "current-context": "kubesim",
    });
    let text = serde_yaml::to_string(&config).map_err(std::io::Error::other)?;
    crate::pki::write_private(path, text.as_bytes())
}

/// A kube client for a kubeconfig file that `write` made.
pub async fn client(path: &Path) -> Result<kube::Client, kube::Error> {
    let config = kube::config::Kubeconfig::read_from(path).map_err(kube::Error::InferKubeconfig)?;
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(config, &options)
        .await
        .map_err(kube::Error::InferKubeconfig)?;
    kube::Client::try_from(config)
}

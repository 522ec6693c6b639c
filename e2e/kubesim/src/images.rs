//! Images are local binaries: a map file names, for each image repository, the
//! executable that plays its entrypoint. A line is `repository: /path/to/binary` (YAML).
//! `paddock/server:0.1.0`, `paddock/server@sha256:..` and `paddock/server` all find the
//! `paddock/server` entry; an entry with a tag matches that tag first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    entries: BTreeMap<String, PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageMapError {
    #[error("reading the image map {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the image map {path} is not a YAML map of image to path: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
}

impl ImageMap {
    pub fn load(path: &Path) -> Result<ImageMap, ImageMapError> {
        let text = std::fs::read_to_string(path).map_err(|source| ImageMapError::Read {
            path: path.into(),
            source,
        })?;
        let entries: BTreeMap<String, PathBuf> =
            serde_yaml::from_str(&text).map_err(|source| ImageMapError::Parse {
                path: path.into(),
                source,
            })?;
        Ok(ImageMap { entries })
    }

    pub fn from_entries(entries: impl IntoIterator<Item = (String, PathBuf)>) -> ImageMap {
        ImageMap {
            entries: entries.into_iter().collect(),
        }
    }

    /// The binary for `image`, or the message a kubelet would give for a failed pull.
    pub fn resolve(&self, image: &str) -> Result<PathBuf, String> {
        let without_digest = image.split('@').next().unwrap_or(image);
        let repository = strip_tag(without_digest);
        let found = self
            .entries
            .get(without_digest)
            .or_else(|| self.entries.get(repository));
        match found {
            Some(path) if path.is_file() => Ok(path.clone()),
            Some(path) => Err(format!(
                "failed to pull image \"{image}\": the image map points at {}, which does not exist",
                path.display()
            )),
            None => Err(format!(
                "failed to pull image \"{image}\": repository {repository} is not in the image map (kubesim runs local binaries only)"
            )),
        }
    }
}

/// `host:5000/a/b:tag` → `host:5000/a/b`: a tag is a colon after the last slash.
fn strip_tag(image: &str) -> &str {
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].find(':') {
        Some(colon) => &image[..last_slash + colon],
        None => image,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_digests_find_the_repository() {
        assert_eq!(strip_tag("paddock/server:0.1.0"), "paddock/server");
        assert_eq!(
            strip_tag("registry:5000/paddock/server"),
            "registry:5000/paddock/server"
        );
        assert_eq!(
            strip_tag("registry:5000/paddock/server:v1"),
            "registry:5000/paddock/server"
        );
        let map = ImageMap::from_entries([("sh".to_string(), PathBuf::from("/bin/sh"))]);
        assert_eq!(map.resolve("sh:latest"), Ok(PathBuf::from("/bin/sh")));
        assert_eq!(map.resolve("sh@sha256:abc"), Ok(PathBuf::from("/bin/sh")));
        let err = map.resolve("nginx:1.27").unwrap_err();
        assert!(err.contains("not in the image map"), "{err}");
    }

    #[test]
    fn a_path_that_is_gone_is_a_pull_error() {
        let map = ImageMap::from_entries([("x".to_string(), PathBuf::from("/nonexistent/x"))]);
        assert!(map.resolve("x").unwrap_err().contains("does not exist"));
    }
}

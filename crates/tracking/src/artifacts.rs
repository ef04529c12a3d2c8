use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use kittiwake_blob::{ArtifactPath, BlobError};
use kittiwake_domain::{Error, ErrorKind, Result, ids};

use crate::{PROXY_SCHEME, Tracking, blob_error};

/// A directory entry; `size` is `None` for directories. `path` is relative to the listed root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactEntry {
    pub path: String,
    pub size: Option<u64>,
}

pub struct ArtifactStream {
    pub size: u64,
    pub body: BoxStream<'static, Result<Bytes>>,
}

fn parse(path: &str) -> Result<ArtifactPath> {
    ArtifactPath::parse(path).map_err(blob_error)
}

impl Tracking {
    /// The blob path of a run's artifact root, when its artifacts are served by this server.
    pub async fn run_artifact_root(&self, run_id: &str) -> Result<ArtifactPath> {
        let info = self.get_run_info(run_id).await?;
        let Some(path) = info.artifact_uri.strip_prefix(PROXY_SCHEME) else {
            return Err(Error::invalid(format!(
                "Run {run_id} stores its artifacts at '{}', outside this server",
                info.artifact_uri
            )));
        };
        parse(path)
    }

    /// Checks that a write lands inside the artifact root of a run or logged model that exists, so
    /// the proxy cannot be used to write anywhere else in the store.
    async fn check_write_target(&self, path: &ArtifactPath) -> Result<()> {
        let segments: Vec<&str> = path.as_str().split('/').collect();
        let root_of = |end: usize| format!("{PROXY_SCHEME}{}", segments[..end].join("/"));
        for i in 0..segments.len() {
            let next = |k: usize| segments.get(i + k).copied();
            if ids::is_run_id(segments[i]) && next(1) == Some("artifacts") && segments.len() > i + 2
            {
                match self.store.get_run_info(segments[i]).await {
                    Ok(info) if info.artifact_uri == root_of(i + 2) => return Ok(()),
                    Ok(_) => {}
                    Err(e) if e.kind == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            if segments[i] == "models"
                && next(1).is_some_and(ids::is_logged_model_id)
                && next(2) == Some("artifacts")
                && segments.len() > i + 3
            {
                match self.store.get_logged_model(segments[i + 1]).await {
                    Ok(m) if m.artifact_location == root_of(i + 3) => return Ok(()),
                    Ok(_) => {}
                    Err(e) if e.kind == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Err(Error::invalid(format!(
            "Invalid path '{}': artifacts can only be written below the artifact root of an existing run or logged model",
            path.as_str()
        )))
    }

    pub async fn put_artifact<S, E>(&self, path: &str, body: S) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let path = parse(path)?;
        self.check_write_target(&path).await?;
        self.blob.put_stream(&path, body).await.map_err(blob_error)
    }

    pub async fn get_artifact(&self, path: &str) -> Result<ArtifactStream> {
        let (size, body) = self.blob.get(&parse(path)?).await.map_err(blob_error)?;
        Ok(ArtifactStream {
            size,
            body: body.map(|r| r.map_err(blob_error)).boxed(),
        })
    }

    /// Lists a directory's children with paths relative to `relative_to`.
    pub async fn list_artifacts(&self, dir: &str, relative_to: &str) -> Result<Vec<ArtifactEntry>> {
        let dir = parse(dir)?;
        let base = parse(relative_to)?;
        let entries = match self.blob.list(&dir).await {
            Ok(entries) => entries,
            Err(BlobError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(blob_error(e)),
        };
        Ok(entries
            .into_iter()
            .map(|e| {
                let full = e.path.as_str();
                let relative = if base.is_root() {
                    full
                } else {
                    full.strip_prefix(base.as_str())
                        .map(|s| s.trim_start_matches('/'))
                        .unwrap_or(full)
                };
                ArtifactEntry {
                    path: relative.to_string(),
                    size: e.size,
                }
            })
            .collect())
    }

    pub async fn delete_artifact(&self, path: &str) -> Result<()> {
        let path = parse(path)?;
        self.check_write_target(&path).await?;
        self.blob.delete(&path).await.map_err(blob_error)?;
        Ok(())
    }
}

//! Source snapshots: content-addressed files under `snapshots/blobs/<sha256>` in the blob store and
//! a file list per snapshot in the database. A file uploaded once is never uploaded again.

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use kittiwake_blob::ArtifactPath;
use kittiwake_domain::jobs::{SnapshotFile, check_snapshot, is_sha256};
use kittiwake_domain::{Error, Result};
use sha2::{Digest, Sha256};

use crate::{Hashed, Jobs, storage};

fn blob_path(sha256: &str) -> Result<ArtifactPath> {
    if !is_sha256(sha256) {
        return Err(Error::invalid(format!(
            "Invalid sha256 '{sha256}': expected 64 lower-case hex characters"
        )));
    }
    ArtifactPath::parse(&format!("snapshots/blobs/{sha256}"))
        .map_err(|e| Error::internal(e.to_string()))
}

impl Jobs {
    /// The hashes, of those given, whose content the workspace does not hold yet.
    pub async fn missing_blobs(&self, hashes: &[String]) -> Result<Vec<String>> {
        let mut missing = Vec::new();
        for sha in hashes {
            if !self
                .inner
                .blob
                .is_file(&blob_path(sha)?)
                .await
                .map_err(storage)?
            {
                missing.push(sha.clone());
            }
        }
        Ok(missing)
    }

    /// Stores one file's content under its SHA-256, refusing content that does not match it.
    pub async fn put_blob<S, E>(&self, sha256: &str, body: S) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let target = blob_path(sha256)?;
        let Hashed {
            incoming,
            sha256: actual,
            size,
        } = self.put_hashed("snapshots", body).await?;
        if actual != sha256 {
            let _ = self.inner.blob.delete(&incoming).await;
            return Err(Error::invalid(format!(
                "The uploaded content's sha256 is {actual}, not {sha256}; the file changed while it was uploaded?"
            )));
        }
        self.inner
            .blob
            .rename(&incoming, &target)
            .await
            .map_err(storage)?;
        Ok(size)
    }

    /// Records a snapshot whose every file is already stored; returns its id (the SHA-256 of its
    /// sorted file list), the same for the same files.
    pub async fn commit_snapshot(&self, mut files: Vec<SnapshotFile>) -> Result<String> {
        check_snapshot(&files)?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let hashes: Vec<String> = files.iter().map(|f| f.sha256.clone()).collect();
        let missing = self.missing_blobs(&hashes).await?;
        if let Some(first) = missing.first() {
            let path = files
                .iter()
                .find(|f| &f.sha256 == first)
                .map(|f| f.path.as_str())
                .unwrap_or_default();
            return Err(Error::invalid(format!(
                "{} file(s) of the snapshot were not uploaded, the first '{path}' ({first})",
                missing.len()
            )));
        }
        let manifest = serde_json::to_string(&files)
            .map_err(|e| Error::internal(format!("encoding a snapshot: {e}")))?;
        let id = hex::encode(Sha256::digest(manifest.as_bytes()));
        let total: u64 = files.iter().map(|f| f.size).sum();
        self.inner
            .store
            .put_snapshot(&id, &manifest, files.len() as i64, total as i64)
            .await?;
        Ok(id)
    }

    /// A snapshot's files.
    pub async fn snapshot(&self, snapshot_id: &str) -> Result<Vec<SnapshotFile>> {
        let manifest = self
            .inner
            .store
            .get_snapshot(snapshot_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("Snapshot '{snapshot_id}' does not exist")))?;
        serde_json::from_str(&manifest)
            .map_err(|e| Error::internal(format!("corrupt snapshot manifest: {e}")))
    }

    /// One stored file's content, by hash, with its size.
    pub async fn blob(&self, sha256: &str) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        let (size, stream) = self
            .inner
            .blob
            .get(&blob_path(sha256)?)
            .await
            .map_err(storage)?;
        Ok((size, stream.map(|c| c.map_err(storage)).boxed()))
    }
}

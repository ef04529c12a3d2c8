//! The blob store: artifact bytes, behind the `object_store` crate so that a local folder today and
//! S3 or Azure Blob later are the same code.
//!
//! Every path that reaches a store goes through [`ArtifactPath::parse`], which refuses absolute
//! paths, `..`, empty segments and control characters; on a local folder, writes also refuse to
//! pass through a symbolic link. Nothing here knows about runs or HTTP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid artifact path '{0}': {1}")]
    InvalidPath(String, &'static str),
    #[error("artifact '{0}' does not exist")]
    NotFound(String),
    #[error("artifact storage failed: {0}")]
    Storage(String),
}

impl From<object_store::Error> for BlobError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => Self::NotFound(path),
            other => Self::Storage(other.to_string()),
        }
    }
}

pub type Result<T, E = BlobError> = std::result::Result<T, E>;

/// A relative, normalised path inside the blob store ("0/abc/artifacts/model/MLmodel").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPath(String);

impl ArtifactPath {
    pub fn parse(raw: &str) -> Result<Self> {
        let invalid = |why| BlobError::InvalidPath(raw.to_string(), why);
        let trimmed = raw.trim_end_matches('/');
        if trimmed.is_empty() {
            return Ok(Self(String::new()));
        }
        if raw.starts_with('/') || raw.starts_with('\\') {
            return Err(invalid("absolute paths are not allowed"));
        }
        if raw.contains('\\') {
            return Err(invalid("backslashes are not allowed"));
        }
        if raw.chars().any(char::is_control) {
            return Err(invalid("control characters are not allowed"));
        }
        for segment in trimmed.split('/') {
            match segment {
                "" => return Err(invalid("empty path segments are not allowed")),
                "." | ".." => return Err(invalid("'.' and '..' segments are not allowed")),
                _ => {}
            }
        }
        Ok(Self(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn join(&self, child: &ArtifactPath) -> ArtifactPath {
        match (self.is_root(), child.is_root()) {
            (true, _) => child.clone(),
            (_, true) => self.clone(),
            _ => ArtifactPath(format!("{}/{}", self.0, child.0)),
        }
    }

    fn store_path(&self) -> StorePath {
        StorePath::from(self.0.as_str())
    }
}

/// One entry of a directory listing; `size` is `None` for directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: ArtifactPath,
    pub size: Option<u64>,
}

/// Parts of a multipart upload are this big; smaller bodies go up in one request.
const PART_SIZE: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    local_root: Option<PathBuf>,
}

impl BlobStore {
    /// A blob store in a local folder, created if missing.
    pub fn local(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root)
            .map_err(|e| BlobError::Storage(format!("{}: {e}", root.display())))?;
        let root = root
            .canonicalize()
            .map_err(|e| BlobError::Storage(format!("{}: {e}", root.display())))?;
        let fs = LocalFileSystem::new_with_prefix(&root)?.with_automatic_cleanup(true);
        Ok(Self {
            inner: Arc::new(fs),
            local_root: Some(root),
        })
    }

    /// On a local folder, refuses a path any existing part of which is a symbolic link, so a link
    /// planted inside the store cannot carry a write outside it.
    fn check_no_symlinks(&self, path: &ArtifactPath) -> Result<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let mut current = root.clone();
        for segment in path.as_str().split('/') {
            current.push(segment);
            match std::fs::symlink_metadata(&current) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(BlobError::InvalidPath(
                        path.as_str().to_string(),
                        "the path passes through a symbolic link",
                    ));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Writes a file from a stream of chunks, returning its size. Large bodies go up in parts, so
    /// memory use stays flat whatever the file's size.
    pub async fn put_stream<S, E>(&self, path: &ArtifactPath, mut body: S) -> Result<u64>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        if path.is_root() {
            return Err(BlobError::InvalidPath(String::new(), "a file needs a name"));
        }
        self.check_no_symlinks(path)?;
        let mut first = Vec::new();
        let mut total = 0u64;
        while first.len() < PART_SIZE {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(|e| {
                        BlobError::Storage(format!("reading the upload failed: {e}"))
                    })?;
                    total += chunk.len() as u64;
                    first.extend_from_slice(&chunk);
                }
                None => {
                    self.inner
                        .put(&path.store_path(), PutPayload::from(first))
                        .await?;
                    return Ok(total);
                }
            }
        }
        let upload = self.inner.put_multipart(&path.store_path()).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        writer.write(&first);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    writer.abort().await?;
                    return Err(BlobError::Storage(format!(
                        "reading the upload failed: {e}"
                    )));
                }
            };
            total += chunk.len() as u64;
            writer.wait_for_capacity(4).await?;
            writer.write(&chunk);
        }
        writer.finish().await?;
        Ok(total)
    }

    pub async fn put(&self, path: &ArtifactPath, bytes: Bytes) -> Result<u64> {
        let len = bytes.len() as u64;
        self.put_stream(path, futures::stream::iter([Ok::<_, BlobError>(bytes)]))
            .await?;
        Ok(len)
    }

    /// Moves a file, replacing whatever is at `to`.
    pub async fn rename(&self, from: &ArtifactPath, to: &ArtifactPath) -> Result<()> {
        self.check_no_symlinks(to)?;
        self.inner
            .rename(&from.store_path(), &to.store_path())
            .await?;
        Ok(())
    }

    /// Reads a file as a stream, with its size.
    pub async fn get(
        &self,
        path: &ArtifactPath,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        if path.is_root() {
            return Err(BlobError::NotFound(String::new()));
        }
        let got = self.inner.get(&path.store_path()).await?;
        let size = got.meta.size;
        Ok((size, got.into_stream().map_err(BlobError::from).boxed()))
    }

    /// Lists the direct children of a directory: files with their size, then subdirectories.
    pub async fn list(&self, dir: &ArtifactPath) -> Result<Vec<Entry>> {
        let prefix = (!dir.is_root()).then(|| dir.store_path());
        let listing = self.inner.list_with_delimiter(prefix.as_ref()).await?;
        let mut entries: Vec<Entry> = listing
            .objects
            .into_iter()
            .map(|o| Entry {
                path: ArtifactPath(o.location.to_string()),
                size: Some(o.size),
            })
            .chain(listing.common_prefixes.into_iter().map(|p| Entry {
                path: ArtifactPath(p.to_string()),
                size: None,
            }))
            .collect();
        entries.sort_by(|a, b| a.path.0.cmp(&b.path.0));
        Ok(entries)
    }

    /// Whether a file exists at exactly this path.
    pub async fn is_file(&self, path: &ArtifactPath) -> Result<bool> {
        if path.is_root() {
            return Ok(false);
        }
        match self.inner.head(&path.store_path()).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a file, or everything below a directory. Returns how many files went.
    pub async fn delete(&self, path: &ArtifactPath) -> Result<usize> {
        if self.is_file(path).await? {
            self.inner.delete(&path.store_path()).await?;
            return Ok(1);
        }
        let prefix = (!path.is_root()).then(|| path.store_path());
        let files: Vec<StorePath> = self
            .inner
            .list(prefix.as_ref())
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        for f in &files {
            self.inner.delete(f).await?;
        }
        Ok(files.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_escape() {
        for bad in [
            "/etc/passwd",
            "a/../b",
            "..",
            "a//b",
            "./a",
            "a\\b",
            "a/\u{0}b",
        ] {
            assert!(
                ArtifactPath::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert_eq!(ArtifactPath::parse("a/b/").unwrap().as_str(), "a/b");
        assert!(ArtifactPath::parse("").unwrap().is_root());
        let root = ArtifactPath::parse("0/abc").unwrap();
        assert_eq!(
            root.join(&ArtifactPath::parse("x/y").unwrap()).as_str(),
            "0/abc/x/y"
        );
        assert_eq!(root.join(&ArtifactPath::parse("").unwrap()), root);
    }

    #[tokio::test]
    async fn put_list_get_delete_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(dir.path()).unwrap();
        let p = |s: &str| ArtifactPath::parse(s).unwrap();
        store
            .put(&p("r/a.txt"), Bytes::from_static(b"hello"))
            .await
            .unwrap();
        store
            .put(&p("r/sub/b.txt"), Bytes::from_static(b"x"))
            .await
            .unwrap();
        let big = vec![7u8; PART_SIZE * 2 + 10];
        let chunks: Vec<Result<Bytes, BlobError>> = big
            .chunks(100_000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        assert_eq!(
            store
                .put_stream(&p("r/big.bin"), futures::stream::iter(chunks))
                .await
                .unwrap(),
            big.len() as u64
        );
        let listing = store.list(&p("r")).await.unwrap();
        let names: Vec<_> = listing.iter().map(|e| (e.path.as_str(), e.size)).collect();
        assert_eq!(
            names,
            vec![
                ("r/a.txt", Some(5)),
                ("r/big.bin", Some(big.len() as u64)),
                ("r/sub", None)
            ]
        );
        let (size, stream) = store.get(&p("r/big.bin")).await.unwrap();
        let back: Vec<Bytes> = stream.try_collect().await.unwrap();
        assert_eq!(size as usize, big.len());
        assert_eq!(back.concat(), big);
        assert!(matches!(
            store.get(&p("r/nope")).await,
            Err(BlobError::NotFound(_))
        ));

        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("r/link")).unwrap();
        assert!(matches!(
            store
                .put(&p("r/link/evil.txt"), Bytes::from_static(b"x"))
                .await,
            Err(BlobError::InvalidPath(..))
        ));
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);

        assert_eq!(store.delete(&p("r/sub")).await.unwrap(), 1);
        assert_eq!(store.delete(&p("r/a.txt")).await.unwrap(), 1);
        assert!(!store.is_file(&p("r/a.txt")).await.unwrap());
    }
}

//! The blob store: bytes behind the `object_store` crate, so that a local folder, an S3-compatible
//! bucket and an Azure Blob container are the same code. The workspace's artifacts live in one;
//! each registered datastore is another.
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

/// Where an S3-compatible bucket is and how to sign requests to it.
#[derive(Debug, Clone, Default)]
pub struct S3Location {
    pub bucket: String,
    /// For S3-compatible servers other than AWS, e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

/// Where an Azure Blob container is and the key or SAS token that opens it.
#[derive(Debug, Clone, Default)]
pub struct AzureLocation {
    pub account: String,
    pub container: String,
    pub account_key: Option<String>,
    pub sas_token: Option<String>,
    /// For emulators such as Azurite, e.g. `http://127.0.0.1:10000/devstoreaccount1`.
    pub endpoint: Option<String>,
}

/// A stored file with what identifies its content without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub path: String,
    pub size: u64,
    pub e_tag: Option<String>,
    pub last_modified_ms: i64,
}

/// One entry of a directory listing; `size` is `None` for directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: ArtifactPath,
    pub size: Option<u64>,
}

/// Parts of a multipart upload are this big; smaller bodies go up in one request.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Remote stores retry a failing request a few times, for seconds rather than minutes, so that an
/// unreachable endpoint is reported while someone is waiting for the answer.
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(10),
        ..Default::default()
    }
}

fn client_options() -> object_store::ClientOptions {
    object_store::ClientOptions::new().with_connect_timeout(std::time::Duration::from_secs(5))
}

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

    /// A blob store on a folder that must already exist (a registered local datastore).
    pub fn local_existing(root: &Path) -> Result<Self> {
        if !root.is_dir() {
            return Err(BlobError::Storage(format!(
                "{} is not an existing folder",
                root.display()
            )));
        }
        Self::local(root)
    }

    /// The folder a local blob store keeps its files in; `None` for object storage.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// A blob store on an S3-compatible bucket.
    pub fn s3(location: &S3Location) -> Result<Self> {
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_retry(retry())
            .with_client_options(client_options())
            .with_bucket_name(&location.bucket)
            .with_region(location.region.as_deref().unwrap_or("us-east-1"));
        if let Some(endpoint) = &location.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(key) = &location.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &location.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = &location.session_token {
            builder = builder.with_token(token);
        }
        Ok(Self {
            inner: Arc::new(builder.build()?),
            local_root: None,
        })
    }

    /// A blob store on an Azure Blob container.
    pub fn azure(location: &AzureLocation) -> Result<Self> {
        let mut builder = object_store::azure::MicrosoftAzureBuilder::new()
            .with_retry(retry())
            .with_client_options(client_options())
            .with_account(&location.account)
            .with_container_name(&location.container);
        if let Some(key) = &location.account_key {
            builder = builder.with_access_key(key);
        }
        if let Some(sas) = &location.sas_token {
            let pairs: Vec<(String, String)> = sas
                .trim_start_matches('?')
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            builder = builder.with_sas_authorization(pairs);
        }
        if let Some(endpoint) = &location.endpoint {
            builder = builder
                .with_endpoint(endpoint.clone())
                .with_allow_http(endpoint.starts_with("http://"));
        }
        Ok(Self {
            inner: Arc::new(builder.build()?),
            local_root: None,
        })
    }

    /// Every file below `prefix` (recursively), in path order.
    pub async fn list_all(&self, prefix: &ArtifactPath) -> Result<Vec<ObjectInfo>> {
        let prefix = (!prefix.is_root()).then(|| prefix.store_path());
        let mut found: Vec<ObjectInfo> = self
            .inner
            .list(prefix.as_ref())
            .map_ok(|meta| ObjectInfo {
                path: meta.location.to_string(),
                size: meta.size,
                e_tag: meta.e_tag,
                last_modified_ms: meta.last_modified.timestamp_millis(),
            })
            .try_collect()
            .await?;
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }

    /// Checks that the store can be reached and read with the credentials it was given.
    pub async fn check_access(&self) -> Result<()> {
        let mut listing = self.inner.list(None);
        match listing.next().await {
            Some(Err(e)) => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// On a local folder, refuses a path any existing part of which is a symbolic link, so a link
    /// planted inside the store cannot carry a write outside it.
    fn check_no_symlinks(&self, path: &ArtifactPath) -> Result<()> {
        match &self.local_root {
            Some(root) if passes_through_symlink(root, path.as_str()) => {
                Err(BlobError::InvalidPath(
                    path.as_str().to_string(),
                    "the path passes through a symbolic link",
                ))
            }
            _ => Ok(()),
        }
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

    /// Reads a file as a stream of large pieces fetched one range at a time, for callers that
    /// read everything in order (a local file's own stream comes in small pieces, each a thread
    /// hand-off).
    pub async fn get_in_pieces(
        &self,
        path: &ArtifactPath,
        piece: u64,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        if path.is_root() {
            return Err(BlobError::NotFound(String::new()));
        }
        let location = path.store_path();
        let size = self.inner.head(&location).await?.size;
        let store = self.inner.clone();
        let ranges =
            (0..size.div_ceil(piece.max(1))).map(move |i| i * piece..((i + 1) * piece).min(size));
        let stream = futures::stream::iter(ranges)
            .then(move |range| {
                let (store, location) = (store.clone(), location.clone());
                async move {
                    store
                        .get_range(&location, range)
                        .await
                        .map_err(BlobError::from)
                }
            })
            .boxed();
        Ok((size, stream))
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

/// Whether any existing part of `relative` (`/`-separated) below `root` is a symbolic link, which
/// could carry a write under `root` somewhere else. Whoever writes into a local store's folder
/// checks this first: the server's blob store, and a client copying into the folder directly.
pub fn passes_through_symlink(root: &Path, relative: &str) -> bool {
    let mut current = root.to_path_buf();
    for segment in relative.split('/') {
        current.push(segment);
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => return true,
            Ok(_) => {}
            // Nothing exists below a missing part.
            Err(_) => return false,
        }
    }
    false
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

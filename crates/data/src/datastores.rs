//! The datastore registry and file access through it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use kittiwake_blob::{ArtifactPath, AzureLocation, BlobError, BlobStore, ObjectInfo, S3Location};
use kittiwake_domain::{Error, Result};
use kittiwake_store::{Store, StoredDatastore};
use serde_json::{Value, json};

use crate::secrets::Secrets;

/// The datastore every workspace has, inside its own blob store.
pub const DEFAULT_DATASTORE: &str = "workspaceblobstore";
/// Where the default datastore's files live in the workspace's blob store.
const DEFAULT_PREFIX: &str = "datastores/workspaceblobstore";
/// How long registration waits for a datastore to answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// A datastore's folder on the server's disk, named so that a client can tell whether it sees
/// the same folder: the path alone could name another folder on another machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFolder {
    pub path: std::path::PathBuf,
    pub device: u64,
    pub inode: u64,
}

/// What a datastore is, with its credentials (which never leave this crate unsealed).
#[derive(Clone)]
pub enum DatastoreKind {
    Workspace,
    LocalFolder {
        path: String,
    },
    S3 {
        bucket: String,
        endpoint: Option<String>,
        region: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
    },
    AzureBlob {
        account_name: String,
        container_name: String,
        endpoint: Option<String>,
        account_key: Option<String>,
        sas_token: Option<String>,
    },
}

impl DatastoreKind {
    fn kind(&self) -> &'static str {
        match self {
            Self::Workspace => "WorkspaceBlob",
            Self::LocalFolder { .. } => "LocalFolder",
            Self::S3 { .. } => "S3",
            Self::AzureBlob { .. } => "AzureBlob",
        }
    }

    /// `(settings, secrets)`: what may be shown, and what must be sealed.
    fn split(&self) -> (Value, Option<Value>) {
        match self {
            Self::Workspace => (json!({}), None),
            Self::LocalFolder { path } => (json!({"path": path}), None),
            Self::S3 {
                bucket,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
            } => (
                json!({"bucket": bucket, "endpoint": endpoint, "region": region}),
                (access_key_id.is_some() || secret_access_key.is_some()).then(|| {
                    json!({"access_key_id": access_key_id, "secret_access_key": secret_access_key})
                }),
            ),
            Self::AzureBlob {
                account_name,
                container_name,
                endpoint,
                account_key,
                sas_token,
            } => (
                json!({"account_name": account_name, "container_name": container_name, "endpoint": endpoint}),
                (account_key.is_some() || sas_token.is_some())
                    .then(|| json!({"account_key": account_key, "sas_token": sas_token})),
            ),
        }
    }

    fn join(kind: &str, settings: &Value, secrets: &Value) -> Result<Self> {
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let required = |k: &str| {
            text(settings, k)
                .ok_or_else(|| Error::internal(format!("datastore settings lack '{k}'")))
        };
        Ok(match kind {
            "WorkspaceBlob" => Self::Workspace,
            "LocalFolder" => Self::LocalFolder {
                path: required("path")?,
            },
            "S3" => Self::S3 {
                bucket: required("bucket")?,
                endpoint: text(settings, "endpoint"),
                region: text(settings, "region"),
                access_key_id: text(secrets, "access_key_id"),
                secret_access_key: text(secrets, "secret_access_key"),
            },
            "AzureBlob" => Self::AzureBlob {
                account_name: required("account_name")?,
                container_name: required("container_name")?,
                endpoint: text(settings, "endpoint"),
                account_key: text(secrets, "account_key"),
                sas_token: text(secrets, "sas_token"),
            },
            other => return Err(Error::internal(format!("unknown datastore kind '{other}'"))),
        })
    }
}

/// A datastore as the API shows it: never its credentials, only whether it has some.
#[derive(Debug, Clone, PartialEq)]
pub struct DatastoreView {
    pub name: String,
    pub datastore_type: String,
    pub settings: Value,
    pub has_credentials: bool,
    pub created_at: i64,
}

#[derive(Clone)]
pub struct Data {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    workspace_blob: BlobStore,
    secrets: Secrets,
    /// Opened datastores by name, so a request does not rebuild a client.
    opened: RwLock<HashMap<String, BlobStore>>,
}

fn storage(name: &str) -> impl Fn(BlobError) -> Error + '_ {
    move |e| match e {
        BlobError::InvalidPath(path, why) => Error::invalid(format!(
            "Invalid path '{path}' in datastore '{name}': {why}"
        )),
        BlobError::NotFound(path) => {
            Error::not_found(format!("'{path}' does not exist in datastore '{name}'"))
        }
        BlobError::Storage(msg) => Error::invalid(format!("Datastore '{name}' failed: {msg}")),
    }
}

fn view(d: &StoredDatastore) -> Result<DatastoreView> {
    Ok(DatastoreView {
        name: d.name.clone(),
        datastore_type: d.kind.clone(),
        settings: serde_json::from_str(&d.settings)
            .map_err(|e| Error::internal(format!("corrupt datastore settings: {e}")))?,
        has_credentials: d.sealed_secrets.is_some(),
        created_at: d.created_at,
    })
}

impl Data {
    pub fn new(store: Store, workspace_blob: BlobStore, secrets: Secrets) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                workspace_blob,
                secrets,
                opened: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// Registers the default datastore if this workspace does not have it yet.
    pub async fn ensure_default(&self) -> Result<()> {
        if self
            .inner
            .store
            .get_datastore(DEFAULT_DATASTORE)
            .await?
            .is_none()
        {
            self.register(DEFAULT_DATASTORE, DatastoreKind::Workspace, false)
                .await?;
        }
        Ok(())
    }

    fn build(&self, kind: &DatastoreKind) -> std::result::Result<BlobStore, BlobError> {
        match kind {
            DatastoreKind::Workspace => Ok(self.inner.workspace_blob.clone()),
            DatastoreKind::LocalFolder { path } => {
                BlobStore::local_existing(std::path::Path::new(path))
            }
            DatastoreKind::S3 {
                bucket,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
            } => BlobStore::s3(&S3Location {
                bucket: bucket.clone(),
                endpoint: endpoint.clone(),
                region: region.clone(),
                access_key_id: access_key_id.clone(),
                secret_access_key: secret_access_key.clone(),
                session_token: None,
            }),
            DatastoreKind::AzureBlob {
                account_name,
                container_name,
                endpoint,
                account_key,
                sas_token,
            } => BlobStore::azure(&AzureLocation {
                account: account_name.clone(),
                container: container_name.clone(),
                account_key: account_key.clone(),
                sas_token: sas_token.clone(),
                endpoint: endpoint.clone(),
            }),
        }
    }

    /// Registers a datastore after checking that it can be reached and read. A name that is
    /// taken is refused unless `overwrite`.
    pub async fn register(
        &self,
        name: &str,
        kind: DatastoreKind,
        overwrite: bool,
    ) -> Result<DatastoreView> {
        kittiwake_domain::validation::check_key("datastore name", name)?;
        if name == DEFAULT_DATASTORE && !matches!(kind, DatastoreKind::Workspace) {
            return Err(Error::invalid(format!(
                "'{DEFAULT_DATASTORE}' is the workspace's own datastore; choose another name"
            )));
        }
        if let DatastoreKind::LocalFolder { path } = &kind
            && !std::path::Path::new(path).is_absolute()
        {
            return Err(Error::invalid(format!(
                "A local datastore needs an absolute folder path on the server's machine, got '{path}'"
            )));
        }
        let blob = self.build(&kind).map_err(storage(name))?;
        if !matches!(kind, DatastoreKind::Workspace) {
            match tokio::time::timeout(CHECK_TIMEOUT, blob.check_access()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    return Err(Error::invalid(format!(
                        "Datastore '{name}' cannot be read with the settings and credentials given: {}",
                        storage(name)(e).message
                    )));
                }
                Err(_) => {
                    return Err(Error::invalid(format!(
                        "Datastore '{name}' did not answer within {} s; check its endpoint",
                        CHECK_TIMEOUT.as_secs()
                    )));
                }
            }
        }
        let (settings, secrets) = kind.split();
        let sealed = secrets
            .map(|s| self.inner.secrets.seal(s.to_string().as_bytes()))
            .transpose()?;
        let stored = StoredDatastore {
            name: name.to_string(),
            kind: kind.kind().to_string(),
            settings: settings.to_string(),
            sealed_secrets: sealed,
            created_at: 0,
        };
        if !self.inner.store.put_datastore(&stored, overwrite).await? {
            return Err(Error::already_exists(format!(
                "A datastore named '{name}' exists; pass overwrite=True to replace it"
            )));
        }
        if let Ok(mut opened) = self.inner.opened.write() {
            opened.insert(name.to_string(), blob);
        }
        self.datastore(name).await
    }

    async fn stored(&self, name: &str) -> Result<StoredDatastore> {
        self.inner
            .store
            .get_datastore(name)
            .await?
            .ok_or_else(|| Error::not_found(format!("Datastore '{name}' is not registered")))
    }

    pub async fn datastore(&self, name: &str) -> Result<DatastoreView> {
        let stored = self.stored(name).await?;
        view(&stored)
    }

    pub async fn datastores(&self) -> Result<Vec<DatastoreView>> {
        self.inner
            .store
            .list_datastores()
            .await?
            .iter()
            .map(view)
            .collect()
    }

    /// The datastore's blob store and the prefix its files live under.
    async fn open(&self, name: &str) -> Result<(BlobStore, &'static str)> {
        let prefix = if name == DEFAULT_DATASTORE {
            DEFAULT_PREFIX
        } else {
            ""
        };
        if let Some(blob) = self
            .inner
            .opened
            .read()
            .ok()
            .and_then(|o| o.get(name).cloned())
        {
            return Ok((blob, prefix));
        }
        let stored = self.stored(name).await?;
        let secrets = match &stored.sealed_secrets {
            Some(sealed) => serde_json::from_slice(&self.inner.secrets.unseal(sealed)?)
                .map_err(|e| Error::internal(format!("corrupt datastore credentials: {e}")))?,
            None => Value::Null,
        };
        let settings: Value = serde_json::from_str(&stored.settings)
            .map_err(|e| Error::internal(format!("corrupt datastore settings: {e}")))?;
        let kind = DatastoreKind::join(&stored.kind, &settings, &secrets)?;
        let blob = self.build(&kind).map_err(storage(name))?;
        if let Ok(mut opened) = self.inner.opened.write() {
            opened.insert(name.to_string(), blob.clone());
        }
        Ok((blob, prefix))
    }

    fn path(name: &str, prefix: &str, path: &str) -> Result<ArtifactPath> {
        let relative = ArtifactPath::parse(path).map_err(storage(name))?;
        let root = ArtifactPath::parse(prefix).map_err(storage(name))?;
        Ok(root.join(&relative))
    }

    /// Writes a file into a datastore; returns its size, or `None` when the file exists and
    /// `overwrite` is false (it is left as it is, as AzureML does).
    pub async fn upload<S, E>(
        &self,
        name: &str,
        path: &str,
        overwrite: bool,
        body: S,
    ) -> Result<Option<u64>>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let (blob, prefix) = self.open(name).await?;
        let target = Self::path(name, prefix, path)?;
        if target.is_root() {
            return Err(Error::invalid("An uploaded file needs a path"));
        }
        if !overwrite && blob.is_file(&target).await.map_err(storage(name))? {
            return Ok(None);
        }
        blob.put_stream(&target, body)
            .await
            .map(Some)
            .map_err(storage(name))
    }

    /// Reads a file of a datastore, with its size, in pieces of a few megabytes.
    pub async fn download(
        &self,
        name: &str,
        path: &str,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        self.read_in_pieces(name, path, 4 << 20).await
    }

    /// Reads a file of a datastore in pieces of `piece` bytes, with its size. Large pieces
    /// keep a local file from arriving in many small reads, each a thread hand-off.
    pub async fn read_in_pieces(
        &self,
        name: &str,
        path: &str,
        piece: u64,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        let (blob, prefix) = self.open(name).await?;
        let target = Self::path(name, prefix, path)?;
        let owned = name.to_string();
        let (size, stream) = blob
            .get_in_pieces(&target, piece)
            .await
            .map_err(storage(name))?;
        Ok((
            size,
            stream
                .map(move |c| c.map_err(|e| storage(&owned)(e)))
                .boxed(),
        ))
    }

    /// The folder holding a datastore's files when they are on the server's own disk (the
    /// default datastore on a local workspace, a registered local folder). A client that sees the
    /// same folder (same device and inode) copies files itself instead of sending every byte
    /// through the server; what it may touch there is then up to the operating system.
    pub async fn local_folder(&self, name: &str) -> Result<Option<LocalFolder>> {
        use std::os::unix::fs::MetadataExt;
        let (blob, prefix) = self.open(name).await?;
        let Some(root) = blob.local_root() else {
            return Ok(None);
        };
        let path = root.join(prefix);
        let unreadable = |e: std::io::Error| {
            Error::internal(format!("datastore {name}: {}: {e}", path.display()))
        };
        tokio::fs::create_dir_all(&path).await.map_err(unreadable)?;
        let meta = tokio::fs::metadata(&path).await.map_err(unreadable)?;
        Ok(Some(LocalFolder {
            path,
            device: meta.dev(),
            inode: meta.ino(),
        }))
    }

    /// Every file below `prefix` in a datastore, with paths relative to the datastore's root.
    pub async fn list(&self, name: &str, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let (blob, root) = self.open(name).await?;
        let below = Self::path(name, root, prefix)?;
        let strip = if root.is_empty() { 0 } else { root.len() + 1 };
        Ok(blob
            .list_all(&below)
            .await
            .map_err(storage(name))?
            .into_iter()
            .map(|mut o| {
                o.path = o.path[strip.min(o.path.len())..].to_string();
                o
            })
            .collect())
    }

    /// Seals every datastore's credentials with a new key; returns how many were resealed.
    pub async fn rotate_key(&self) -> Result<usize> {
        let all = self.inner.store.list_datastores().await?;
        let store = self.inner.store.clone();
        let mut count = 0;
        self.inner
            .secrets
            .rotate(|reseal| {
                let resealed: Result<Vec<(String, Vec<u8>)>> = all
                    .iter()
                    .filter_map(|d| d.sealed_secrets.as_ref().map(|s| (d.name.clone(), s)))
                    .map(|(name, sealed)| Ok((name, reseal(sealed)?)))
                    .collect();
                count = resealed.as_ref().map_or(0, Vec::len);
                async move { store.reseal_datastores(&resealed?).await }
            })
            .await?;
        Ok(count)
    }
}

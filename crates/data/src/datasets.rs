//! Datasets: named, versioned references to files in datastores, each version with the
//! fingerprint of the files it matched, so that a changed file is noticed instead of read.

use std::collections::{BTreeMap, HashMap};

use globset::GlobBuilder;
use kittiwake_domain::{Error, Result};
use kittiwake_store::{Lineage, StoredDataset};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Data;
use crate::profile::{Profile, Profiler};

/// A path, folder or glob inside a datastore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPathSpec {
    pub datastore: String,
    pub path: String,
}

/// What a dataset is made of: its kind (`File` or `Tabular`), where its files are, and for a
/// tabular dataset how to read them (`{"kind": "delimited" | "parquet" | "json_lines", …}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetDefinition {
    pub dataset_type: String,
    pub paths: Vec<DataPathSpec>,
    #[serde(default)]
    pub format: Value,
}

/// One file of a dataset, as it was when the version was registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub datastore: String,
    pub path: String,
    pub size: u64,
    pub e_tag: Option<String>,
    pub last_modified: i64,
}

/// A registered version of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetVersion {
    pub name: String,
    pub version: i64,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    pub definition: DatasetDefinition,
    pub files: Vec<FileEntry>,
    pub fingerprint: String,
    pub total_bytes: u64,
    pub created_at: i64,
}

fn has_glob(path: &str) -> bool {
    path.contains(['*', '?', '[', '{'])
}

/// The folder part of a glob before its first wildcard, which is what needs listing.
fn literal_prefix(glob: &str) -> &str {
    let first = glob.find(['*', '?', '[', '{']).unwrap_or(glob.len());
    match glob[..first].rfind('/') {
        Some(slash) => &glob[..slash],
        None => "",
    }
}

/// The SHA-256 of the files' canonical listing: equal for the same bytes in the same places.
fn fingerprint(files: &[FileEntry]) -> String {
    let text = serde_json::to_string(files).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn check_definition(d: &DatasetDefinition) -> Result<()> {
    match d.dataset_type.as_str() {
        "File" => {}
        "Tabular" => {
            let kind = d
                .format
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !matches!(kind, "delimited" | "parquet" | "json_lines") {
                return Err(Error::invalid(format!(
                    "A tabular dataset reads delimited, parquet or json_lines files, not '{kind}'"
                )));
            }
        }
        other => {
            return Err(Error::invalid(format!(
                "Unknown dataset type '{other}': expected File or Tabular"
            )));
        }
    }
    if d.paths.is_empty() {
        return Err(Error::invalid("A dataset needs at least one path"));
    }
    Ok(())
}

fn version_from(stored: StoredDataset) -> Result<DatasetVersion> {
    let corrupt = |what: &str, e: serde_json::Error| {
        Error::internal(format!("corrupt dataset {what} of '{}': {e}", stored.name))
    };
    Ok(DatasetVersion {
        definition: serde_json::from_str(&stored.definition)
            .map_err(|e| corrupt("definition", e))?,
        files: serde_json::from_str(&stored.fingerprint).map_err(|e| corrupt("fingerprint", e))?,
        tags: serde_json::from_str(&stored.tags).map_err(|e| corrupt("tags", e))?,
        name: stored.name,
        version: stored.version,
        description: stored.description,
        fingerprint: stored.fingerprint_hash,
        total_bytes: stored.total_bytes.max(0) as u64,
        created_at: stored.created_at,
    })
}

impl Data {
    /// The files a definition matches now, in a stable order. A path that matches nothing is an
    /// error naming it.
    pub async fn resolve_files(&self, d: &DatasetDefinition) -> Result<Vec<FileEntry>> {
        check_definition(d)?;
        let mut files = Vec::new();
        for spec in &d.paths {
            let path = spec.path.trim_start_matches("./").trim_matches('/');
            let matched: Vec<FileEntry> = if has_glob(path) {
                let glob = GlobBuilder::new(path)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| Error::invalid(format!("Invalid glob '{path}': {e}")))?
                    .compile_matcher();
                self.list(&spec.datastore, literal_prefix(path))
                    .await?
                    .into_iter()
                    .filter(|o| glob.is_match(&o.path))
                    .map(|o| entry(&spec.datastore, o))
                    .collect()
            } else {
                // Everything below a folder; failing that, the file itself (a listing's prefix
                // is a folder, so a file is found by listing the folder that holds it).
                let below = self.list(&spec.datastore, path).await?;
                let found = if below.is_empty() {
                    let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
                    self.list(&spec.datastore, parent)
                        .await?
                        .into_iter()
                        .filter(|o| o.path == path)
                        .collect()
                } else {
                    below
                };
                found
                    .into_iter()
                    .map(|o| entry(&spec.datastore, o))
                    .collect()
            };
            if matched.is_empty() {
                return Err(Error::invalid(format!(
                    "'{}' matches no files in datastore '{}'",
                    spec.path, spec.datastore
                )));
            }
            files.extend(matched);
        }
        files.sort_by(|a, b| (&a.datastore, &a.path).cmp(&(&b.datastore, &b.path)));
        files.dedup_by(|a, b| a.datastore == b.datastore && a.path == b.path);
        Ok(files)
    }

    /// Registers a dataset version. A name that exists is refused unless `create_new_version`;
    /// registering the same definition over the same bytes again returns the existing version.
    pub async fn register_dataset(
        &self,
        name: &str,
        definition: DatasetDefinition,
        description: &str,
        tags: BTreeMap<String, String>,
        create_new_version: bool,
    ) -> Result<DatasetVersion> {
        kittiwake_domain::validation::check_key("dataset name", name)?;
        let files = self.resolve_files(&definition).await?;
        let hash = fingerprint(&files);
        if let Some(latest) = self.inner.store.get_dataset(name, None).await? {
            if !create_new_version {
                return Err(Error::already_exists(format!(
                    "A dataset named '{name}' exists (version {}); pass create_new_version=True to add a version",
                    latest.version
                )));
            }
            let same_definition = serde_json::to_string(&definition).ok().as_deref()
                == Some(latest.definition.as_str());
            if same_definition && latest.fingerprint_hash == hash {
                return version_from(latest);
            }
        }
        let stored = StoredDataset {
            name: name.to_string(),
            version: 0,
            dataset_type: definition.dataset_type.clone(),
            description: description.to_string(),
            tags: encode(&tags)?,
            definition: encode(&definition)?,
            fingerprint: encode(&files)?,
            fingerprint_hash: hash,
            file_count: files.len() as i64,
            total_bytes: files.iter().map(|f| f.size as i64).sum(),
            created_at: 0,
        };
        let version = self
            .inner
            .store
            .add_dataset_version(&stored, false)
            .await?
            .ok_or_else(|| Error::internal("a dataset version was not stored"))?;
        self.dataset(name, Some(version)).await
    }

    /// A dataset's version, or its latest.
    pub async fn dataset(&self, name: &str, version: Option<i64>) -> Result<DatasetVersion> {
        match self.inner.store.get_dataset(name, version).await? {
            Some(stored) => version_from(stored),
            None => match version {
                Some(v) if self.inner.store.get_dataset(name, None).await?.is_some() => Err(
                    Error::not_found(format!("Dataset '{name}' has no version {v}")),
                ),
                _ => Err(Error::not_found(format!(
                    "Dataset '{name}' is not registered"
                ))),
            },
        }
    }

    /// The latest version of every dataset.
    pub async fn datasets(&self) -> Result<Vec<DatasetVersion>> {
        self.inner
            .store
            .list_datasets()
            .await?
            .into_iter()
            .map(version_from)
            .collect()
    }

    /// Profiles a tabular dataset's files in one pass, reading them as they stream in.
    pub async fn profile(&self, d: &DatasetDefinition, files: &[FileEntry]) -> Result<Profile> {
        use futures::TryStreamExt;
        use tokio_util::io::{StreamReader, SyncIoBridge};
        if d.dataset_type != "Tabular" {
            return Err(Error::invalid("Only tabular datasets have profiles"));
        }
        let text = |k: &str| d.format.get(k).and_then(Value::as_str).unwrap_or_default();
        let kind = text("kind").to_string();
        let separator = match text("separator").as_bytes() {
            [] => b',',
            [b] => *b,
            _ => {
                return Err(Error::invalid(format!(
                    "The separator '{}' is not one byte",
                    text("separator")
                )));
            }
        };
        let header = d
            .format
            .get("header")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let mut profiler = Profiler::new();
        // Each datastore's folder is looked up once, not once per file.
        let mut folders = std::collections::HashMap::new();
        for f in files {
            let label = format!("{}:{}", f.datastore, f.path);
            if !folders.contains_key(&f.datastore) {
                let folder = self.local_folder(&f.datastore).await?;
                folders.insert(f.datastore.clone(), folder);
            }
            // A file on the server's own disk is read in place; others stream from their store.
            let source = match &folders[&f.datastore] {
                Some(folder) => Source::Local(folder.path.join(&f.path)),
                None => {
                    let (_, stream) = self.read_in_pieces(&f.datastore, &f.path, 8 << 20).await?;
                    Source::Remote(SyncIoBridge::new(StreamReader::new(
                        stream.map_err(|e| std::io::Error::other(e.message)),
                    )))
                }
            };
            let kind = kind.clone();
            profiler = tokio::task::spawn_blocking(move || -> Result<Profiler> {
                profile_file(&mut profiler, source, &kind, separator, header, &label)?;
                Ok(profiler)
            })
            .await
            .map_err(|e| Error::internal(format!("profiling stopped: {e}")))??;
        }
        Ok(profiler.finish())
    }

    /// The runs that read or wrote a dataset version (found with [`Data::dataset`]).
    pub async fn runs_of_dataset(&self, version: &DatasetVersion) -> Result<Vec<Lineage>> {
        self.inner
            .store
            .lineage_of_dataset(&version.name, version.version)
            .await
    }

    /// The dataset versions a run read or wrote.
    pub async fn datasets_of_run(&self, run_id: &str) -> Result<Vec<Lineage>> {
        self.inner.store.lineage_of_run(run_id).await
    }

    /// How the files under a version differ from what it recorded: one line per added, removed
    /// or changed file; empty when the version still means the same bytes.
    pub async fn dataset_changes(&self, version: &DatasetVersion) -> Result<Vec<String>> {
        let now = match self.resolve_files(&version.definition).await {
            Ok(files) => files,
            Err(e) if e.message.contains("matches no files") => Vec::new(),
            Err(e) => return Err(e),
        };
        let key = |f: &FileEntry| format!("{}:{}", f.datastore, f.path);
        let recorded: HashMap<String, &FileEntry> =
            version.files.iter().map(|f| (key(f), f)).collect();
        let current: HashMap<String, &FileEntry> = now.iter().map(|f| (key(f), f)).collect();
        let mut changes = Vec::new();
        for f in &version.files {
            match current.get(&key(f)) {
                None => changes.push(format!("removed {}", key(f))),
                Some(c) if *c != f => changes.push(format!("changed {}", key(f))),
                Some(_) => {}
            }
        }
        for f in &now {
            if !recorded.contains_key(&key(f)) {
                changes.push(format!("added {}", key(f)));
            }
        }
        Ok(changes)
    }
}

fn entry(datastore: &str, o: kittiwake_blob::ObjectInfo) -> FileEntry {
    FileEntry {
        datastore: datastore.to_string(),
        path: o.path,
        size: o.size,
        e_tag: o.e_tag,
        last_modified: o.last_modified_ms,
    }
}

fn encode<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::internal(format!("encoding a dataset: {e}")))
}

/// Where a profiled file's bytes come from.
enum Source<R> {
    Local(std::path::PathBuf),
    Remote(R),
}

/// Adds one file of a tabular dataset, in the format `kind` names, to a profile.
fn profile_file<R: std::io::Read>(
    profiler: &mut Profiler,
    source: Source<R>,
    kind: &str,
    separator: u8,
    header: bool,
    label: &str,
) -> Result<()> {
    let unreadable = |e: std::io::Error| Error::invalid(format!("{label}: cannot be read: {e}"));
    if kind == "parquet" {
        // Parquet's footer comes last and its columns are read by offset: a file from object
        // storage is spooled to an unnamed temporary file first.
        let file = match source {
            Source::Local(path) => std::fs::File::open(path).map_err(unreadable)?,
            Source::Remote(mut reader) => {
                let spool = |e: std::io::Error| {
                    Error::internal(format!("spooling {label} for its profile: {e}"))
                };
                let mut file = tempfile::tempfile().map_err(spool)?;
                std::io::copy(&mut reader, &mut file).map_err(spool)?;
                file
            }
        };
        return profiler.add_parquet(file, label);
    }
    let reader: Box<dyn std::io::Read> = match source {
        Source::Local(path) => Box::new(std::fs::File::open(path).map_err(unreadable)?),
        Source::Remote(reader) => Box::new(reader),
    };
    match kind {
        "json_lines" => profiler.add_json_lines(std::io::BufReader::new(reader), label),
        _ => profiler.add_delimited(reader, separator, header, label),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_are_listed_from_their_literal_folder() {
        assert_eq!(literal_prefix("folder/**/*.csv"), "folder");
        assert_eq!(literal_prefix("a/b/part-*.parquet"), "a/b");
        assert_eq!(literal_prefix("*.csv"), "");
        assert!(has_glob("x/*.csv") && !has_glob("x/y.csv"));
    }
}

//! The CLI for data: `datastore list|upload|download`, `dataset list|show|profile|runs`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::client::{Client, Connection, check};
use crate::commands::{print_json, print_records, s, table};

const V1: &str = "/api/kittiwake/v1";
/// Files in flight at once for uploads and downloads.
const PARALLEL: usize = 8;

#[derive(Subcommand)]
pub enum DatastoreCommand {
    /// List datastores (never their credentials).
    List,
    /// Upload a file or a folder into a datastore.
    Upload {
        datastore: String,
        source: PathBuf,
        /// Folder in the datastore (default: its root).
        #[arg(long, default_value = "")]
        target: String,
        /// Replace files that exist.
        #[arg(long)]
        overwrite: bool,
        /// Send the files through the server even where its folder is on this machine's disk.
        #[arg(long)]
        via_server: bool,
    },
    /// Download the files below a prefix of a datastore.
    Download {
        datastore: String,
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long, default_value = ".")]
        to: PathBuf,
        /// Fetch the files through the server even where its folder is on this machine's disk.
        #[arg(long)]
        via_server: bool,
    },
}

#[derive(Subcommand)]
pub enum DatasetCommand {
    /// List datasets (latest versions).
    List,
    /// Show a dataset version with its files.
    Show {
        name: String,
        #[arg(long, default_value = "latest")]
        version: String,
    },
    /// Profile a tabular dataset version on the server.
    Profile {
        name: String,
        #[arg(long, default_value = "latest")]
        version: String,
    },
    /// The runs that read or wrote a dataset version.
    Runs {
        name: String,
        #[arg(long, default_value = "latest")]
        version: String,
    },
}

fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|p| {
            url::form_urlencoded::byte_serialize(p.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn files_of(source: &Path) -> Result<Vec<(PathBuf, String)>> {
    if source.is_file() {
        let name = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Ok(vec![(source.to_path_buf(), name)]);
    }
    if !source.is_dir() {
        bail!("{} is neither a file nor a folder", source.display());
    }
    let mut out = Vec::new();
    for entry in ignore::WalkBuilder::new(source)
        .standard_filters(false)
        .build()
    {
        let entry = entry?;
        if entry.file_type().is_some_and(|t| t.is_file()) {
            let rel = entry
                .path()
                .strip_prefix(source)?
                .to_string_lossy()
                .replace('\\', "/");
            out.push((entry.path().to_path_buf(), rel));
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// Runs transfers, [`PARALLEL`] at a time since each waits on a disk or the server rather than
/// on us, advancing the bar by the bytes each moved (`None`: skipped).
async fn run_all<F>(
    transfers: impl Iterator<Item = F>,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<Option<u64>>>
where
    F: std::future::Future<Output = Result<Option<u64>>>,
{
    let results: Vec<Result<Option<u64>>> = futures::stream::iter(transfers)
        .buffer_unordered(PARALLEL)
        .inspect(|r| {
            if let Ok(Some(len)) = r {
                bar.inc(*len);
            }
        })
        .collect()
        .await;
    results.into_iter().collect()
}

/// The datastore's folder when the server keeps its files on a disk this machine sees too (the
/// same folder: same device and inode), so that files are copied directly, as `cp` would, instead
/// of every byte crossing HTTP twice. `POST` asks for it in order to write, `GET` to read.
async fn shared_folder(
    client: &Client,
    datastore: &str,
    method: reqwest::Method,
) -> Result<Option<PathBuf>> {
    use std::os::unix::fs::MetadataExt;
    let url = format!("{V1}/datastores/{datastore}/local-folder");
    let reading = method == reqwest::Method::GET;
    let doc = client.send(client.request(method, &url)).await?;
    let folder = &doc["local_folder"];
    let path = PathBuf::from(s(&folder["path"]));
    let same = folder.is_object()
        && std::fs::metadata(&path).is_ok_and(|m| {
            Some(m.dev()) == folder["device"].as_u64() && Some(m.ino()) == folder["inode"].as_u64()
        });
    // The server may run as another user: where this one may not write (or read), the bytes go
    // through the server instead.
    let usable = || {
        if reading {
            std::fs::read_dir(&path).is_ok()
        } else {
            tempfile::tempfile_in(&path).is_ok()
        }
    };
    Ok((same && usable()).then_some(path))
}

async fn put_file(
    client: &Client,
    datastore: &str,
    path: &Path,
    name: &str,
    overwrite: bool,
) -> Result<Option<u64>> {
    let data = tokio::fs::read(path)
        .await
        .with_context(|| format!("reading {}", path.display()))?;
    let len = data.len() as u64;
    let url = format!("{V1}/datastores/{datastore}/files/{}", encode_path(name));
    let resp = client
        .request(reqwest::Method::PUT, &url)
        .query(&[("overwrite", overwrite.to_string())])
        .body(data)
        .send()
        .await
        .context("cannot reach the server")?;
    let answer: Value = check(resp).await?.json().await?;
    Ok((answer["skipped"] != true).then_some(len))
}

async fn get_file(
    client: &Client,
    datastore: &str,
    path: &str,
    target: PathBuf,
) -> Result<Option<u64>> {
    let url = format!("{V1}/datastores/{datastore}/files/{}", encode_path(path));
    let resp = client.request(reqwest::Method::GET, &url).send().await?;
    let data = check(resp).await?.bytes().await?;
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    tokio::fs::write(&target, &data)
        .await
        .with_context(|| format!("writing {}", target.display()))?;
    Ok(Some(data.len() as u64))
}

/// Copies a file into a datastore's folder under `name`, as the server would write it: never
/// through a symbolic link, and whole or not at all (a temporary file renamed into place).
async fn copy_into(
    source: PathBuf,
    folder: PathBuf,
    name: String,
    overwrite: bool,
) -> Result<Option<u64>> {
    tokio::task::spawn_blocking(move || -> Result<Option<u64>> {
        if kittiwake_blob::passes_through_symlink(&folder, &name) {
            bail!("{name}: the path passes through a symbolic link in the datastore");
        }
        let target = folder.join(&name);
        if !overwrite && target.exists() {
            return Ok(None);
        }
        let parent = target.parent().unwrap_or(&folder);
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let staged = tempfile::NamedTempFile::new_in(parent)
            .with_context(|| format!("writing into {}", parent.display()))?;
        let len = std::fs::copy(&source, staged.path())
            .with_context(|| format!("copying {}", source.display()))?;
        let placed = if overwrite {
            staged.persist(&target)
        } else {
            staged.persist_noclobber(&target)
        };
        match placed {
            Ok(_) => Ok(Some(len)),
            // Written by someone else since the check above: kept, as the server would.
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(e.error).with_context(|| format!("writing {}", target.display())),
        }
    })
    .await?
}

async fn copy_out(source: PathBuf, target: PathBuf) -> Result<Option<u64>> {
    tokio::task::spawn_blocking(move || -> Result<Option<u64>> {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let len = std::fs::copy(&source, &target)
            .with_context(|| format!("copying {} to {}", source.display(), target.display()))?;
        Ok(Some(len))
    })
    .await?
}

pub async fn datastore(command: DatastoreCommand, conn: Connection) -> Result<()> {
    let client = conn.connect()?;
    match command {
        DatastoreCommand::List => {
            let doc = client.get(&format!("{V1}/datastores"), &[]).await?;
            let stores = doc["datastores"].as_array().cloned().unwrap_or_default();
            if conn.json {
                return print_json(&json!(stores));
            }
            let rows = stores
                .iter()
                .map(|d| {
                    vec![
                        s(&d["name"]),
                        s(&d["datastore_type"]),
                        d["settings"].to_string(),
                        if d["has_credentials"] == true {
                            "sealed"
                        } else {
                            "-"
                        }
                        .into(),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(&["NAME", "TYPE", "SETTINGS", "CREDENTIALS"], rows)
            );
        }
        DatastoreCommand::Upload {
            datastore,
            source,
            target,
            overwrite,
            via_server,
        } => {
            let files = files_of(&source)?;
            let total = files
                .iter()
                .map(|f| std::fs::metadata(&f.0).map_or(0, |m| m.len()))
                .sum();
            let prefix = target.trim_matches('/').to_string();
            let files: Vec<(PathBuf, String)> = files
                .into_iter()
                .map(|(path, rel)| match prefix.as_str() {
                    "" => (path, rel),
                    p => (path, format!("{p}/{rel}")),
                })
                .collect();
            for (_, name) in &files {
                kittiwake_domain::jobs::check_relative_path(name)
                    .map_err(|e| anyhow::anyhow!(e.message))?;
            }
            let folder = if via_server {
                None
            } else {
                shared_folder(&client, &datastore, reqwest::Method::POST).await?
            };
            let bar = crate::commands::bar(total, "upload");
            let written = match &folder {
                Some(folder) => {
                    let copies = files.iter().map(|(path, name)| {
                        copy_into(path.clone(), folder.clone(), name.clone(), overwrite)
                    });
                    run_all(copies, &bar).await?
                }
                None => {
                    run_all(
                        files.iter().map(|(path, name)| {
                            put_file(&client, &datastore, path, name, overwrite)
                        }),
                        &bar,
                    )
                    .await?
                }
            };
            bar.finish_and_clear();
            let written = written.iter().filter(|w| w.is_some()).count();
            let kept = files.len() - written;
            println!(
                "Uploaded {written} file(s) to {datastore}; kept {kept} that existed (--overwrite replaces them)"
            );
        }
        DatastoreCommand::Download {
            datastore,
            prefix,
            to,
            via_server,
        } => {
            let doc = client
                .get(
                    &format!("{V1}/datastores/{datastore}/list"),
                    &[("prefix", prefix.clone())],
                )
                .await?;
            let files = doc["files"].as_array().cloned().unwrap_or_default();
            let paths = files
                .iter()
                .map(|f| {
                    let path = s(&f["path"]);
                    kittiwake_domain::jobs::check_relative_path(&path)
                        .map_err(|e| anyhow::anyhow!(e.message))?;
                    Ok(path)
                })
                .collect::<Result<Vec<String>>>()?;
            let folder = if via_server {
                None
            } else {
                shared_folder(&client, &datastore, reqwest::Method::GET).await?
            };
            let bar = crate::commands::bar(
                files.iter().map(|f| f["size"].as_u64().unwrap_or(0)).sum(),
                "download",
            );
            match &folder {
                Some(folder) => {
                    let copies = paths
                        .iter()
                        .map(|path| copy_out(folder.join(path), to.join(path)));
                    run_all(copies, &bar).await?
                }
                None => {
                    run_all(
                        paths
                            .iter()
                            .map(|path| get_file(&client, &datastore, path, to.join(path))),
                        &bar,
                    )
                    .await?
                }
            };
            bar.finish_and_clear();
            println!(
                "Downloaded {} file(s) from {datastore} into {}",
                files.len(),
                to.display()
            );
        }
    }
    Ok(())
}

async fn version_doc(client: &Client, name: &str, version: &str) -> Result<Value> {
    client
        .get(
            &format!("{V1}/datasets/{name}"),
            &[("version", version.to_string())],
        )
        .await
}

pub async fn dataset(command: DatasetCommand, conn: Connection) -> Result<()> {
    let client = conn.connect()?;
    match command {
        DatasetCommand::List => {
            let doc = client.get(&format!("{V1}/datasets"), &[]).await?;
            let sets = doc["datasets"].as_array().cloned().unwrap_or_default();
            print_records(
                &sets,
                conn.json,
                &[
                    ("NAME", "name"),
                    ("VERSION", "version"),
                    ("TYPE", "dataset_type"),
                    ("FILES", "file_count"),
                    ("BYTES", "total_bytes"),
                    ("DESCRIPTION", "description"),
                ],
            )?;
        }
        DatasetCommand::Show { name, version } => {
            print_json(&version_doc(&client, &name, &version).await?)?;
        }
        DatasetCommand::Profile { name, version } => {
            let doc = version_doc(&client, &name, &version).await?;
            let profile = client
                .get(
                    &format!(
                        "{V1}/datasets/{name}/versions/{}/profile",
                        s(&doc["version"])
                    ),
                    &[],
                )
                .await?;
            if conn.json {
                return print_json(&profile);
            }
            println!("{} rows", s(&profile["row_count"]));
            let rows = profile["columns"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|c| {
                    [
                        "name",
                        "type",
                        "count",
                        "nulls",
                        "min",
                        "max",
                        "mean",
                        "distinct_estimate",
                    ]
                    .iter()
                    .map(|k| s(&c[*k]))
                    .collect()
                })
                .collect();
            println!(
                "{}",
                table(
                    &[
                        "COLUMN",
                        "TYPE",
                        "VALUES",
                        "NULLS",
                        "MIN",
                        "MAX",
                        "MEAN",
                        "DISTINCT≈"
                    ],
                    rows
                )
            );
        }
        DatasetCommand::Runs { name, version } => {
            let doc = version_doc(&client, &name, &version).await?;
            let runs = client
                .get(
                    &format!("{V1}/datasets/{name}/versions/{}/runs", s(&doc["version"])),
                    &[],
                )
                .await?;
            let runs = runs["runs"].as_array().cloned().unwrap_or_default();
            print_records(
                &runs,
                conn.json,
                &[
                    ("RUN", "run_id"),
                    ("DIRECTION", "direction"),
                    ("AS", "name"),
                ],
            )?;
        }
    }
    Ok(())
}

/// `kittiwake run datasets <run>`: the dataset versions a run read or wrote.
pub async fn run_datasets(client: &Client, run_id: &str, json_out: bool) -> Result<()> {
    let doc = client
        .get(&format!("{V1}/runs/{run_id}/datasets"), &[])
        .await?;
    let edges = doc["datasets"].as_array().cloned().unwrap_or_default();
    print_records(
        &edges,
        json_out,
        &[
            ("DIRECTION", "direction"),
            ("AS", "name"),
            ("DATASET", "dataset_name"),
            ("VERSION", "dataset_version"),
        ],
    )
}

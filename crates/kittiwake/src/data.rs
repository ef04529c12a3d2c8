//! The CLI for data: `datastore list|upload|download`, `dataset list|show|profile|runs`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::client::{Client, Connection, check};
use crate::commands::{print_json, s, table};

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
    },
    /// Download the files below a prefix of a datastore.
    Download {
        datastore: String,
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long, default_value = ".")]
        to: PathBuf,
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
        } => {
            let files = files_of(&source)?;
            let total = files
                .iter()
                .map(|f| std::fs::metadata(&f.0).map_or(0, |m| m.len()))
                .sum();
            let bar = crate::commands::bar(total, "upload");
            let prefix = target.trim_matches('/').to_string();
            // Several files in flight at once: each request waits on the store, not on us.
            let results: Vec<Result<bool>> = futures::stream::iter(&files)
                .map(|(path, rel)| {
                    let (client, bar, datastore) = (&client, &bar, &datastore);
                    let name = if prefix.is_empty() {
                        rel.clone()
                    } else {
                        format!("{prefix}/{rel}")
                    };
                    async move {
                        let data = tokio::fs::read(path)
                            .await
                            .with_context(|| format!("reading {}", path.display()))?;
                        let len = data.len() as u64;
                        let url =
                            format!("{V1}/datastores/{datastore}/files/{}", encode_path(&name));
                        let resp = client
                            .request(reqwest::Method::PUT, &url)
                            .query(&[("overwrite", overwrite.to_string())])
                            .body(data)
                            .send()
                            .await
                            .context("cannot reach the server")?;
                        let answer: Value = check(resp).await?.json().await?;
                        bar.inc(len);
                        Ok(answer["skipped"] != true)
                    }
                })
                .buffer_unordered(PARALLEL)
                .collect()
                .await;
            bar.finish_and_clear();
            let mut written = 0;
            for r in results {
                if r? {
                    written += 1;
                }
            }
            let kept = files.len() - written;
            println!(
                "Uploaded {written} file(s) to {datastore}; kept {kept} that existed (--overwrite replaces them)"
            );
        }
        DatastoreCommand::Download {
            datastore,
            prefix,
            to,
        } => {
            let doc = client
                .get(
                    &format!("{V1}/datastores/{datastore}/list"),
                    &[("prefix", prefix.clone())],
                )
                .await?;
            let files = doc["files"].as_array().cloned().unwrap_or_default();
            let bar = crate::commands::bar(
                files.iter().map(|f| f["size"].as_u64().unwrap_or(0)).sum(),
                "download",
            );
            let results: Vec<Result<()>> = futures::stream::iter(&files)
                .map(|f| {
                    let (client, bar, datastore, to) = (&client, &bar, &datastore, &to);
                    async move {
                        let path = s(&f["path"]);
                        kittiwake_domain::jobs::check_relative_path(&path)
                            .map_err(|e| anyhow::anyhow!(e.message))?;
                        let url =
                            format!("{V1}/datastores/{datastore}/files/{}", encode_path(&path));
                        let resp = client.request(reqwest::Method::GET, &url).send().await?;
                        let data = check(resp).await?.bytes().await?;
                        let target = to.join(&path);
                        if let Some(parent) = target.parent() {
                            tokio::fs::create_dir_all(parent).await?;
                        }
                        tokio::fs::write(&target, &data)
                            .await
                            .with_context(|| format!("writing {}", target.display()))?;
                        bar.inc(data.len() as u64);
                        Ok(())
                    }
                })
                .buffer_unordered(PARALLEL)
                .collect()
                .await;
            results.into_iter().collect::<Result<Vec<()>>>()?;
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
            if conn.json {
                return print_json(&json!(sets));
            }
            let rows = sets
                .iter()
                .map(|d| {
                    vec![
                        s(&d["name"]),
                        s(&d["version"]),
                        s(&d["dataset_type"]),
                        s(&d["file_count"]),
                        s(&d["total_bytes"]),
                        s(&d["description"]),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(
                    &["NAME", "VERSION", "TYPE", "FILES", "BYTES", "DESCRIPTION"],
                    rows
                )
            );
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
            if conn.json {
                return print_json(&json!(runs));
            }
            let rows = runs
                .iter()
                .map(|r| vec![s(&r["run_id"]), s(&r["direction"]), s(&r["name"])])
                .collect();
            println!("{}", table(&["RUN", "DIRECTION", "AS"], rows));
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
    if json_out {
        return print_json(&json!(edges));
    }
    let rows = edges
        .iter()
        .map(|e| {
            vec![
                s(&e["direction"]),
                s(&e["name"]),
                s(&e["dataset_name"]),
                s(&e["dataset_version"]),
            ]
        })
        .collect();
    println!(
        "{}",
        table(&["DIRECTION", "AS", "DATASET", "VERSION"], rows)
    );
    Ok(())
}

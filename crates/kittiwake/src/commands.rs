//! The CLI's commands: readable tables by default, JSON with `--json`, progress bars on transfers.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use kittiwake_auth::{Auth, Role};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::client::{Client, Connection, check};
use crate::server::open_stores;

const MLFLOW: &str = "/api/2.0/mlflow";
const ARTIFACTS: &str = "/api/2.0/mlflow-artifacts/artifacts";

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it (shown only this once).
    Create {
        /// Who or what the token is for.
        #[arg(long)]
        name: String,
        /// reader, contributor or owner.
        #[arg(long, default_value = "contributor")]
        role: String,
    },
}

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Seal every datastore's credentials with a new key (the old one is kept beside it as
    /// secrets.key.previous; delete it once no server started before the rotation is running).
    Rotate,
}

#[derive(Subcommand)]
pub enum ExperimentCommand {
    /// List experiments.
    List,
}

#[derive(Subcommand)]
pub enum RunCommand {
    /// List the runs of an experiment, newest first.
    List {
        /// Experiment name (default: all experiments).
        #[arg(long, short)]
        experiment: Option<String>,
        /// Most runs to show.
        #[arg(long, default_value_t = 50)]
        max: u32,
    },
    /// Show a run: status, params, tags and latest metrics.
    Show { run_id: String },
    /// Show a run's metric histories.
    Metrics {
        run_id: String,
        /// Only this metric.
        #[arg(long)]
        key: Option<String>,
    },
    /// List a run's artifacts.
    Artifacts {
        run_id: String,
        /// Folder inside the run's artifacts.
        #[arg(long, default_value = "")]
        path: String,
    },
    /// Upload a file to a run's artifacts.
    Upload {
        run_id: String,
        file: PathBuf,
        /// Artifact path (default: the file's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Download a run artifact, or a folder of them, into a directory.
    Download {
        run_id: String,
        /// Artifact path.
        path: String,
        /// Where to write.
        #[arg(long, default_value = ".")]
        to: PathBuf,
    },
    /// Print a submitted run's output (environment build and script).
    Logs {
        run_id: String,
        /// Keep printing until the run ends.
        #[arg(long, short)]
        follow: bool,
    },
    /// Cancel a submitted run; its processes are stopped.
    Cancel { run_id: String },
    /// The dataset versions a run read or wrote.
    Datasets { run_id: String },
    /// Download a submitted run's source snapshot into a directory.
    Snapshot {
        run_id: String,
        #[arg(long, default_value = ".")]
        to: PathBuf,
    },
}

pub async fn token(command: TokenCommand, data_dir: &Path) -> Result<()> {
    let TokenCommand::Create { name, role } = command;
    let role: Role = role
        .parse()
        .map_err(|e: kittiwake_domain::Error| anyhow::anyhow!(e.message))?;
    let (store, _) = open_stores(data_dir).await?;
    println!("{}", Auth::new(store).create_token(&name, role).await?);
    Ok(())
}

pub async fn secrets(command: SecretsCommand, data_dir: &Path) -> Result<()> {
    let SecretsCommand::Rotate = command;
    let (store, blob) = open_stores(data_dir).await?;
    let secrets = kittiwake_data::secrets::Secrets::open(data_dir)?;
    let count = kittiwake_data::Data::new(store, blob, secrets)
        .rotate_key()
        .await?;
    println!("Sealed the credentials of {count} datastore(s) with a new key");
    Ok(())
}

/// Prints records as JSON (`--json`) or as a table with one column per `(title, field)`.
pub(crate) fn print_records(records: &[Value], json: bool, columns: &[(&str, &str)]) -> Result<()> {
    if json {
        return print_json(&json!(records));
    }
    let rows = records
        .iter()
        .map(|r| columns.iter().map(|(_, field)| s(&r[*field])).collect())
        .collect();
    let titles: Vec<&str> = columns.iter().map(|(title, _)| *title).collect();
    println!("{}", table(&titles, rows));
    Ok(())
}

pub(crate) fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}

pub(crate) fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn time(ms: &Value) -> String {
    ms.as_i64().map(format_millis).unwrap_or_else(|| "-".into())
}

/// Formats epoch milliseconds as UTC `YYYY-MM-DD HH:MM:SS`.
fn format_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub(crate) fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub async fn experiment(command: ExperimentCommand, conn: Connection) -> Result<()> {
    let ExperimentCommand::List = command;
    let client = conn.connect()?;
    let mut experiments = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"max_results": 1000});
        if let Some(t) = &token {
            body["page_token"] = json!(t);
        }
        let page = client
            .post(&format!("{MLFLOW}/experiments/search"), &body)
            .await?;
        experiments.extend(page["experiments"].as_array().cloned().unwrap_or_default());
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    if conn.json {
        return print_json(&json!(experiments));
    }
    let rows = experiments
        .iter()
        .map(|e| {
            vec![
                s(&e["experiment_id"]),
                s(&e["name"]),
                time(&e["creation_time"]),
                s(&e["artifact_location"]),
            ]
        })
        .collect();
    println!("{}", table(&["ID", "NAME", "CREATED", "ARTIFACTS"], rows));
    Ok(())
}

async fn experiment_ids(client: &Client, name: Option<&str>) -> Result<Vec<String>> {
    if let Some(name) = name {
        let e = client
            .get(
                &format!("{MLFLOW}/experiments/get-by-name"),
                &[("experiment_name", name.to_string())],
            )
            .await?;
        return Ok(vec![s(&e["experiment"]["experiment_id"])]);
    }
    let page = client
        .post(
            &format!("{MLFLOW}/experiments/search"),
            &json!({"max_results": 50000}),
        )
        .await?;
    Ok(page["experiments"]
        .as_array()
        .map(|a| a.iter().map(|e| s(&e["experiment_id"])).collect())
        .unwrap_or_default())
}

async fn get_run(client: &Client, run_id: &str) -> Result<Value> {
    Ok(client
        .get(
            &format!("{MLFLOW}/runs/get"),
            &[("run_id", run_id.to_string())],
        )
        .await?["run"]
        .clone())
}

/// A run's artifact root as a path under the artifact proxy.
fn proxy_root(run: &Value) -> Result<String> {
    let uri = s(&run["info"]["artifact_uri"]);
    match uri.strip_prefix("mlflow-artifacts:/") {
        Some(path) => Ok(path.to_string()),
        None => bail!("this run's artifacts live at {uri}, outside the server"),
    }
}

pub(crate) fn bar(len: u64, label: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(label.to_string());
    pb
}

pub async fn run(command: RunCommand, conn: Connection) -> Result<()> {
    let client = conn.connect()?;
    match command {
        RunCommand::List { experiment, max } => {
            let ids = experiment_ids(&client, experiment.as_deref()).await?;
            let page = client
                .post(
                    &format!("{MLFLOW}/runs/search"),
                    &json!({"experiment_ids": ids, "max_results": max}),
                )
                .await?;
            let runs = page["runs"].as_array().cloned().unwrap_or_default();
            if conn.json {
                return print_json(&json!(runs));
            }
            let rows = runs
                .iter()
                .map(|r| {
                    let i = &r["info"];
                    vec![
                        s(&i["run_id"]),
                        s(&i["run_name"]),
                        s(&i["experiment_id"]),
                        s(&i["status"]),
                        time(&i["start_time"]),
                    ]
                })
                .collect();
            println!(
                "{}",
                table(&["RUN ID", "NAME", "EXPERIMENT", "STATUS", "STARTED"], rows)
            );
        }
        RunCommand::Show { run_id } => {
            let run = get_run(&client, &run_id).await?;
            if conn.json {
                return print_json(&run);
            }
            let i = &run["info"];
            println!("Run {} ({})", s(&i["run_id"]), s(&i["run_name"]));
            println!("  experiment: {}", s(&i["experiment_id"]));
            println!("  status:     {}", s(&i["status"]));
            println!("  started:    {}", time(&i["start_time"]));
            println!("  ended:      {}", time(&i["end_time"]));
            println!("  artifacts:  {}", s(&i["artifact_uri"]));
            for (title, key) in [("Params", "params"), ("Tags", "tags")] {
                let items = run["data"][key].as_array().cloned().unwrap_or_default();
                if !items.is_empty() {
                    println!("{title}:");
                    println!(
                        "{}",
                        table(
                            &["KEY", "VALUE"],
                            items
                                .iter()
                                .map(|p| vec![s(&p["key"]), s(&p["value"])])
                                .collect()
                        )
                    );
                }
            }
            let metrics = run["data"]["metrics"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !metrics.is_empty() {
                println!("Metrics (latest):");
                println!(
                    "{}",
                    table(
                        &["KEY", "VALUE", "STEP"],
                        metrics
                            .iter()
                            .map(|m| vec![s(&m["key"]), s(&m["value"]), s(&m["step"])])
                            .collect()
                    )
                );
            }
        }
        RunCommand::Metrics { run_id, key } => {
            let all = client
                .get(&format!("/api/kittiwake/v1/runs/{run_id}/metrics"), &[])
                .await?;
            let scalars: Vec<Value> = all["scalars"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|m| key.as_deref().is_none_or(|k| m["name"] == k))
                .collect();
            if conn.json {
                return print_json(&json!({"scalars": scalars, "rich": all["rich"]}));
            }
            let mut rows = Vec::new();
            for m in &scalars {
                let empty = Vec::new();
                let steps = m["steps"].as_array().unwrap_or(&empty);
                let values = m["values"].as_array().unwrap_or(&empty);
                for (step, value) in steps.iter().zip(values) {
                    rows.push(vec![s(&m["name"]), s(step), s(value)]);
                }
            }
            println!("{}", table(&["METRIC", "STEP", "VALUE"], rows));
            for r in all["rich"].as_array().cloned().unwrap_or_default() {
                println!("{} ({}): {}", s(&r["name"]), s(&r["kind"]), r["value"]);
            }
        }
        RunCommand::Artifacts { run_id, path } => {
            let listing = client
                .get(
                    &format!("{MLFLOW}/artifacts/list"),
                    &[("run_id", run_id), ("path", path)],
                )
                .await?;
            let files = listing["files"].as_array().cloned().unwrap_or_default();
            if conn.json {
                return print_json(&json!(files));
            }
            let rows = files
                .iter()
                .map(|f| {
                    let size = if f["is_dir"] == true {
                        "<dir>".to_string()
                    } else {
                        s(&f["file_size"])
                    };
                    vec![s(&f["path"]), size]
                })
                .collect();
            println!("{}", table(&["PATH", "SIZE"], rows));
        }
        RunCommand::Upload { run_id, file, name } => {
            let run = get_run(&client, &run_id).await?;
            let name = match name {
                Some(n) => n,
                None => file
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .context("the file has no name; pass --name")?,
            };
            let size = tokio::fs::metadata(&file)
                .await
                .with_context(|| format!("reading {}", file.display()))?
                .len();
            let f = tokio::fs::File::open(&file)
                .await
                .with_context(|| format!("opening {}", file.display()))?;
            let pb = bar(size, &name);
            let progress = pb.clone();
            let stream = tokio_util::io::ReaderStream::new(f).inspect(move |chunk| {
                if let Ok(c) = chunk {
                    progress.inc(c.len() as u64);
                }
            });
            let req = client
                .request(
                    reqwest::Method::PUT,
                    &format!("{ARTIFACTS}/{}/{name}", proxy_root(&run)?),
                )
                .header(reqwest::header::CONTENT_LENGTH, size)
                .body(reqwest::Body::wrap_stream(stream));
            client.send(req).await?;
            pb.finish();
            if conn.json {
                return print_json(&json!({"uploaded": name, "bytes": size}));
            }
            println!("uploaded {name} ({size} bytes)");
        }
        RunCommand::Logs { run_id, follow } => crate::jobs::logs(&client, &run_id, follow).await?,
        RunCommand::Datasets { run_id } => {
            crate::data::run_datasets(&client, &run_id, conn.json).await?
        }
        RunCommand::Cancel { run_id } => crate::jobs::cancel(&client, &run_id, conn.json).await?,
        RunCommand::Snapshot { run_id, to } => crate::jobs::snapshot(&client, &run_id, &to).await?,
        RunCommand::Download { run_id, path, to } => {
            let run = get_run(&client, &run_id).await?;
            let root = proxy_root(&run)?;
            let files = collect_files(&client, &root, path.trim_matches('/')).await?;
            if files.is_empty() {
                bail!("run {run_id} has no artifact at '{path}'");
            }
            let mut written = Vec::new();
            for rel in files {
                let dest = to.join(&rel);
                download(&client, &format!("{ARTIFACTS}/{root}/{rel}"), &dest, &rel).await?;
                written.push(dest.display().to_string());
            }
            if conn.json {
                return print_json(&json!({"files": written}));
            }
            for w in written {
                println!("{w}");
            }
        }
    }
    Ok(())
}

/// The files at or below `path` in a run's artifacts, as paths relative to the run's root.
async fn collect_files(client: &Client, root: &str, path: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut pending = vec![path.to_string()];
    while let Some(dir) = pending.pop() {
        let full = if dir.is_empty() {
            root.to_string()
        } else {
            format!("{root}/{dir}")
        };
        let listing = client.get(ARTIFACTS, &[("path", full)]).await?;
        let entries = listing["files"].as_array().cloned().unwrap_or_default();
        if entries.is_empty() && !dir.is_empty() {
            out.push(dir);
            continue;
        }
        for e in entries {
            let name = s(&e["path"]);
            let rel = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            if e["is_dir"] == true {
                pending.push(rel);
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

async fn download(client: &Client, url_path: &str, dest: &Path, label: &str) -> Result<()> {
    let resp = check(
        client
            .request(reqwest::Method::GET, url_path)
            .send()
            .await
            .context("cannot reach the server")?,
    )
    .await?;
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let pb = bar(resp.content_length().unwrap_or(0), label);
    let mut file = tokio::fs::File::create(dest)
        .await
        .with_context(|| format!("creating {}", dest.display()))?;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("the download was interrupted")?;
        file.write_all(&chunk).await?;
        pb.inc(chunk.len() as u64);
    }
    file.flush().await?;
    pb.finish_and_clear();
    Ok(())
}

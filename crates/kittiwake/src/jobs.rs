//! The CLI for submitted runs: `job submit`, `run logs|cancel|snapshot`, `env list|show|build`,
//! `compute list`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use kittiwake_domain::jobs::{SnapshotFile, check_snapshot};
use kittiwake_environments::build::Builder;
use kittiwake_environments::{Interpreter, from_conda_yaml, from_pip_requirements, resolve};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::client::{Client, Connection, check};
use crate::commands::{print_json, s, table};

const V1: &str = "/api/kittiwake/v1";

#[derive(Subcommand)]
pub enum JobCommand {
    /// Submit a script: upload its folder (what .amlignore/.gitignore allow) and queue a run.
    Submit {
        /// The folder to snapshot; the script's path is relative to it.
        #[arg(long, default_value = ".")]
        source_dir: PathBuf,
        /// The script to run, relative to the source folder.
        #[arg(long)]
        script: String,
        /// The experiment the run belongs to.
        #[arg(long, short, default_value = "Default")]
        experiment: String,
        /// The environment: a conda .yml, a requirements .txt, an azureml_environment.json, or a
        /// registered environment's NAME or NAME:VERSION (default: the target's python3 as is).
        #[arg(long)]
        environment: Option<String>,
        /// The compute target.
        #[arg(long, default_value = "local")]
        compute: String,
        /// Stop the run after this many seconds.
        #[arg(long)]
        max_run_duration: Option<i64>,
        /// GPUs the run needs, each its own.
        #[arg(long, default_value_t = 0)]
        gpus: u32,
        /// Print the run's output until it ends; exit 1 unless it Completed.
        #[arg(long, short)]
        follow: bool,
        /// Arguments for the script (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum EnvCommand {
    /// List registered environments (latest versions).
    List,
    /// Show a registered environment.
    Show {
        name: String,
        #[arg(long)]
        version: Option<String>,
    },
    /// Build an environment into this machine's cache now, printing uv's output, so that runs
    /// on the `local` target find it ready.
    Build {
        /// A registered NAME[:VERSION], or a conda .yml / requirements .txt / environment .json file.
        environment: String,
        /// The cache the local target's job agents use.
        #[arg(long, env = "KITTIWAKE_DATA_DIR", default_value = ".kittiwake")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum ComputeCommand {
    /// List compute targets with their slots and GPUs.
    List,
}

/// An environment definition from a file, or a registered environment by NAME[:VERSION].
async fn environment(client: &Client, spec: &str) -> Result<Value> {
    let path = Path::new(spec);
    if path.is_file() {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "environment".into());
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        return match ext {
            "yml" | "yaml" => Ok(from_conda_yaml(&name, &text)?),
            "txt" => Ok(from_pip_requirements(&name, &text)),
            "json" => serde_json::from_str(&text)
                .with_context(|| format!("{} is not an environment definition", path.display())),
            _ => bail!(
                "{}: expected a conda .yml, a requirements .txt or an environment .json",
                path.display()
            ),
        };
    }
    let (name, version) = match spec.split_once(':') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (spec, None),
    };
    let query: Vec<(&str, String)> = version.map(|v| ("version", v)).into_iter().collect();
    client
        .get(&format!("{V1}/environments/{name}"), &query)
        .await
        .with_context(|| format!("'{spec}' is neither a file nor a registered environment"))
}

fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The files of `root` a snapshot holds: AzureML's rules, `.amlignore` in the root, else
/// `.gitignore`, nothing else.
fn snapshot_files(root: &Path) -> Result<Vec<(SnapshotFile, PathBuf)>> {
    let mut builder = ignore::gitignore::GitignoreBuilder::new(root);
    for name in [".amlignore", ".gitignore"] {
        if root.join(name).is_file() {
            if let Some(e) = builder.add(root.join(name)) {
                bail!("reading {name}: {e}");
            }
            break;
        }
    }
    let rules = builder.build()?;
    let walk = ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .follow_links(false)
        .sort_by_file_path(|a, b| a.cmp(b))
        .filter_entry(move |e| {
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            !rules
                .matched_path_or_any_parents(e.path(), is_dir)
                .is_ignore()
        })
        .build();
    let mut files = Vec::new();
    for entry in walk {
        let entry = entry?;
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)?
            .to_string_lossy()
            .replace('\\', "/");
        let meta = entry.metadata()?;
        use std::os::unix::fs::PermissionsExt;
        files.push((
            SnapshotFile {
                // Filled in once the limits are checked, so an oversized folder is not read.
                sha256: "0".repeat(64),
                path: rel,
                size: meta.len(),
                executable: meta.permissions().mode() & 0o111 != 0,
            },
            entry.path().to_path_buf(),
        ));
    }
    Ok(files)
}

async fn take_snapshot(client: &Client, root: &Path) -> Result<String> {
    let mut files = snapshot_files(root)?;
    let manifest: Vec<SnapshotFile> = files.iter().map(|(f, _)| f.clone()).collect();
    check_snapshot(&manifest).map_err(|e| anyhow::anyhow!(e.message))?;
    for (f, path) in &mut files {
        f.sha256 = sha256_file(path)?;
    }
    let hashes: Vec<&str> = files.iter().map(|(f, _)| f.sha256.as_str()).collect();
    let answer = client
        .post(
            &format!("{V1}/snapshots/missing"),
            &json!({"sha256": hashes}),
        )
        .await?;
    let mut missing: std::collections::HashSet<String> = answer["missing"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for (f, path) in &files {
        if !missing.remove(&f.sha256) {
            continue;
        }
        let data = tokio::fs::read(path).await?;
        check(
            client
                .request(
                    reqwest::Method::PUT,
                    &format!("{V1}/snapshots/blobs/{}", f.sha256),
                )
                .body(data)
                .send()
                .await?,
        )
        .await?;
    }
    let manifest: Vec<SnapshotFile> = files.into_iter().map(|(f, _)| f).collect();
    let answer = client
        .post(&format!("{V1}/snapshots"), &json!({"files": manifest}))
        .await?;
    Ok(s(&answer["snapshot_id"]))
}

pub async fn job(command: JobCommand, conn: Connection) -> Result<()> {
    let client = conn.connect()?;
    let JobCommand::Submit {
        source_dir,
        script,
        experiment,
        environment: env_spec,
        compute,
        max_run_duration,
        gpus,
        follow,
        args,
    } = command;
    if !source_dir.join(&script).is_file() {
        bail!(
            "the script '{script}' is not in {}; give its path relative to --source-dir",
            source_dir.display()
        );
    }
    let env = match &env_spec {
        Some(spec) => environment(&client, spec).await?,
        None => Value::Null,
    };
    let snapshot_id = take_snapshot(&client, &source_dir).await?;
    let mut body = json!({
        "experiment_name": experiment,
        "snapshot_id": snapshot_id,
        "script": script,
        "arguments": args,
        "compute_target": compute,
        "environment": env,
        "gpu_count": gpus,
    });
    if let Some(secs) = max_run_duration {
        body["max_run_duration_seconds"] = json!(secs);
    }
    let answer = client.post(&format!("{V1}/jobs"), &body).await?;
    let run_id = s(&answer["run"]["info"]["run_id"]);
    if conn.json && !follow {
        return print_json(&answer);
    }
    eprintln!(
        "Submitted run {run_id} to '{compute}' ({})",
        s(&answer["job"]["status"])
    );
    if !follow {
        println!("{run_id}");
        return Ok(());
    }
    let status = follow_logs(&client, &run_id, true).await?;
    eprintln!("Run {run_id}: {status}");
    if status != "Completed" {
        let job = client.get(&format!("{V1}/jobs/{run_id}"), &[]).await?;
        bail!("run {run_id} ended {status}: {}", s(&job["failure_reason"]));
    }
    Ok(())
}

/// Prints a run's log from the start; with `follow`, until the run ends. Returns its status.
async fn follow_logs(client: &Client, run_id: &str, follow: bool) -> Result<String> {
    let mut offset = 0i64;
    let mut out = std::io::stdout();
    loop {
        let resp = client
            .request(reqwest::Method::GET, &format!("{V1}/jobs/{run_id}/logs"))
            .query(&[
                ("offset", offset.to_string()),
                ("wait_ms", if follow { "10000" } else { "0" }.to_string()),
            ])
            .send()
            .await
            .context("cannot reach the server")?;
        let resp = check(resp).await?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .unwrap_or_default()
        };
        let status = header("x-kittiwake-job-status");
        let next: i64 = header("x-kittiwake-next-offset").parse().unwrap_or(offset);
        let data = resp.bytes().await?;
        out.write_all(&data)?;
        out.flush()?;
        offset = next;
        let done = matches!(status.as_str(), "Completed" | "Failed" | "Canceled");
        if data.is_empty() && (done || !follow) {
            return Ok(status);
        }
    }
}

pub async fn logs(client: &Client, run_id: &str, follow: bool) -> Result<()> {
    follow_logs(client, run_id, follow).await.map(|_| ())
}

pub async fn cancel(client: &Client, run_id: &str, json_out: bool) -> Result<()> {
    let job = client
        .post(&format!("{V1}/jobs/{run_id}/cancel"), &json!({}))
        .await?;
    if json_out {
        return print_json(&job);
    }
    println!("Run {run_id}: {}", s(&job["status"]));
    Ok(())
}

/// Writes a submitted run's source snapshot into `to`.
pub async fn snapshot(client: &Client, run_id: &str, to: &Path) -> Result<()> {
    let job = client.get(&format!("{V1}/jobs/{run_id}"), &[]).await?;
    let id = s(&job["snapshot_id"]);
    let doc = client.get(&format!("{V1}/snapshots/{id}"), &[]).await?;
    let files: Vec<SnapshotFile> = serde_json::from_value(doc["files"].clone())?;
    for f in &files {
        kittiwake_domain::jobs::check_relative_path(&f.path)
            .map_err(|e| anyhow::anyhow!(e.message))?;
        let resp = client
            .request(
                reqwest::Method::GET,
                &format!("{V1}/snapshots/blobs/{}", f.sha256),
            )
            .send()
            .await?;
        let data = check(resp).await?.bytes().await?;
        let target = to.join(&f.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &data).with_context(|| format!("writing {}", target.display()))?;
    }
    eprintln!(
        "{} files of snapshot {id} written to {}",
        files.len(),
        to.display()
    );
    Ok(())
}

pub async fn env(command: EnvCommand, conn: Connection) -> Result<()> {
    let client = conn.connect()?;
    match command {
        EnvCommand::List => {
            let doc = client.get(&format!("{V1}/environments"), &[]).await?;
            let envs = doc["environments"].as_array().cloned().unwrap_or_default();
            if conn.json {
                return print_json(&json!(envs));
            }
            let rows = envs
                .iter()
                .map(|e| {
                    let kind = match resolve(e).map(|r| r.interpreter) {
                        Ok(Interpreter::UserManaged(p)) => format!("user-managed ({p})"),
                        Ok(Interpreter::Managed(plan)) => format!(
                            "python {} + {} package(s)",
                            plan.python.as_deref().unwrap_or("default"),
                            plan.requirements.len()
                        ),
                        Err(e) => e.message,
                    };
                    vec![s(&e["name"]), s(&e["version"]), kind]
                })
                .collect();
            println!("{}", table(&["NAME", "VERSION", "WHAT"], rows));
        }
        EnvCommand::Show { name, version } => {
            let spec = match version {
                Some(v) => format!("{name}:{v}"),
                None => name,
            };
            print_json(&environment(&client, &spec).await?)?;
        }
        EnvCommand::Build {
            environment: spec,
            data_dir,
        } => {
            let definition = environment(&client, &spec).await?;
            let resolved = resolve(&definition).map_err(|e| anyhow::anyhow!(e.message))?;
            for note in &resolved.notes {
                eprintln!("{note}");
            }
            let Interpreter::Managed(plan) = resolved.interpreter else {
                println!("'{spec}' uses its interpreter as it is; there is nothing to build");
                return Ok(());
            };
            if plan
                .requirements
                .iter()
                .any(|r| kittiwake_jobs::wheel_sha_and_name(r).is_some())
            {
                bail!(
                    "'{spec}' uses private wheels; its first run builds it on the compute target"
                );
            }
            let line = |text: &str| eprintln!("{text}");
            let python = Builder::new(&data_dir.join("cache"))
                .python_for(&plan, &plan.requirements, &line)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            println!("{} ({})", python.display(), &plan.hash()[..12]);
        }
    }
    Ok(())
}

pub async fn compute(command: ComputeCommand, conn: Connection) -> Result<()> {
    let ComputeCommand::List = command;
    let client = conn.connect()?;
    let doc = client.get(&format!("{V1}/computes"), &[]).await?;
    let targets = doc["computes"].as_array().cloned().unwrap_or_default();
    if conn.json {
        return print_json(&json!(targets));
    }
    let rows = targets
        .iter()
        .map(|t| {
            let gpus = t["gpus"]
                .as_array()
                .map(|g| g.iter().map(s).collect::<Vec<_>>().join(","))
                .filter(|g| !g.is_empty())
                .unwrap_or_else(|| "-".into());
            vec![s(&t["name"]), s(&t["kind"]), s(&t["slots"]), gpus]
        })
        .collect();
    println!("{}", table(&["NAME", "KIND", "SLOTS", "GPU IDS"], rows));
    Ok(())
}

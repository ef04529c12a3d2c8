//! The job agent, `kittiwake exec`: runs one submitted job on the machine it is started on.
//!
//! In a fresh working directory it lays out the run's source snapshot, builds (or finds cached)
//! the run's environment, puts the SDK on the import path, sets the runtime variables AzureML and
//! MLflow code reads, runs the script, and sends its output to the server as it comes. It uploads
//! `./logs` while the script runs and `./outputs` at the end, reports each status, beats a
//! heartbeat that also carries cancel requests, and enforces `max_run_duration_seconds`. It is the
//! only code that runs user code; it talks to the server only over HTTP with the run's token, so it
//! runs the same on the server's machine and on a cluster node.

mod client;
mod log;
mod reporter;
mod sdk;
mod workdir;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use kittiwake_domain::jobs::{SnapshotFile, check_relative_path};
use kittiwake_domain::{Job, JobDefinition, JobStatus};
use kittiwake_environments::{Interpreter, build::Builder, resolve};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use reqwest::Method;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::watch;

use crate::client::Server;
use crate::log::LogShipper;
use crate::reporter::Reporter;

/// How long a canceled or timed-out script gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(10);
/// How often `./logs` is uploaded while the script runs.
const LOGS_EVERY: Duration = Duration::from_secs(5);

pub struct ExecArgs {
    pub server: String,
    pub run_id: String,
    pub token: String,
    pub work_dir: PathBuf,
    pub cache_dir: PathBuf,
}

/// Why the script stopped.
enum Ending {
    Exited(i32),
    Canceled,
    TimedOut,
}

/// Runs the job; returns the agent's exit code (0 once the run's outcome is reported).
pub async fn exec(args: ExecArgs) -> i32 {
    let server = Server::new(&args.server, &args.token, &args.run_id);
    let spec = match server.json(Method::GET, &server.job_path(""), None).await {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!(
                "kittiwake exec: cannot read the job of run {}: {e}",
                args.run_id
            );
            return 2;
        }
    };
    let (job, experiment_name, artifact_root, log_bytes, snapshot_files) = match parse_spec(&spec) {
        Ok(parts) => parts,
        Err(e) => {
            eprintln!("kittiwake exec: {e}");
            return 2;
        }
    };
    if let Err(e) = std::fs::create_dir_all(args.work_dir.join("user_logs")) {
        eprintln!(
            "kittiwake exec: cannot create {}: {e}",
            args.work_dir.display()
        );
        return 2;
    }
    let log_file = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(args.work_dir.join("user_logs/std_log.txt"))
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("kittiwake exec: cannot open the run's log file: {e}");
            return 2;
        }
    };
    let log = Arc::new(LogShipper::start(server.clone(), log_file, log_bytes));
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let heartbeat = tokio::spawn(beat(server.clone(), cancel_tx));
    let ctx = Context {
        server: server.clone(),
        job,
        snapshot_files,
        experiment_name,
        artifact_root,
        args,
        log: log.clone(),
    };
    let reporter = Reporter::start(server.clone());
    let (status, reason, exit_code) = ctx.run(cancel_rx, &reporter).await;
    heartbeat.abort();
    let log = Arc::try_unwrap(log).ok();
    let log_error = match log {
        Some(log) => log.close().await,
        None => None,
    };
    if let Some(e) = log_error {
        eprintln!("kittiwake exec: the server did not take the whole log: {e}");
    }
    let _ = ctx
        .upload_file(
            &ctx.args.work_dir.join("user_logs/std_log.txt"),
            "user_logs/std_log.txt",
        )
        .await;
    match reporter.finish(status, reason, exit_code).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("kittiwake exec: cannot report the run's end ({status}): {e}");
            3
        }
    }
}

type Spec = (Job, String, String, i64, Vec<SnapshotFile>);

fn parse_spec(spec: &Value) -> Result<Spec, String> {
    let field = |k: &str| {
        spec.get(k)
            .ok_or_else(|| format!("the job's description lacks '{k}'"))
    };
    let definition: JobDefinition = serde_json::from_value(field("definition")?.clone())
        .map_err(|e| format!("the job's definition is malformed: {e}"))?;
    let gpus: Vec<u32> = serde_json::from_value(field("gpus")?.clone()).unwrap_or_default();
    let status: JobStatus = field("status")?
        .as_str()
        .unwrap_or_default()
        .parse()
        .map_err(|e: kittiwake_domain::Error| e.message)?;
    let text = |k: &str| -> Result<String, String> {
        Ok(field(k)?.as_str().unwrap_or_default().to_string())
    };
    let artifact_uri = text("artifact_uri")?;
    let artifact_root = artifact_uri
        .strip_prefix("mlflow-artifacts:/")
        .ok_or_else(|| {
            format!("the run's artifacts are at {artifact_uri}, which the agent cannot reach")
        })?
        .trim_matches('/')
        .to_string();
    let job = Job {
        run_id: text("run_id")?,
        experiment_id: field("experiment_id")?
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        status,
        definition,
        gpus,
        cancel_requested: false,
        failure_reason: None,
        exit_code: None,
        queued_at: 0,
        started_at: None,
        ended_at: None,
        log_bytes: field("log_bytes")?.as_i64().unwrap_or(0),
        history: Vec::new(),
    };
    let log_bytes = job.log_bytes;
    let files: Vec<SnapshotFile> = serde_json::from_value(field("snapshot_files")?.clone())
        .map_err(|e| format!("the job's snapshot is malformed: {e}"))?;
    Ok((
        job,
        text("experiment_name")?,
        artifact_root,
        log_bytes,
        files,
    ))
}

/// Beats the heartbeat; flips `cancel` when the server asks for the job to be canceled, or when
/// this process is asked to stop (SIGTERM from the compute backend).
async fn beat(server: Server, cancel: watch::Sender<bool>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    loop {
        if let Ok(answer) = server
            .json(Method::POST, &server.job_path("/heartbeat"), None)
            .await
            && answer.get("cancel").and_then(Value::as_bool) == Some(true)
        {
            let _ = cancel.send(true);
        }
        let sigterm = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(kittiwake_jobs::HEARTBEAT) => {}
            _ = sigterm => { let _ = cancel.send(true); }
        }
    }
}

struct Context {
    server: Server,
    job: Job,
    snapshot_files: Vec<SnapshotFile>,
    experiment_name: String,
    artifact_root: String,
    args: ExecArgs,
    log: Arc<LogShipper>,
}

impl Context {
    /// Prepares and runs the script; returns the final status, its reason and the exit code.
    async fn run(
        &self,
        mut cancel: watch::Receiver<bool>,
        reporter: &Reporter,
    ) -> (JobStatus, Option<String>, Option<i64>) {
        let prepared = tokio::select! {
            p = self.prepare() => p,
            _ = cancel.wait_for(|c| *c) => return (JobStatus::Canceled, Some("Canceled while preparing".into()), None),
        };
        let Prepared {
            program,
            env,
            arguments,
        } = match prepared {
            Ok(p) => p,
            Err(why) => {
                self.log.line(&format!("Preparing failed: {why}"));
                return (
                    JobStatus::Failed,
                    Some(format!("Preparing failed: {why}")),
                    None,
                );
            }
        };
        reporter.report(JobStatus::Starting);
        let d = &self.job.definition;
        let mut command = Command::new(&program);
        // SAFETY: between fork and exec the child only calls prctl, which is async-signal-safe.
        // If the agent dies (killed, out of memory), the script dies with it instead of running on
        // unwatched; the agent's own thread that spawns it lives as long as the agent.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let mut child = match command
            .arg(&d.script)
            .args(&arguments)
            .current_dir(&self.args.work_dir)
            .envs(&env)
            .env_remove("KITTIWAKE_RUN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                let why = format!("cannot start {}: {e}", program.display());
                self.log.line(&why);
                return (JobStatus::Failed, Some(why), None);
            }
        };
        let group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        reporter.report(JobStatus::Running);
        let tail = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let pumps = [
            child
                .stdout
                .take()
                .map(|s| tokio::spawn(pump(s, self.log.clone(), None))),
            child
                .stderr
                .take()
                .map(|s| tokio::spawn(pump(s, self.log.clone(), Some(tail.clone())))),
        ];
        let deadline =
            tokio::time::sleep(Duration::from_secs(d.max_run_duration_seconds.max(0) as u64));
        tokio::pin!(deadline);
        let mut uploaded = BTreeMap::new();
        let mut logs_timer = tokio::time::interval(LOGS_EVERY);
        let ending = loop {
            tokio::select! {
                status = child.wait() => {
                    break Ending::Exited(status.ok().and_then(|s| s.code().or_else(|| {
                        use std::os::unix::process::ExitStatusExt;
                        s.signal().map(|sig| 128 + sig)
                    })).unwrap_or(-1));
                }
                _ = cancel.wait_for(|c| *c) => break Ending::Canceled,
                _ = &mut deadline => break Ending::TimedOut,
                _ = logs_timer.tick() => {
                    self.upload_dir("logs", &mut uploaded).await;
                }
            }
        };
        if !matches!(ending, Ending::Exited(_)) {
            if let Some(group) = group {
                let _ = killpg(group, Signal::SIGTERM);
                if tokio::time::timeout(KILL_GRACE, child.wait())
                    .await
                    .is_err()
                {
                    let _ = killpg(group, Signal::SIGKILL);
                }
            }
            let _ = child.wait().await;
        }
        // Everything the script started may still hold its pipes; do not wait on them for long.
        for pump in pumps.into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_secs(2), pump).await;
        }
        reporter.report(JobStatus::Finalizing);
        self.upload_dir("logs", &mut uploaded).await;
        self.upload_dir("outputs", &mut uploaded).await;
        if let Err(e) = self.upload_output_datasets().await {
            self.log.line(&e);
            return (JobStatus::Failed, Some(e), None);
        }
        match ending {
            Ending::Exited(0) => (JobStatus::Completed, None, Some(0)),
            Ending::Exited(code) => {
                let tail = tail.lock().map(|t| t.clone()).unwrap_or_default();
                let last = String::from_utf8_lossy(&tail)
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(|l| format!(": {}", l.trim()))
                    .unwrap_or_default();
                let why = format!("{} exited with code {code}{last}", d.script);
                self.log.line(&why);
                (JobStatus::Failed, Some(why), Some(i64::from(code)))
            }
            Ending::Canceled => {
                self.log
                    .line("Canceled: the script's processes were stopped");
                (
                    JobStatus::Canceled,
                    Some("Canceled by request".into()),
                    None,
                )
            }
            Ending::TimedOut => {
                let why = format!(
                    "The run exceeded max_run_duration_seconds={} and was stopped",
                    d.max_run_duration_seconds
                );
                self.log.line(&why);
                (JobStatus::Failed, Some(why), None)
            }
        }
    }

    /// Lays out the snapshot and the environment; returns the interpreter and the variables.
    async fn prepare(&self) -> Result<Prepared, String> {
        let d = &self.job.definition;
        workdir::materialise(
            &self.server,
            &self.snapshot_files,
            &self.args.work_dir,
            &self.args.cache_dir,
        )
        .await?;
        for dir in ["outputs", "logs"] {
            std::fs::create_dir_all(self.args.work_dir.join(dir))
                .map_err(|e| format!("creating ./{dir}: {e}"))?;
        }
        let io = self.lay_out_inputs_and_outputs().await?;
        let resolved = resolve(&d.environment).map_err(|e| e.message)?;
        for note in &resolved.notes {
            self.log.line(note);
        }
        let program = match &resolved.interpreter {
            Interpreter::UserManaged(program) => PathBuf::from(program),
            Interpreter::Managed(plan) => {
                let install =
                    workdir::local_requirements(&self.server, plan, &self.args.cache_dir).await?;
                let log = self.log.clone();
                let line = move |text: &str| log.write(format!("{text}\n").as_bytes());
                Builder::new(&self.args.cache_dir)
                    .python_for(plan, &install, &line)
                    .await
                    .map_err(|e| e.message)?
            }
        };
        let sdk =
            sdk::install(&self.args.cache_dir).map_err(|e| format!("installing the SDK: {e}"))?;
        let mut env = BTreeMap::new();
        let run_id = &self.job.run_id;
        let url = &self.server.url;
        let token = &self.server.token;
        for (k, v) in [
            ("AZUREML_RUN_ID", run_id.as_str()),
            ("AZUREML_ARM_SUBSCRIPTION", "local"),
            ("AZUREML_ARM_RESOURCEGROUP", "kittiwake"),
            ("AZUREML_ARM_WORKSPACE_NAME", "kittiwake"),
            ("AZUREML_ARM_PROJECT_NAME", self.experiment_name.as_str()),
            ("AZUREML_SERVICE_ENDPOINT", url.as_str()),
            ("AZUREML_RUN_TOKEN", token.as_str()),
            ("AZUREML_TARGET_TYPE", d.compute_target.as_str()),
            ("KITTIWAKE_URL", url.as_str()),
            ("KITTIWAKE_TOKEN", token.as_str()),
            ("KITTIWAKE_RUN_ID", run_id.as_str()),
            ("MLFLOW_TRACKING_URI", url.as_str()),
            ("MLFLOW_TRACKING_TOKEN", token.as_str()),
            ("MLFLOW_RUN_ID", run_id.as_str()),
            ("MLFLOW_EXPERIMENT_NAME", self.experiment_name.as_str()),
            ("PYTHONUNBUFFERED", "1"),
        ] {
            env.insert(k.to_string(), v.to_string());
        }
        env.insert(
            "AZUREML_EXPERIMENT_ID".into(),
            self.job.experiment_id.to_string(),
        );
        env.insert(
            "MLFLOW_EXPERIMENT_ID".into(),
            self.job.experiment_id.to_string(),
        );
        let python_path = match std::env::var("PYTHONPATH") {
            Ok(existing) if !existing.is_empty() => format!("{}:{existing}", sdk.display()),
            _ => sdk.display().to_string(),
        };
        env.insert("PYTHONPATH".into(), python_path);
        if !self.job.gpus.is_empty() {
            let list: Vec<String> = self.job.gpus.iter().map(u32::to_string).collect();
            env.insert("CUDA_VISIBLE_DEVICES".into(), list.join(","));
            self.log.line(&format!(
                "GPUs for this run: CUDA_VISIBLE_DEVICES={}",
                list.join(",")
            ));
        }
        env.extend(io.variables);
        env.extend(resolved.variables);
        env.extend(d.environment_variables.clone());
        // AzureML passes inputs and outputs in arguments as placeholders; they become local paths.
        let arguments = d
            .arguments
            .iter()
            .map(|a| {
                io.placeholders
                    .iter()
                    .find(|(placeholder, _)| placeholder == a)
                    .map_or_else(|| a.clone(), |(_, path)| path.clone())
            })
            .collect();
        Ok(Prepared {
            program,
            env,
            arguments,
        })
    }

    /// Downloads each input's files into its folder (read-only) and makes each output's folder;
    /// returns the variables and argument placeholders that name them.
    async fn lay_out_inputs_and_outputs(&self) -> Result<Io, String> {
        let mut io = Io::default();
        let mut inputs = serde_json::Map::new();
        let mut outputs = serde_json::Map::new();
        for input in &self.job.definition.inputs {
            let rel = input
                .path_on_compute
                .clone()
                .unwrap_or_else(|| format!("inputs/{}", input.name));
            let folder = self.args.work_dir.join(rel.trim_end_matches('/'));
            for f in &input.files {
                check_relative_path(&f.relative).map_err(|e| e.message)?;
                let target = folder.join(&f.relative);
                let url = format!(
                    "/api/kittiwake/v1/datastores/{}/files/{}",
                    encode_path(&f.datastore),
                    encode_path(&f.path)
                );
                let data = self
                    .server
                    .call(Method::GET, &url, None, "")
                    .await
                    .map_err(|e| {
                        format!(
                            "downloading {}:{} for input '{}': {e}",
                            f.datastore, f.path, input.name
                        )
                    })?;
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("creating {}: {e}", parent.display()))?;
                }
                std::fs::write(&target, &data)
                    .map_err(|e| format!("writing {}: {e}", target.display()))?;
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o444));
            }
            std::fs::create_dir_all(&folder)
                .map_err(|e| format!("creating {}: {e}", folder.display()))?;
            let what = match &input.dataset {
                Some((name, version)) => format!("dataset {name} version {version}"),
                None => "an unregistered dataset".to_string(),
            };
            self.log.line(&format!(
                "Input '{}': {} file(s) of {what} in {rel}",
                input.name,
                input.files.len()
            ));
            for change in &input.changes {
                self.log.line(&format!(
                    "WARNING: input '{}' {change} since it was registered",
                    input.name
                ));
            }
            let path = folder.display().to_string();
            io.variables.insert(input.name.clone(), path.clone());
            io.variables.insert(
                format!("AZUREML_DATAREFERENCE_{}", input.name),
                path.clone(),
            );
            io.placeholders.push((
                format!("DatasetConsumptionConfig:{}", input.name),
                path.clone(),
            ));
            inputs.insert(input.name.clone(), Value::String(path));
        }
        for output in &self.job.definition.outputs {
            let folder = self.output_folder(&output.name);
            std::fs::create_dir_all(&folder)
                .map_err(|e| format!("creating {}: {e}", folder.display()))?;
            let path = folder.display().to_string();
            io.variables.insert(output.name.clone(), path.clone());
            io.placeholders
                .push((format!("DatasetOutputConfig:{}", output.name), path.clone()));
            outputs.insert(output.name.clone(), Value::String(path));
        }
        io.variables.insert(
            "KITTIWAKE_INPUT_DATASETS".into(),
            Value::Object(inputs).to_string(),
        );
        io.variables.insert(
            "KITTIWAKE_OUTPUT_DATASETS".into(),
            Value::Object(outputs).to_string(),
        );
        Ok(io)
    }

    fn output_folder(&self, name: &str) -> PathBuf {
        self.args.work_dir.join("output_datasets").join(name)
    }

    /// Uploads each output folder to its datastore destination.
    async fn upload_output_datasets(&self) -> Result<(), String> {
        for output in &self.job.definition.outputs {
            let folder = self.output_folder(&output.name);
            let destination = output.destination_for(&self.job.run_id);
            let files = workdir::files_below(&folder);
            for path in &files {
                let Ok(rel) = path.strip_prefix(&folder) else {
                    continue;
                };
                let target = format!("{destination}/{}", rel.to_string_lossy().replace('\\', "/"));
                let url = format!(
                    "/api/kittiwake/v1/datastores/{}/files/{}?overwrite=true",
                    encode_path(&output.datastore),
                    encode_path(&target)
                );
                self.put_file(path, &url).await.map_err(|e| {
                    format!(
                        "uploading output '{}' to {}: {e}",
                        output.name, output.datastore
                    )
                })?;
            }
            self.log.line(&format!(
                "Output '{}': {} file(s) uploaded to {}:/{destination}",
                output.name,
                files.len(),
                output.datastore
            ));
        }
        Ok(())
    }

    /// Uploads the files of `./<dir>` that changed since the last upload.
    async fn upload_dir(
        &self,
        dir: &str,
        uploaded: &mut BTreeMap<PathBuf, (u64, std::time::SystemTime)>,
    ) {
        let root = self.args.work_dir.join(dir);
        for path in workdir::files_below(&root) {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let stamp = (meta.len(), meta.modified().unwrap_or(std::time::UNIX_EPOCH));
            if uploaded.get(&path) == Some(&stamp) {
                continue;
            }
            let Ok(rel) = path.strip_prefix(&self.args.work_dir) else {
                continue;
            };
            let name = rel.to_string_lossy().replace('\\', "/");
            match self.upload_file(&path, &name).await {
                Ok(()) => {
                    uploaded.insert(path.clone(), stamp);
                }
                Err(e) => self.log.line(&format!("could not upload {name}: {e}")),
            }
        }
    }

    async fn upload_file(&self, path: &Path, name: &str) -> Result<(), String> {
        let target = format!(
            "/api/2.0/mlflow-artifacts/artifacts/{}/{}",
            self.artifact_root,
            encode_path(name)
        );
        self.put_file(path, &target).await
    }

    /// Sends a local file's bytes to `url` on the server.
    async fn put_file(&self, path: &Path, url: &str) -> Result<(), String> {
        let data = tokio::fs::read(path).await.map_err(|e| e.to_string())?;
        self.server
            .call(
                Method::PUT,
                url,
                Some(data.into()),
                "application/octet-stream",
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The script's interpreter, variables and arguments, ready to start.
struct Prepared {
    program: PathBuf,
    env: BTreeMap<String, String>,
    arguments: Vec<String>,
}

/// Variables and argument placeholders for a job's inputs and outputs.
#[derive(Default)]
struct Io {
    variables: BTreeMap<String, String>,
    placeholders: Vec<(String, String)>,
}

/// A path with each segment percent-encoded for a URL.
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|s| {
            url::form_urlencoded::byte_serialize(s.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Copies a stream of the script's output into the log; keeps the last bytes of stderr.
async fn pump<R: tokio::io::AsyncRead + Unpin>(
    mut from: R,
    log: Arc<LogShipper>,
    tail: Option<Arc<std::sync::Mutex<Vec<u8>>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        log.write(&buf[..n]);
        if let Some(tail) = &tail
            && let Ok(mut t) = tail.lock()
        {
            t.extend_from_slice(&buf[..n]);
            let excess = t.len().saturating_sub(4096);
            t.drain(..excess);
        }
    }
}

//! Submitted jobs: the service behind `Experiment.submit`.
//!
//! A submission names a source snapshot, an environment definition and a compute target; it
//! becomes a run whose job is `Queued`. The scheduler ([`Jobs::run_scheduler`]) starts each queued
//! job's agent through its target's [`ComputeBackend`] when a slot (and the GPUs it asks for) is
//! free, notices agents that die, and enforces cancel and time limits. The agent reports the job's
//! progress (Preparing, Starting, Running, Finalizing, then Completed, Failed or Canceled) and its
//! log through this service. Every state lives in the database, so a restarted server carries on
//! from where it was: queued jobs start, live agents keep reporting, dead ones fail with a reason.

mod environments;
mod scheduler;
mod snapshots;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use kittiwake_auth::Auth;
use kittiwake_blob::BlobStore;
use kittiwake_compute::ComputeBackend;
use kittiwake_data::{Data, DatasetDefinition};
use kittiwake_domain::jobs::check_io_name;
use kittiwake_domain::{
    ComputeTarget, Error, ErrorKind, InputFile, Job, JobDefinition, JobInput, JobStatus, Result,
    Run, Tag, ids,
};
use kittiwake_store::{JobChange, Store};
use kittiwake_tracking::{NewRunRequest, Tracking};
use tokio::sync::{Notify, broadcast};

pub use environments::{CURATED, wheel_sha_and_name};
pub use scheduler::plan_starts;

/// How often an agent says it is alive; the scheduler also wakes this often.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// A submission: what to run, and the run to create for it.
pub struct Submission {
    pub experiment_name: String,
    pub display_name: Option<String>,
    pub tags: Vec<Tag>,
    pub user_id: String,
    /// What to run; its `inputs` are filled in from `inputs` below.
    pub definition: JobDefinition,
    pub inputs: Vec<InputRequest>,
}

/// A dataset a submission reads: a registered version, or a definition not registered.
pub enum InputSource {
    Registered { name: String, version: Option<i64> },
    Unregistered(DatasetDefinition),
}

pub struct InputRequest {
    pub name: String,
    pub mode: String,
    pub path_on_compute: Option<String>,
    pub source: InputSource,
    /// Refuse the submission if a registered version's files changed (else the run's log warns).
    pub fail_on_change: bool,
}

/// A piece of a job's log, and where the next one starts.
pub struct LogPage {
    pub data: Vec<u8>,
    pub next_offset: i64,
    pub status: JobStatus,
}

/// What the agent needs to run a job.
pub struct AgentSpec {
    pub job: Job,
    pub experiment_name: String,
    pub artifact_uri: String,
}

#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    blob: BlobStore,
    tracking: Tracking,
    auth: Auth,
    data: Data,
    backend: Arc<dyn ComputeBackend>,
    /// The URL agents report to; known once the server has bound its port.
    server_url: RwLock<String>,
    /// Wakes the scheduler when something changed (a submission, a finished job, a cancel).
    wake: Notify,
    /// Announces the run id of every job whose log or status changed, for log followers.
    changes: broadcast::Sender<String>,
}

pub(crate) fn storage(e: kittiwake_blob::BlobError) -> Error {
    match e {
        kittiwake_blob::BlobError::NotFound(p) => Error::not_found(format!("'{p}' does not exist")),
        other => Error::internal(other.to_string()),
    }
}

/// An upload stored under a fresh name in `area/incoming/` while its SHA-256 is computed; the
/// caller checks the hash and renames it into place (or deletes it).
pub(crate) struct Hashed {
    pub incoming: kittiwake_blob::ArtifactPath,
    pub sha256: String,
    pub size: u64,
}

impl Jobs {
    pub(crate) async fn put_hashed<S, E>(&self, area: &str, body: S) -> Result<Hashed>
    where
        S: futures::Stream<Item = std::result::Result<bytes::Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        use futures::StreamExt;
        use sha2::{Digest, Sha256};
        let incoming = kittiwake_blob::ArtifactPath::parse(&format!(
            "{area}/incoming/{}",
            hex::encode(rand::random::<[u8; 16]>())
        ))
        .map_err(|e| Error::internal(e.to_string()))?;
        let mut hasher = Sha256::new();
        let hashing = body.map(|chunk| {
            if let Ok(bytes) = &chunk {
                hasher.update(bytes);
            }
            chunk
        });
        let size = self
            .inner
            .blob
            .put_stream(&incoming, hashing)
            .await
            .map_err(storage)?;
        Ok(Hashed {
            incoming,
            sha256: hex::encode(hasher.finalize()),
            size,
        })
    }
}

/// The principal name of a job's agent token.
pub fn agent_name(run_id: &str) -> String {
    format!("run:{run_id}")
}

impl Jobs {
    pub fn new(
        store: Store,
        blob: BlobStore,
        tracking: Tracking,
        auth: Auth,
        data: Data,
        backend: Arc<dyn ComputeBackend>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                blob,
                tracking,
                auth,
                data,
                backend,
                server_url: RwLock::new(String::new()),
                wake: Notify::new(),
                changes: broadcast::channel(1024).0,
            }),
        }
    }

    pub fn set_server_url(&self, url: &str) {
        if let Ok(mut current) = self.inner.server_url.write() {
            *current = url.to_string();
        }
    }

    fn server_url(&self) -> String {
        self.inner
            .server_url
            .read()
            .map(|u| u.clone())
            .unwrap_or_default()
    }

    fn changed(&self, run_id: &str) {
        let _ = self.inner.changes.send(run_id.to_string());
    }

    /// Creates the `local` compute target if there is none, or updates its slots and GPUs.
    pub async fn ensure_local_target(&self, slots: u32, gpus: Vec<u32>) -> Result<()> {
        self.inner
            .store
            .put_compute_target(&ComputeTarget {
                name: "local".into(),
                kind: "local".into(),
                slots,
                gpus,
            })
            .await
    }

    pub async fn compute_targets(&self) -> Result<Vec<ComputeTarget>> {
        self.inner.store.list_compute_targets().await
    }

    pub async fn compute_target(&self, name: &str) -> Result<ComputeTarget> {
        let targets = self.compute_targets().await?;
        let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
        targets.into_iter().find(|t| t.name == name).ok_or_else(|| {
            Error::not_found(format!(
                "Compute target '{name}' does not exist; this workspace has: {}",
                names.join(", ")
            ))
        })
    }

    /// Creates or resizes a compute target that runs jobs on the server's machine.
    pub async fn create_compute_target(&self, target: ComputeTarget) -> Result<ComputeTarget> {
        if target.kind != "local" {
            return Err(Error::invalid(format!(
                "Compute targets of kind '{}' are not supported here; use 'local'",
                target.kind
            )));
        }
        if target.slots == 0 {
            return Err(Error::invalid("A compute target needs at least one slot"));
        }
        kittiwake_domain::validation::check_key("compute target name", &target.name)?;
        self.inner.store.put_compute_target(&target).await?;
        self.inner.wake.notify_one();
        Ok(target)
    }

    /// Resolves a submission's inputs to their files now, so the run reads what was asked for.
    async fn resolve_inputs(&self, requests: Vec<InputRequest>) -> Result<Vec<JobInput>> {
        let mut inputs: Vec<JobInput> = Vec::new();
        for r in requests {
            check_io_name(&r.name)?;
            if inputs.iter().any(|i| i.name == r.name) {
                return Err(Error::invalid(format!("Two inputs are named '{}'", r.name)));
            }
            if !matches!(r.mode.as_str(), "download" | "mount") {
                return Err(Error::invalid(format!(
                    "Input '{}' has mode '{}'; Kittiwake gives inputs as 'download' or 'mount'",
                    r.name, r.mode
                )));
            }
            if let Some(p) = &r.path_on_compute {
                kittiwake_domain::jobs::check_relative_path(p.trim_end_matches('/'))?;
            }
            let data = &self.inner.data;
            let (dataset, files, changes) = match r.source {
                InputSource::Registered { name, version } => {
                    let v = data.dataset(&name, version).await?;
                    let changes = data.dataset_changes(&v).await?;
                    if !changes.is_empty() && r.fail_on_change {
                        return Err(Error::invalid(format!(
                            "Dataset {name} version {} changed since it was registered: {}",
                            v.version,
                            changes.join("; ")
                        )));
                    }
                    (Some((name, v.version)), v.files, changes)
                }
                InputSource::Unregistered(definition) => {
                    (None, data.resolve_files(&definition).await?, Vec::new())
                }
            };
            let folders: Vec<&str> = files
                .iter()
                .map(|f| f.path.rsplit_once('/').map_or("", |(dir, _)| dir))
                .collect();
            let root = common_folder(&folders);
            inputs.push(JobInput {
                name: r.name,
                mode: r.mode,
                path_on_compute: r.path_on_compute,
                dataset,
                files: files
                    .into_iter()
                    .map(|f| InputFile {
                        relative: f.path[root.len()..].trim_start_matches('/').to_string(),
                        datastore: f.datastore,
                        path: f.path,
                    })
                    .collect(),
                changes,
            });
        }
        Ok(inputs)
    }

    /// Checks a submission and queues it as a new run.
    pub async fn submit(&self, mut s: Submission) -> Result<Run> {
        s.definition.inputs = self.resolve_inputs(std::mem::take(&mut s.inputs)).await?;
        for output in &s.definition.outputs {
            check_io_name(&output.name)?;
            self.inner.data.datastore(&output.datastore).await?;
            kittiwake_domain::jobs::check_relative_path(&output.destination_for("run"))?;
        }
        let d = &s.definition;
        let target = self.compute_target(&d.compute_target).await?;
        let files = self.snapshot(&d.snapshot_id).await?;
        kittiwake_domain::jobs::check_relative_path(&d.script).map_err(|_| {
            Error::invalid(format!(
                "The script '{}' is not inside the source directory: give its path relative to source_directory",
                d.script
            ))
        })?;
        if !files.iter().any(|f| f.path == d.script) {
            return Err(Error::invalid(format!(
                "The script '{}' is not in the source directory's snapshot ({} files); check the script name \
                 and that no .amlignore/.gitignore rule leaves it out",
                d.script,
                files.len()
            )));
        }
        kittiwake_environments::resolve(&d.environment)?;
        if d.gpu_count as usize > target.gpus.len() {
            return Err(Error::invalid(format!(
                "The run asks for {} GPU(s); compute target '{}' has {}",
                d.gpu_count,
                target.name,
                target.gpus.len()
            )));
        }
        if d.max_run_duration_seconds <= 0 {
            return Err(Error::invalid(
                "max_run_duration_seconds must be a positive number of seconds",
            ));
        }
        for key in d.environment_variables.keys() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(Error::invalid(format!(
                    "Invalid environment variable name '{key}'"
                )));
            }
        }
        let experiment = self
            .inner
            .tracking
            .get_or_create_experiment(&s.experiment_name)
            .await?;
        let mut tags = s.tags;
        tags.push(Tag::new("mlflow.source.name", d.script.clone()));
        tags.push(Tag::new("mlflow.source.type", "JOB"));
        tags.push(Tag::new("mlflow.user", s.user_id.clone()));
        let run = self
            .inner
            .tracking
            .create_run(NewRunRequest {
                experiment_id: &experiment.experiment_id.to_string(),
                user_id: &s.user_id,
                run_name: s.display_name.as_deref(),
                start_time: None,
                tags,
                job: Some(d),
            })
            .await?;
        self.inner.wake.notify_one();
        Ok(run)
    }

    /// A job with its status history.
    pub async fn job(&self, run_id: &str) -> Result<Job> {
        ids::check_run_id(run_id)?;
        self.inner
            .store
            .get_job(run_id)
            .await?
            .map(|row| row.job)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "Run {run_id} was not submitted as a job (or does not exist)"
                ))
            })
    }

    async fn progress(&self, run_id: &str) -> Result<(JobStatus, i64)> {
        self.inner.store.job_progress(run_id).await?.ok_or_else(|| {
            Error::not_found(format!(
                "Run {run_id} was not submitted as a job (or does not exist)"
            ))
        })
    }

    /// Cancels a job: a queued one at once, a started one through its agent.
    pub async fn cancel(&self, run_id: &str) -> Result<Job> {
        let job = self.job(run_id).await?;
        if !job.status.is_terminal() {
            self.inner.store.request_cancel(run_id).await?;
            if job.status == JobStatus::Queued {
                self.finish(run_id, JobStatus::Canceled, JobChange::default())
                    .await?;
            }
            self.inner.wake.notify_one();
            self.changed(run_id);
        }
        self.job(run_id).await
    }

    /// The job's log from byte `from`; when there is nothing new yet and the job is not finished,
    /// waits up to `wait` for more.
    pub async fn log(&self, run_id: &str, from: i64, wait: Duration) -> Result<LogPage> {
        const PAGE: usize = 1 << 20;
        let mut changes = self.inner.changes.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        ids::check_run_id(run_id)?;
        loop {
            let (status, log_bytes) = self.progress(run_id).await?;
            let from = from.clamp(0, log_bytes);
            if from < log_bytes || status.is_terminal() {
                let data = self.inner.store.read_job_log(run_id, from, PAGE).await?;
                let data = data[..data.len().min(PAGE)].to_vec();
                return Ok(LogPage {
                    next_offset: from + data.len() as i64,
                    data,
                    status,
                });
            }
            // Wait for a change to this run, or give up at the deadline with what there is.
            let changed = loop {
                match tokio::time::timeout_at(deadline, changes.recv()).await {
                    Ok(Ok(id)) if id == run_id => break true,
                    Ok(Ok(_)) => continue,
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => break true,
                    Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => break false,
                }
            };
            if !changed {
                return Ok(LogPage {
                    data: Vec::new(),
                    next_offset: from,
                    status,
                });
            }
        }
    }

    /// Moves a job to a final state, revokes its agent's token, and tells followers.
    async fn finish(&self, run_id: &str, to: JobStatus, change: JobChange) -> Result<bool> {
        let moved = self.inner.store.move_job(run_id, to, change).await?;
        if moved {
            self.inner
                .auth
                .revoke_tokens_named(&agent_name(run_id))
                .await?;
            self.inner.wake.notify_one();
            self.changed(run_id);
        }
        Ok(moved)
    }

    fn check_agent(run_id: &str, principal: &str) -> Result<()> {
        if principal == agent_name(run_id) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("Only the agent of run {run_id} may report its progress"),
            ))
        }
    }

    /// What the agent of `run_id` (calling as `principal`) needs to run it.
    pub async fn agent_spec(&self, run_id: &str, principal: &str) -> Result<AgentSpec> {
        Self::check_agent(run_id, principal)?;
        let job = self.job(run_id).await?;
        let run = self.inner.tracking.get_run_info(run_id).await?;
        let experiment = self
            .inner
            .tracking
            .get_experiment(&run.experiment_id.to_string())
            .await?;
        Ok(AgentSpec {
            job,
            experiment_name: experiment.name,
            artifact_uri: run.artifact_uri,
        })
    }

    /// The agent reports a new status. A report that would move the job backwards (or out of a
    /// final state) is ignored; the answer is the job's status afterwards.
    pub async fn agent_status(
        &self,
        run_id: &str,
        principal: &str,
        to: JobStatus,
        failure_reason: Option<String>,
        exit_code: Option<i64>,
    ) -> Result<JobStatus> {
        Self::check_agent(run_id, principal)?;
        let change = JobChange {
            failure_reason,
            exit_code,
            agent: None,
        };
        let (to, change) = match to {
            JobStatus::Completed => match self.register_outputs(run_id).await {
                Ok(()) => (to, change),
                Err(e) => (
                    JobStatus::Failed,
                    JobChange {
                        failure_reason: Some(format!(
                            "The script completed, but its outputs could not be registered: {}",
                            e.message
                        )),
                        ..change
                    },
                ),
            },
            _ => (to, change),
        };
        let moved = if to.is_terminal() {
            self.finish(run_id, to, change).await?
        } else {
            self.inner.store.move_job(run_id, to, change).await?
        };
        if moved {
            self.changed(run_id);
            return Ok(to);
        }
        Ok(self.progress(run_id).await?.0)
    }

    /// Registers the outputs a completed job asked to register, as new versions of their
    /// datasets, and records that the run wrote them.
    async fn register_outputs(&self, run_id: &str) -> Result<()> {
        let job = self.job(run_id).await?;
        for output in &job.definition.outputs {
            let Some(name) = &output.register_as else {
                continue;
            };
            let definition = DatasetDefinition {
                dataset_type: "File".into(),
                paths: vec![kittiwake_data::DataPathSpec {
                    datastore: output.datastore.clone(),
                    path: output.destination_for(run_id),
                }],
                format: serde_json::Value::Null,
            };
            let version = self
                .inner
                .data
                .register_dataset(
                    name,
                    definition,
                    &format!("Written by run {run_id} as output '{}'", output.name),
                    Default::default(),
                    true,
                )
                .await?;
            self.inner
                .store
                .add_output_lineage(run_id, name, version.version, &output.name)
                .await?;
        }
        Ok(())
    }

    /// The agent appends output at byte `offset` of the log; returns the log's length.
    pub async fn agent_log(
        &self,
        run_id: &str,
        principal: &str,
        offset: i64,
        data: &[u8],
    ) -> Result<i64> {
        Self::check_agent(run_id, principal)?;
        let length = self
            .inner
            .store
            .append_job_log(run_id, offset, data)
            .await?;
        self.changed(run_id);
        Ok(length)
    }

    /// The agent is alive; the answer says whether it should cancel the job.
    pub async fn agent_heartbeat(&self, run_id: &str, principal: &str) -> Result<bool> {
        Self::check_agent(run_id, principal)?;
        let (_, cancel) = self
            .inner
            .store
            .job_heartbeat(run_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("No job with run id {run_id}")))?;
        Ok(cancel)
    }
}

/// The longest folder every path in `folders` is in.
fn common_folder(folders: &[&str]) -> String {
    let Some(first) = folders.first() else {
        return String::new();
    };
    let mut common: Vec<&str> = first.split('/').filter(|p| !p.is_empty()).collect();
    for folder in &folders[1..] {
        let parts: Vec<&str> = folder.split('/').filter(|p| !p.is_empty()).collect();
        let same = common
            .iter()
            .zip(&parts)
            .take_while(|(a, b)| a == b)
            .count();
        common.truncate(same);
    }
    common.join("/")
}

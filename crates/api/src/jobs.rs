//! Submitted jobs over HTTP: source snapshots, job submission and following, the job agent's
//! reports, environments and private wheels, and compute targets.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use kittiwake_auth::Principal;
use kittiwake_data::DatasetDefinition;
use kittiwake_domain::jobs::{DEFAULT_MAX_RUN_DURATION_SECONDS, SNAPSHOT_MAX_BYTES, SnapshotFile};
use kittiwake_domain::{ComputeTarget, Job, JobDefinition, JobOutput, JobStatus, Tag};
use kittiwake_jobs::{InputRequest, InputSource, Submission};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::body::{Upload, download};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Msg, required_str};
use crate::mlflow::wire::RunJson;
use crate::routes::Routes;

pub fn routes(r: Routes) -> Routes {
    let v1 = "/api/kittiwake/v1";
    let read = "jobs/read";
    let write = "jobs/write";
    r.add(
        Method::POST,
        &format!("{v1}/snapshots/missing"),
        write,
        missing_blobs,
    )
    .add(
        Method::PUT,
        &format!("{v1}/snapshots/blobs/{{sha256}}"),
        write,
        put_blob,
    )
    .add(
        Method::GET,
        &format!("{v1}/snapshots/blobs/{{sha256}}"),
        read,
        get_blob,
    )
    .add(
        Method::POST,
        &format!("{v1}/snapshots"),
        write,
        commit_snapshot,
    )
    .add(
        Method::GET,
        &format!("{v1}/snapshots/{{snapshot_id}}"),
        read,
        get_snapshot,
    )
    .add(Method::POST, &format!("{v1}/jobs"), write, submit)
    .add(Method::GET, &format!("{v1}/jobs/{{run_id}}"), read, get_job)
    .add(
        Method::POST,
        &format!("{v1}/jobs/{{run_id}}/cancel"),
        write,
        cancel,
    )
    .add(
        Method::GET,
        &format!("{v1}/jobs/{{run_id}}/logs"),
        read,
        logs,
    )
    .add(
        Method::GET,
        &format!("{v1}/jobs/{{run_id}}/agent"),
        write,
        agent_spec,
    )
    .add(
        Method::POST,
        &format!("{v1}/jobs/{{run_id}}/agent/status"),
        write,
        agent_status,
    )
    .add(
        Method::POST,
        &format!("{v1}/jobs/{{run_id}}/agent/log"),
        write,
        agent_log,
    )
    .add(
        Method::POST,
        &format!("{v1}/jobs/{{run_id}}/agent/heartbeat"),
        write,
        agent_heartbeat,
    )
    .add(
        Method::POST,
        &format!("{v1}/environments"),
        "environments/write",
        register_environment,
    )
    .add(
        Method::GET,
        &format!("{v1}/environments"),
        "environments/read",
        list_environments,
    )
    .add(
        Method::GET,
        &format!("{v1}/environments/{{name}}"),
        "environments/read",
        get_environment,
    )
    .add(
        Method::PUT,
        &format!("{v1}/environments/wheels/{{name}}"),
        "environments/write",
        put_wheel,
    )
    .add(
        Method::GET,
        &format!("{v1}/environments/wheels/{{sha256}}/{{name}}"),
        "environments/read",
        get_wheel,
    )
    .add(
        Method::GET,
        &format!("{v1}/computes"),
        "computes/read",
        list_computes,
    )
    .add(
        Method::GET,
        &format!("{v1}/computes/{{name}}"),
        "computes/read",
        get_compute,
    )
    .add(
        Method::POST,
        &format!("{v1}/computes"),
        "computes/write",
        create_compute,
    )
}

fn job_json(job: &Job) -> Value {
    let d = &job.definition;
    json!({
        "run_id": job.run_id,
        "experiment_id": job.experiment_id.to_string(),
        "status": job.status.as_str(),
        "compute_target": d.compute_target,
        "script": d.script,
        "arguments": d.arguments,
        "snapshot_id": d.snapshot_id,
        "environment": d.environment,
        "environment_variables": d.environment_variables,
        "max_run_duration_seconds": d.max_run_duration_seconds,
        "gpu_count": d.gpu_count,
        "gpus": job.gpus,
        "cancel_requested": job.cancel_requested,
        "failure_reason": job.failure_reason,
        "exit_code": job.exit_code,
        "queued_at": job.queued_at,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        "log_bytes": job.log_bytes,
        "status_history": job.history.iter().map(|(s, at)| json!({"status": s.as_str(), "time": at})).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize)]
struct Missing {
    #[serde(default)]
    sha256: Vec<String>,
}

async fn missing_blobs(State(s): State<AppState>, Msg(m): Msg<Missing>) -> ApiResult<Json<Value>> {
    let missing = s.jobs.missing_blobs(&m.sha256).await?;
    Ok(Json(json!({"missing": missing})))
}

async fn put_blob(
    State(s): State<AppState>,
    Path(sha256): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let (upload, stream) = Upload::start(&headers, body, SNAPSHOT_MAX_BYTES, "Snapshot files")?;
    let size = s
        .jobs
        .put_blob(&sha256, stream)
        .await
        .map_err(|e| upload.failed(e))?;
    Ok(Json(json!({"size": size})))
}

async fn get_blob(State(s): State<AppState>, Path(sha256): Path<String>) -> ApiResult<Response> {
    let (size, stream) = s.jobs.blob(&sha256).await?;
    Ok(download(size, stream, "application/octet-stream"))
}

#[derive(Deserialize)]
struct Commit {
    files: Option<Vec<SnapshotFile>>,
}

async fn commit_snapshot(State(s): State<AppState>, Msg(m): Msg<Commit>) -> ApiResult<Json<Value>> {
    let files = m
        .files
        .ok_or_else(|| ApiError::invalid("Missing value for required parameter 'files'"))?;
    let count = files.len();
    let id = s.jobs.commit_snapshot(files).await?;
    Ok(Json(json!({"snapshot_id": id, "file_count": count})))
}

async fn get_snapshot(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let files = s.jobs.snapshot(&id).await?;
    Ok(Json(json!({"snapshot_id": id, "files": files})))
}

#[derive(Deserialize)]
struct Submit {
    experiment_name: Option<String>,
    display_name: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    snapshot_id: Option<String>,
    script: Option<String>,
    #[serde(default)]
    arguments: Vec<Value>,
    compute_target: Option<String>,
    #[serde(default)]
    environment: Value,
    #[serde(default)]
    environment_variables: BTreeMap<String, String>,
    max_run_duration_seconds: Option<i64>,
    #[serde(default)]
    gpu_count: u32,
    #[serde(default)]
    inputs: Vec<InputIn>,
    #[serde(default)]
    outputs: Vec<JobOutput>,
}

/// A dataset input: a registered `dataset` (name and version), or an unregistered `definition`.
#[derive(Deserialize)]
struct InputIn {
    name: String,
    #[serde(default = "download_mode")]
    mode: String,
    path_on_compute: Option<String>,
    dataset: Option<DatasetRef>,
    definition: Option<DatasetDefinition>,
    #[serde(default)]
    fail_on_change: bool,
}

fn download_mode() -> String {
    "download".into()
}

#[derive(Deserialize)]
struct DatasetRef {
    name: String,
    version: Option<i64>,
}

async fn submit(
    State(s): State<AppState>,
    Extension(principal): Extension<Principal>,
    Msg(m): Msg<Submit>,
) -> ApiResult<Json<Value>> {
    let mut arguments = Vec::with_capacity(m.arguments.len());
    for (i, a) in m.arguments.iter().enumerate() {
        match a {
            Value::String(text) => arguments.push(text.clone()),
            other => {
                return Err(ApiError::invalid(format!(
                    "Argument {i} is {other}, not a string: pass every argument as a string (str(value))"
                )));
            }
        }
    }
    let definition = JobDefinition {
        snapshot_id: required_str(&m.snapshot_id, "snapshot_id")?.to_string(),
        script: required_str(&m.script, "script")?.to_string(),
        arguments,
        compute_target: m
            .compute_target
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "local".into()),
        environment: m.environment,
        environment_variables: m.environment_variables,
        max_run_duration_seconds: m
            .max_run_duration_seconds
            .unwrap_or(DEFAULT_MAX_RUN_DURATION_SECONDS),
        gpu_count: m.gpu_count,
        inputs: Vec::new(),
        outputs: m.outputs,
    };
    let mut inputs = Vec::with_capacity(m.inputs.len());
    for i in m.inputs {
        let source = match (i.dataset, i.definition) {
            (Some(d), None) => InputSource::Registered {
                name: d.name,
                version: d.version,
            },
            (None, Some(definition)) => InputSource::Unregistered(definition),
            _ => {
                return Err(ApiError::invalid(format!(
                    "Input '{}' needs either a registered 'dataset' or a 'definition'",
                    i.name
                )));
            }
        };
        inputs.push(InputRequest {
            name: i.name,
            mode: i.mode,
            path_on_compute: i.path_on_compute,
            source,
            fail_on_change: i.fail_on_change,
        });
    }
    let run = s
        .jobs
        .submit(Submission {
            experiment_name: required_str(&m.experiment_name, "experiment_name")?.to_string(),
            display_name: m.display_name,
            tags: m.tags.into_iter().map(|(k, v)| Tag::new(k, v)).collect(),
            user_id: principal.name.clone(),
            definition,
            inputs,
        })
        .await?;
    let job = s.jobs.job(&run.info.run_id).await?;
    Ok(Json(
        json!({"run": RunJson::from(&run), "job": job_json(&job)}),
    ))
}

async fn get_job(State(s): State<AppState>, Path(run_id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(job_json(&s.jobs.job(&run_id).await?)))
}

async fn cancel(State(s): State<AppState>, Path(run_id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(job_json(&s.jobs.cancel(&run_id).await?)))
}

#[derive(Deserialize)]
struct LogQuery {
    #[serde(default)]
    offset: i64,
    #[serde(default)]
    wait_ms: u64,
}

/// The job's log from `offset`, as raw bytes; the next offset and the job's status are headers.
/// With `wait_ms`, waits that long for output when there is none yet.
async fn logs(
    State(s): State<AppState>,
    Path(run_id): Path<String>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Response> {
    let wait = Duration::from_millis(q.wait_ms.min(30_000));
    let page = s.jobs.log(&run_id, q.offset, wait).await?;
    let mut response = page.data.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        "x-kittiwake-next-offset",
        HeaderValue::from(page.next_offset),
    );
    headers.insert(
        "x-kittiwake-job-status",
        HeaderValue::from_static(page.status.as_str()),
    );
    Ok(response)
}

async fn agent_spec(
    State(s): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(run_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let spec = s.jobs.agent_spec(&run_id, &principal.name).await?;
    let files = s.jobs.snapshot(&spec.job.definition.snapshot_id).await?;
    Ok(Json(json!({
        "snapshot_files": files,
        "run_id": spec.job.run_id,
        "experiment_id": spec.job.experiment_id.to_string(),
        "experiment_name": spec.experiment_name,
        "status": spec.job.status.as_str(),
        "definition": spec.job.definition,
        "gpus": spec.job.gpus,
        "artifact_uri": spec.artifact_uri,
        "log_bytes": spec.job.log_bytes,
    })))
}

#[derive(Deserialize)]
struct Report {
    status: Option<String>,
    failure_reason: Option<String>,
    exit_code: Option<i64>,
}

async fn agent_status(
    State(s): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(run_id): Path<String>,
    Msg(m): Msg<Report>,
) -> ApiResult<Json<Value>> {
    let to: JobStatus = required_str(&m.status, "status")?.parse()?;
    let now = s
        .jobs
        .agent_status(&run_id, &principal.name, to, m.failure_reason, m.exit_code)
        .await?;
    Ok(Json(json!({"status": now.as_str()})))
}

#[derive(Deserialize)]
struct Offset {
    offset: i64,
}

async fn agent_log(
    State(s): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(run_id): Path<String>,
    Query(q): Query<Offset>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let length = s
        .jobs
        .agent_log(&run_id, &principal.name, q.offset, &body)
        .await?;
    Ok(Json(json!({"length": length})))
}

async fn agent_heartbeat(
    State(s): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(run_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let cancel = s.jobs.agent_heartbeat(&run_id, &principal.name).await?;
    Ok(Json(json!({"cancel": cancel})))
}

async fn register_environment(
    State(s): State<AppState>,
    Msg(definition): Msg<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(s.jobs.register_environment(definition).await?))
}

async fn list_environments(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"environments": s.jobs.environments().await?})))
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<String>,
}

async fn get_environment(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Json<Value>> {
    let version = match q
        .version
        .as_deref()
        .filter(|v| !v.is_empty() && *v != "latest")
    {
        Some(v) => Some(v.parse::<i64>().map_err(|_| {
            ApiError::invalid(format!(
                "Invalid environment version '{v}': expected a number"
            ))
        })?),
        None => None,
    };
    Ok(Json(s.jobs.environment(&name, version).await?))
}

#[derive(Deserialize)]
struct WheelQuery {
    #[serde(default)]
    exist_ok: bool,
}

async fn put_wheel(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<WheelQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let (upload, stream) = Upload::start(&headers, body, s.limits.max_artifact_bytes, "Wheels")?;
    let path = s
        .jobs
        .put_wheel(&name, q.exist_ok, stream)
        .await
        .map_err(|e| upload.failed(e))?;
    Ok(Json(json!({"path": path})))
}

async fn get_wheel(
    State(s): State<AppState>,
    Path((sha256, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (size, stream) = s.jobs.wheel(&sha256, &name).await?;
    Ok(download(size, stream, "application/octet-stream"))
}

async fn list_computes(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"computes": s.jobs.compute_targets().await?})))
}

async fn get_compute(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(s.jobs.compute_target(&name).await?)))
}

#[derive(Deserialize)]
struct NewCompute {
    name: Option<String>,
    kind: Option<String>,
    slots: Option<u32>,
    #[serde(default)]
    gpus: Vec<u32>,
}

async fn create_compute(
    State(s): State<AppState>,
    Msg(m): Msg<NewCompute>,
) -> ApiResult<Json<Value>> {
    let target = s
        .jobs
        .create_compute_target(ComputeTarget {
            name: required_str(&m.name, "name")?.to_string(),
            kind: m.kind.unwrap_or_else(|| "local".into()),
            slots: m.slots.unwrap_or(1),
            gpus: m.gpus,
        })
        .await?;
    Ok(Json(json!(target)))
}

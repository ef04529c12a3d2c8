//! Datastores over HTTP: register, list and show them (never with their credentials), and move
//! files in and out of them.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use std::collections::BTreeMap;

use kittiwake_data::{DatasetDefinition, DatasetVersion, DatastoreKind, DatastoreView};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::body::{Upload, download};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Msg, required_str};
use crate::routes::Routes;

pub fn routes(r: Routes) -> Routes {
    let sets = "/api/kittiwake/v1/datasets";
    let r = r
        .add(
            Method::POST,
            &format!("{sets}/resolve"),
            "datasets/read",
            resolve_dataset,
        )
        .add(Method::POST, sets, "datasets/write", register_dataset)
        .add(Method::GET, sets, "datasets/read", list_datasets)
        .add(
            Method::GET,
            &format!("{sets}/{{name}}"),
            "datasets/read",
            get_dataset,
        )
        .add(
            Method::GET,
            &format!("{sets}/{{name}}/versions/{{version}}/changes"),
            "datasets/read",
            dataset_changes,
        )
        .add(
            Method::POST,
            &format!("{sets}/profile"),
            "datasets/read",
            profile_definition,
        )
        .add(
            Method::GET,
            &format!("{sets}/{{name}}/versions/{{version}}/profile"),
            "datasets/read",
            profile_version,
        )
        .add(
            Method::GET,
            &format!("{sets}/{{name}}/versions/{{version}}/runs"),
            "datasets/read",
            dataset_runs,
        )
        .add(
            Method::GET,
            "/api/kittiwake/v1/runs/{run_id}/datasets",
            "datasets/read",
            run_datasets,
        );
    let v1 = "/api/kittiwake/v1/datastores";
    let read = "datastores/read";
    let write = "datastores/write";
    r.add(Method::GET, v1, read, list)
        .add(Method::POST, v1, write, register)
        .add(Method::GET, &format!("{v1}/{{name}}"), read, show)
        .add(
            Method::GET,
            &format!("{v1}/{{name}}/list"),
            read,
            list_files,
        )
        // Asking for the folder to read from, or to write into: the same answer, but a reader
        // is not told where it could write.
        .add(
            Method::GET,
            &format!("{v1}/{{name}}/local-folder"),
            read,
            local_folder,
        )
        .add(
            Method::POST,
            &format!("{v1}/{{name}}/local-folder"),
            write,
            local_folder,
        )
        .add(
            Method::PUT,
            &format!("{v1}/{{name}}/files/{{*path}}"),
            write,
            upload,
        )
        .add(
            Method::GET,
            &format!("{v1}/{{name}}/files/{{*path}}"),
            read,
            download_file,
        )
}

fn view_json(d: &DatastoreView) -> Value {
    json!({
        "name": d.name,
        "datastore_type": d.datastore_type,
        "settings": d.settings,
        "has_credentials": d.has_credentials,
        "created_at": d.created_at,
    })
}

async fn list(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let all = s.data.datastores().await?;
    Ok(Json(
        json!({"datastores": all.iter().map(view_json).collect::<Vec<_>>()}),
    ))
}

async fn show(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(view_json(&s.data.datastore(&name).await?)))
}

async fn local_folder(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let folder =
        s.data.local_folder(&name).await?.map(
            |f| json!({"path": f.path.to_string_lossy(), "device": f.device, "inode": f.inode}),
        );
    Ok(Json(json!({ "local_folder": folder })))
}

#[derive(Deserialize)]
struct Register {
    name: Option<String>,
    datastore_type: Option<String>,
    #[serde(default)]
    overwrite: bool,
    path: Option<String>,
    bucket: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    account_name: Option<String>,
    container_name: Option<String>,
    account_key: Option<String>,
    sas_token: Option<String>,
}

async fn register(State(s): State<AppState>, Msg(m): Msg<Register>) -> ApiResult<Json<Value>> {
    let name = required_str(&m.name, "name")?;
    let kind = match required_str(&m.datastore_type, "datastore_type")? {
        "LocalFolder" => DatastoreKind::LocalFolder {
            path: required_str(&m.path, "path")?.to_string(),
        },
        "S3" => DatastoreKind::S3 {
            bucket: required_str(&m.bucket, "bucket")?.to_string(),
            endpoint: m.endpoint,
            region: m.region,
            access_key_id: m.access_key_id,
            secret_access_key: m.secret_access_key,
        },
        "AzureBlob" => DatastoreKind::AzureBlob {
            account_name: required_str(&m.account_name, "account_name")?.to_string(),
            container_name: required_str(&m.container_name, "container_name")?.to_string(),
            endpoint: m.endpoint,
            account_key: m.account_key,
            sas_token: m.sas_token,
        },
        other => {
            return Err(ApiError::invalid(format!(
                "Unknown datastore_type '{other}': expected LocalFolder, S3 or AzureBlob"
            )));
        }
    };
    let view = s.data.register(name, kind, m.overwrite).await?;
    Ok(Json(view_json(&view)))
}

#[derive(Deserialize)]
struct Prefix {
    #[serde(default)]
    prefix: String,
}

async fn list_files(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<Prefix>,
) -> ApiResult<Json<Value>> {
    let files = s.data.list(&name, &q.prefix).await?;
    Ok(Json(json!({"files": files.iter().map(|f| json!({
        "path": f.path,
        "size": f.size,
        "e_tag": f.e_tag,
        "last_modified": f.last_modified_ms,
    })).collect::<Vec<_>>()})))
}

#[derive(Deserialize)]
struct Overwrite {
    #[serde(default)]
    overwrite: bool,
}

async fn upload(
    State(s): State<AppState>,
    Path((name, path)): Path<(String, String)>,
    Query(q): Query<Overwrite>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let (upload, stream) = Upload::start(&headers, body, s.limits.max_artifact_bytes, "Files")?;
    match s
        .data
        .upload(&name, &path, q.overwrite, stream)
        .await
        .map_err(|e| upload.failed(e))?
    {
        Some(size) => Ok(Json(json!({"size": size, "skipped": false}))),
        None => Ok(Json(json!({"skipped": true}))),
    }
}

async fn download_file(
    State(s): State<AppState>,
    Path((name, path)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (size, stream) = s.data.download(&name, &path).await?;
    Ok(download(size, stream, "application/octet-stream"))
}

fn dataset_json(d: &DatasetVersion) -> Value {
    json!({
        "name": d.name,
        "version": d.version,
        "description": d.description,
        "tags": d.tags,
        "dataset_type": d.definition.dataset_type,
        "definition": d.definition,
        "files": d.files,
        "fingerprint": d.fingerprint,
        "file_count": d.files.len(),
        "total_bytes": d.total_bytes,
        "created_at": d.created_at,
    })
}

#[derive(Deserialize)]
struct Resolve {
    definition: Option<DatasetDefinition>,
}

fn required_definition(d: Option<DatasetDefinition>) -> ApiResult<DatasetDefinition> {
    d.ok_or_else(|| ApiError::invalid("Missing value for required parameter 'definition'"))
}

async fn resolve_dataset(
    State(s): State<AppState>,
    Msg(m): Msg<Resolve>,
) -> ApiResult<Json<Value>> {
    let definition = required_definition(m.definition)?;
    let files = s.data.resolve_files(&definition).await?;
    let total: u64 = files.iter().map(|f| f.size).sum();
    Ok(Json(json!({"files": files, "total_bytes": total})))
}

#[derive(Deserialize)]
struct RegisterDataset {
    name: Option<String>,
    definition: Option<DatasetDefinition>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    create_new_version: bool,
}

async fn register_dataset(
    State(s): State<AppState>,
    Msg(m): Msg<RegisterDataset>,
) -> ApiResult<Json<Value>> {
    let definition = required_definition(m.definition)?;
    let version = s
        .data
        .register_dataset(
            required_str(&m.name, "name")?,
            definition,
            &m.description,
            m.tags,
            m.create_new_version,
        )
        .await?;
    Ok(Json(dataset_json(&version)))
}

async fn list_datasets(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let all = s.data.datasets().await?;
    Ok(Json(
        json!({"datasets": all.iter().map(dataset_json).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<String>,
}

fn parse_version(v: Option<&str>) -> ApiResult<Option<i64>> {
    match v.filter(|v| !v.is_empty() && *v != "latest") {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::invalid(format!(
                "Invalid dataset version '{v}': expected a number or 'latest'"
            ))
        }),
    }
}

async fn get_dataset(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Json<Value>> {
    let version = parse_version(q.version.as_deref())?;
    Ok(Json(dataset_json(&s.data.dataset(&name, version).await?)))
}

async fn dataset_version(s: &AppState, name: &str, version: &str) -> ApiResult<DatasetVersion> {
    Ok(s.data.dataset(name, parse_version(Some(version))?).await?)
}

async fn dataset_changes(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let version = dataset_version(&s, &name, &version).await?;
    let changes = s.data.dataset_changes(&version).await?;
    Ok(Json(
        json!({"name": version.name, "version": version.version, "changes": changes}),
    ))
}

fn lineage_json(l: &kittiwake_store::Lineage) -> Value {
    json!({
        "run_id": l.run_id,
        "dataset_name": l.dataset_name,
        "dataset_version": l.dataset_version,
        "direction": l.direction,
        "name": l.io_name,
    })
}

async fn dataset_runs(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let version = dataset_version(&s, &name, &version).await?;
    let runs = s.data.runs_of_dataset(&version).await?;
    Ok(Json(
        json!({"runs": runs.iter().map(lineage_json).collect::<Vec<_>>()}),
    ))
}

async fn run_datasets(
    State(s): State<AppState>,
    Path(run_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let datasets = s.data.datasets_of_run(&run_id).await?;
    Ok(Json(
        json!({"datasets": datasets.iter().map(lineage_json).collect::<Vec<_>>()}),
    ))
}

fn profile_json(p: &kittiwake_data::profile::Profile) -> Value {
    json!({
        "row_count": p.row_count,
        "columns": p.columns.iter().map(|c| json!({
            "name": c.name,
            "type": c.column_type.as_str(),
            "count": c.count,
            "nulls": c.nulls,
            "min": c.min,
            "max": c.max,
            "mean": c.mean,
            "distinct_estimate": c.distinct_estimate,
        })).collect::<Vec<_>>(),
        "preview": {
            "columns": p.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            "rows": p.preview,
        },
    })
}

async fn profile_definition(
    State(s): State<AppState>,
    Msg(m): Msg<Resolve>,
) -> ApiResult<Json<Value>> {
    let definition = required_definition(m.definition)?;
    let files = s.data.resolve_files(&definition).await?;
    Ok(Json(profile_json(
        &s.data.profile(&definition, &files).await?,
    )))
}

async fn profile_version(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let version = dataset_version(&s, &name, &version).await?;
    let profile = s.data.profile(&version.definition, &version.files).await?;
    Ok(Json(profile_json(&profile)))
}

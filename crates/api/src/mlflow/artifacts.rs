use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use kittiwake_tracking::PROXY_SCHEME;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::body::{self, Upload};
use crate::error::{ApiError, ApiResult};
use crate::extract::Msg;

/// Streams a request body into the artifact store, refusing it once it passes the size limit.
pub async fn upload(
    State(s): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let (upload, stream) = Upload::start(&headers, body, s.limits.max_artifact_bytes, "Artifacts")?;
    s.tracking
        .put_artifact(&path, stream)
        .await
        .map_err(|e| upload.failed(e))?;
    Ok(Json(json!({})))
}

pub async fn download(State(s): State<AppState>, Path(path): Path<String>) -> ApiResult<Response> {
    let file = s.tracking.get_artifact(&path).await?;
    let mime = mime_guess::from_path(&path).first_or_octet_stream();
    Ok(body::download(file.size, file.body, mime.essence_str()))
}

pub async fn delete(State(s): State<AppState>, Path(path): Path<String>) -> ApiResult<Json<Value>> {
    s.tracking.delete_artifact(&path).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    path: String,
}

fn file_infos(entries: Vec<kittiwake_tracking::ArtifactEntry>) -> Vec<Value> {
    entries
        .into_iter()
        .map(|e| match e.size {
            Some(size) => json!({"path": e.path, "is_dir": false, "file_size": size}),
            None => json!({"path": e.path, "is_dir": true}),
        })
        .collect()
}

/// The proxy's listing: entries are named by their basename.
pub async fn list(State(s): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Json<Value>> {
    let entries = s.tracking.list_artifacts(&q.path, &q.path).await?;
    let files = file_infos(entries);
    Ok(Json(if files.is_empty() {
        json!({})
    } else {
        json!({"files": files})
    }))
}

#[derive(Deserialize)]
pub struct RunList {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default)]
    path: String,
}

/// `artifacts/list`: entries are named by their path from the run's artifact root.
pub async fn list_run(State(s): State<AppState>, Msg(m): Msg<RunList>) -> ApiResult<Json<Value>> {
    let run_id = crate::extract::required(
        m.run_id
            .as_deref()
            .or(m.run_uuid.as_deref())
            .filter(|r| !r.is_empty()),
        "run_id",
    )?;
    let root = s.tracking.run_artifact_root(run_id).await?;
    let sub = kittiwake_blob::ArtifactPath::parse(&m.path)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let dir = root.join(&sub);
    let entries = s
        .tracking
        .list_artifacts(dir.as_str(), root.as_str())
        .await?;
    let mut body = json!({"root_uri": format!("{PROXY_SCHEME}{}", root.as_str())});
    let files = file_infos(entries);
    if !files.is_empty() {
        body["files"] = json!(files);
    }
    Ok(Json(body))
}

pub async fn server_info() -> Json<Value> {
    Json(json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
    }))
}

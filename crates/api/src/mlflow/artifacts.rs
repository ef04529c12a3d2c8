use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryStreamExt};
use kittiwake_tracking::PROXY_SCHEME;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Msg, declared_length};

/// Streams a request body into the artifact store, refusing it once it passes the size limit.
pub async fn upload(
    State(s): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    let limit = s.limits.max_artifact_bytes;
    if declared_length(&headers).is_some_and(|len| len > limit) {
        return Err(ApiError::too_large(format!(
            "Artifacts larger than {limit} bytes are refused"
        )));
    }
    let over_limit = Arc::new(AtomicBool::new(false));
    let flag = over_limit.clone();
    let mut seen = 0u64;
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(|e| e.to_string())?;
        seen += chunk.len() as u64;
        if seen > limit {
            flag.store(true, Ordering::Relaxed);
            return Err("the artifact is larger than the limit".to_string());
        }
        Ok::<Bytes, String>(chunk)
    });
    match s.tracking.put_artifact(&path, Box::pin(stream)).await {
        Err(_) if over_limit.load(Ordering::Relaxed) => Err(ApiError::too_large(format!(
            "Artifacts larger than {limit} bytes are refused"
        ))),
        other => other.map(|_| Json(json!({}))).map_err(ApiError::from),
    }
}

pub async fn download(State(s): State<AppState>, Path(path): Path<String>) -> ApiResult<Response> {
    let file = s.tracking.get_artifact(&path).await?;
    let mime = mime_guess::from_path(&path).first_or_octet_stream();
    let body = Body::from_stream(file.body.map_err(|e| std::io::Error::other(e.message)));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.essence_str()) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
    Ok(response)
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

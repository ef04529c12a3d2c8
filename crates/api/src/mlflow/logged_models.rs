use axum::Json;
use axum::extract::{Path, State};
use kittiwake_tracking::{NewLoggedModel, SearchRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use super::wire::{KeyValue, LoggedModelJson, enum_text, into_tags};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Msg, opt_num, required, required_str};

#[derive(Deserialize)]
pub struct Create {
    experiment_id: Option<String>,
    name: Option<String>,
    model_type: Option<String>,
    source_run_id: Option<String>,
    #[serde(default)]
    params: Vec<KeyValue>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn create(State(s): State<AppState>, Msg(m): Msg<Create>) -> ApiResult<Json<Value>> {
    let model = s
        .tracking
        .create_logged_model(NewLoggedModel {
            experiment_id: required_str(&m.experiment_id, "experiment_id")?,
            name: m.name.as_deref(),
            model_type: m.model_type.as_deref(),
            source_run_id: m.source_run_id.as_deref(),
            tags: into_tags(m.tags),
            params: into_tags(m.params),
        })
        .await?;
    Ok(Json(json!({"model": LoggedModelJson::from(&model)})))
}

pub async fn get(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let model = s.tracking.get_logged_model(&model_id).await?;
    Ok(Json(json!({"model": LoggedModelJson::from(&model)})))
}

#[derive(Deserialize)]
pub struct Finalize {
    #[serde(default, deserialize_with = "enum_text")]
    status: Option<String>,
}

pub async fn finalize(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    Msg(m): Msg<Finalize>,
) -> ApiResult<Json<Value>> {
    let status = match required(m.status.as_deref(), "status")? {
        "1" => "LOGGED_MODEL_PENDING",
        "2" => "LOGGED_MODEL_READY",
        "3" => "LOGGED_MODEL_UPLOAD_FAILED",
        other => other,
    };
    let model = s
        .tracking
        .finalize_logged_model(&model_id, status.parse()?)
        .await?;
    Ok(Json(json!({"model": LoggedModelJson::from(&model)})))
}

pub async fn delete(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
) -> ApiResult<Json<Value>> {
    s.tracking.delete_logged_model(&model_id).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct Tags {
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn set_tags(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    Msg(m): Msg<Tags>,
) -> ApiResult<Json<Value>> {
    s.tracking
        .set_logged_model_tags(&model_id, into_tags(m.tags))
        .await?;
    let model = s.tracking.get_logged_model(&model_id).await?;
    Ok(Json(json!({"model": LoggedModelJson::from(&model)})))
}

pub async fn delete_tag(
    State(s): State<AppState>,
    Path((model_id, key)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    s.tracking.delete_logged_model_tag(&model_id, &key).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct Params {
    #[serde(default)]
    params: Vec<KeyValue>,
}

pub async fn log_params(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    Msg(m): Msg<Params>,
) -> ApiResult<Json<Value>> {
    s.tracking
        .log_logged_model_params(&model_id, into_tags(m.params))
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct OrderBy {
    field_name: Option<String>,
    #[serde(default = "ascending_default")]
    ascending: bool,
}

fn ascending_default() -> bool {
    true
}

#[derive(Deserialize)]
pub struct Search {
    #[serde(default)]
    experiment_ids: Vec<String>,
    #[serde(default)]
    filter: String,
    #[serde(default, deserialize_with = "opt_num")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<OrderBy>,
    page_token: Option<String>,
}

pub async fn search(State(s): State<AppState>, Msg(m): Msg<Search>) -> ApiResult<Json<Value>> {
    let order_by = m
        .order_by
        .iter()
        .map(|o| {
            let field = o
                .field_name
                .as_deref()
                .filter(|f| !f.is_empty())
                .ok_or_else(|| ApiError::invalid("order_by entries need a field_name"))?;
            Ok(format!(
                "{field} {}",
                if o.ascending { "ASC" } else { "DESC" }
            ))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let page = s
        .tracking
        .search_logged_models(
            &m.experiment_ids,
            SearchRequest {
                filter: &m.filter,
                order_by: &order_by,
                max_results: m.max_results.unwrap_or(50),
                page_token: m.page_token.as_deref(),
            },
        )
        .await?;
    let mut body =
        json!({"models": page.items.iter().map(LoggedModelJson::from).collect::<Vec<_>>()});
    if let Some(token) = page.next_page_token {
        body["next_page_token"] = json!(token);
    }
    Ok(Json(body))
}

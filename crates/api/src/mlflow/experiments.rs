use axum::Json;
use axum::extract::State;
use kittiwake_domain::{LifecycleStage, Tag};
use kittiwake_tracking::SearchRequest;
use serde::Deserialize;
use serde_json::{Value, json};

use super::wire::{ExperimentJson, KeyValue, PageJson, enum_text, into_tags, view_type};
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Msg, opt_num, required_str};

#[derive(Deserialize)]
pub struct Create {
    name: Option<String>,
    artifact_location: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn create(State(s): State<AppState>, Msg(m): Msg<Create>) -> ApiResult<Json<Value>> {
    let name = required_str(&m.name, "name")?;
    let id = s
        .tracking
        .create_experiment(name, m.artifact_location.as_deref(), &into_tags(m.tags))
        .await?;
    Ok(Json(json!({"experiment_id": id.to_string()})))
}

#[derive(Deserialize)]
pub struct ById {
    experiment_id: Option<String>,
}

pub async fn get(State(s): State<AppState>, Msg(m): Msg<ById>) -> ApiResult<Json<Value>> {
    let e = s
        .tracking
        .get_experiment(required_str(&m.experiment_id, "experiment_id")?)
        .await?;
    Ok(Json(json!({"experiment": ExperimentJson::from(&e)})))
}

#[derive(Deserialize)]
pub struct ByName {
    experiment_name: Option<String>,
}

pub async fn get_by_name(State(s): State<AppState>, Msg(m): Msg<ByName>) -> ApiResult<Json<Value>> {
    let e = s
        .tracking
        .get_experiment_by_name(required_str(&m.experiment_name, "experiment_name")?)
        .await?;
    Ok(Json(json!({"experiment": ExperimentJson::from(&e)})))
}

#[derive(Deserialize)]
pub struct Search {
    #[serde(default, deserialize_with = "opt_num")]
    max_results: Option<i64>,
    page_token: Option<String>,
    #[serde(default)]
    filter: String,
    #[serde(default)]
    order_by: Vec<String>,
    #[serde(default, deserialize_with = "enum_text")]
    view_type: Option<String>,
}

pub async fn search(
    State(s): State<AppState>,
    Msg(m): Msg<Search>,
) -> ApiResult<Json<PageJson<ExperimentJson>>> {
    let page = s
        .tracking
        .search_experiments(
            view_type(m.view_type.as_deref())?,
            SearchRequest {
                filter: &m.filter,
                order_by: &m.order_by,
                max_results: m.max_results.unwrap_or(1000),
                page_token: m.page_token.as_deref(),
            },
        )
        .await?;
    Ok(Json(PageJson {
        field: "experiments",
        items: page.items.iter().map(ExperimentJson::from).collect(),
        next_page_token: page.next_page_token,
    }))
}

pub async fn delete(State(s): State<AppState>, Msg(m): Msg<ById>) -> ApiResult<Json<Value>> {
    let id = required_str(&m.experiment_id, "experiment_id")?;
    s.tracking
        .set_experiment_stage(id, LifecycleStage::Deleted)
        .await?;
    Ok(Json(json!({})))
}

pub async fn restore(State(s): State<AppState>, Msg(m): Msg<ById>) -> ApiResult<Json<Value>> {
    let id = required_str(&m.experiment_id, "experiment_id")?;
    s.tracking
        .set_experiment_stage(id, LifecycleStage::Active)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct Update {
    experiment_id: Option<String>,
    new_name: Option<String>,
}

pub async fn update(State(s): State<AppState>, Msg(m): Msg<Update>) -> ApiResult<Json<Value>> {
    let id = required_str(&m.experiment_id, "experiment_id")?;
    if let Some(name) = m.new_name.as_deref().filter(|n| !n.is_empty()) {
        s.tracking.rename_experiment(id, name).await?;
    } else {
        s.tracking.get_experiment(id).await?;
    }
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct SetTag {
    experiment_id: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

pub async fn set_tag(State(s): State<AppState>, Msg(m): Msg<SetTag>) -> ApiResult<Json<Value>> {
    let id = required_str(&m.experiment_id, "experiment_id")?;
    let key = required_str(&m.key, "key")?;
    let value = crate::extract::required(m.value.as_deref(), "value")?;
    s.tracking
        .set_experiment_tag(id, &Tag::new(key, value))
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct DeleteTag {
    experiment_id: Option<String>,
    key: Option<String>,
}

pub async fn delete_tag(
    State(s): State<AppState>,
    Msg(m): Msg<DeleteTag>,
) -> ApiResult<Json<Value>> {
    let id = required_str(&m.experiment_id, "experiment_id")?;
    s.tracking
        .delete_experiment_tag(id, required_str(&m.key, "key")?)
        .await?;
    Ok(Json(json!({})))
}

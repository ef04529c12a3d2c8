use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use kittiwake_domain::{LifecycleStage, Metric, MetricPoint, RunStatus, Tag};
use kittiwake_tracking::{NewRunRequest, SearchRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use super::wire::{
    DatasetInputJson, KeyValue, ModelIoJson, Named, PageJson, RunInfoJson, RunJson, enum_text,
    into_tags, view_type,
};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Msg, opt_num, required, required_str};

/// Most run messages name the run as `run_id` or, in older clients, `run_uuid`.
#[derive(Deserialize)]
pub struct RunRef {
    run_id: Option<String>,
    run_uuid: Option<String>,
}

impl RunRef {
    fn id(&self) -> Result<&str, ApiError> {
        required(
            self.run_id
                .as_deref()
                .filter(|s| !s.is_empty())
                .or(self.run_uuid.as_deref().filter(|s| !s.is_empty())),
            "run_id",
        )
    }
}

#[derive(Deserialize)]
pub struct Create {
    experiment_id: Option<String>,
    user_id: Option<String>,
    run_name: Option<String>,
    #[serde(default, deserialize_with = "opt_num")]
    start_time: Option<i64>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn create(State(s): State<AppState>, Msg(m): Msg<Create>) -> ApiResult<Response> {
    let run = s
        .tracking
        .create_run(NewRunRequest {
            experiment_id: m
                .experiment_id
                .as_deref()
                .filter(|e| !e.is_empty())
                .unwrap_or("0"),
            user_id: m.user_id.as_deref().unwrap_or(""),
            run_name: m.run_name.as_deref(),
            start_time: m.start_time,
            tags: into_tags(m.tags),
            job: None,
        })
        .await?;
    Ok(Json(Named("run", RunJson::from(&run))).into_response())
}

pub async fn get(State(s): State<AppState>, Msg(m): Msg<RunRef>) -> ApiResult<Response> {
    let run = s.tracking.get_run(m.id()?).await?;
    Ok(Json(Named("run", RunJson::from(&run))).into_response())
}

#[derive(Deserialize)]
pub struct Update {
    #[serde(flatten)]
    run: RunRef,
    #[serde(default, deserialize_with = "enum_text")]
    status: Option<String>,
    #[serde(default, deserialize_with = "opt_num")]
    end_time: Option<i64>,
    run_name: Option<String>,
}

fn status(raw: Option<&str>) -> Result<Option<RunStatus>, ApiError> {
    Ok(match raw {
        None | Some("") => None,
        Some(n) if n.bytes().all(|b| b.is_ascii_digit()) => {
            let i: usize = n
                .parse()
                .map_err(|_| ApiError::invalid(format!("Invalid run status {n}")))?;
            Some(
                *RunStatus::ALL
                    .get(i.wrapping_sub(1))
                    .ok_or_else(|| ApiError::invalid(format!("Invalid run status {n}")))?,
            )
        }
        Some(name) => Some(name.parse()?),
    })
}

pub async fn update(State(s): State<AppState>, Msg(m): Msg<Update>) -> ApiResult<Json<Value>> {
    let info = s
        .tracking
        .update_run(
            m.run.id()?,
            status(m.status.as_deref())?,
            m.end_time,
            m.run_name.as_deref(),
        )
        .await?;
    Ok(Json(json!({"run_info": RunInfoJson::from(&info)})))
}

pub async fn delete(State(s): State<AppState>, Msg(m): Msg<RunRef>) -> ApiResult<Json<Value>> {
    s.tracking
        .set_run_stage(m.id()?, LifecycleStage::Deleted)
        .await?;
    Ok(Json(json!({})))
}

pub async fn restore(State(s): State<AppState>, Msg(m): Msg<RunRef>) -> ApiResult<Json<Value>> {
    s.tracking
        .set_run_stage(m.id()?, LifecycleStage::Active)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct MetricIn {
    key: Option<String>,
    #[serde(default, deserialize_with = "opt_num")]
    value: Option<f64>,
    #[serde(default, deserialize_with = "opt_num")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "opt_num")]
    step: Option<i64>,
}

impl MetricIn {
    fn into_metric(self) -> Result<Metric, ApiError> {
        Ok(Metric {
            key: required_str(&self.key, "key")?.to_string(),
            point: MetricPoint {
                value: required(self.value, "value")?,
                timestamp: required(self.timestamp, "timestamp")?,
                step: self.step.unwrap_or(0),
            },
        })
    }
}

#[derive(Deserialize)]
pub struct LogMetric {
    #[serde(flatten)]
    run: RunRef,
    #[serde(flatten)]
    metric: MetricIn,
}

pub async fn log_metric(
    State(s): State<AppState>,
    Msg(m): Msg<LogMetric>,
) -> ApiResult<Json<Value>> {
    let run_id = m.run.id()?.to_string();
    let metric = m.metric.into_metric()?;
    s.tracking
        .log_batch(&run_id, vec![metric], vec![], vec![])
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct KeyValueIn {
    #[serde(flatten)]
    run: RunRef,
    key: Option<String>,
    value: Option<String>,
}

impl KeyValueIn {
    fn tag(&self) -> Result<Tag, ApiError> {
        Ok(Tag::new(
            required_str(&self.key, "key")?,
            required(self.value.clone(), "value")?,
        ))
    }
}

pub async fn log_param(
    State(s): State<AppState>,
    Msg(m): Msg<KeyValueIn>,
) -> ApiResult<Json<Value>> {
    s.tracking
        .log_batch(m.run.id()?, vec![], vec![m.tag()?], vec![])
        .await?;
    Ok(Json(json!({})))
}

pub async fn set_tag(State(s): State<AppState>, Msg(m): Msg<KeyValueIn>) -> ApiResult<Json<Value>> {
    s.tracking
        .log_batch(m.run.id()?, vec![], vec![], vec![m.tag()?])
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct DeleteTag {
    #[serde(flatten)]
    run: RunRef,
    key: Option<String>,
}

pub async fn delete_tag(
    State(s): State<AppState>,
    Msg(m): Msg<DeleteTag>,
) -> ApiResult<Json<Value>> {
    s.tracking
        .delete_run_tag(m.run.id()?, required_str(&m.key, "key")?)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct LogBatch {
    #[serde(flatten)]
    run: RunRef,
    #[serde(default)]
    metrics: Vec<MetricIn>,
    #[serde(default)]
    params: Vec<KeyValue>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn log_batch(State(s): State<AppState>, Msg(m): Msg<LogBatch>) -> ApiResult<Json<Value>> {
    let metrics = m
        .metrics
        .into_iter()
        .map(MetricIn::into_metric)
        .collect::<Result<Vec<_>, _>>()?;
    s.tracking
        .log_batch(m.run.id()?, metrics, into_tags(m.params), into_tags(m.tags))
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct LogInputs {
    run_id: Option<String>,
    #[serde(default)]
    datasets: Vec<DatasetInputJson>,
    #[serde(default)]
    models: Vec<ModelIoJson>,
}

pub async fn log_inputs(
    State(s): State<AppState>,
    Msg(m): Msg<LogInputs>,
) -> ApiResult<Json<Value>> {
    let run_id = required_str(&m.run_id, "run_id")?;
    s.tracking
        .log_inputs(
            run_id,
            m.datasets.into_iter().map(Into::into).collect(),
            m.models.into_iter().map(Into::into).collect(),
        )
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct LogOutputs {
    run_id: Option<String>,
    #[serde(default)]
    models: Vec<ModelIoJson>,
}

pub async fn log_outputs(
    State(s): State<AppState>,
    Msg(m): Msg<LogOutputs>,
) -> ApiResult<Json<Value>> {
    let run_id = required_str(&m.run_id, "run_id")?;
    s.tracking
        .log_outputs(run_id, m.models.into_iter().map(Into::into).collect())
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct Search {
    #[serde(default)]
    experiment_ids: Vec<String>,
    #[serde(default)]
    filter: String,
    #[serde(default, deserialize_with = "enum_text")]
    run_view_type: Option<String>,
    #[serde(default, deserialize_with = "opt_num")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<String>,
    page_token: Option<String>,
}

pub async fn search(State(s): State<AppState>, Msg(m): Msg<Search>) -> ApiResult<Response> {
    let page = s
        .tracking
        .search_runs(
            &m.experiment_ids,
            view_type(m.run_view_type.as_deref())?,
            SearchRequest {
                filter: &m.filter,
                order_by: &m.order_by,
                max_results: m.max_results.unwrap_or(1000),
                page_token: m.page_token.as_deref(),
            },
        )
        .await?;
    Ok(Json(PageJson {
        field: "runs",
        items: page.items.iter().map(RunJson::from).collect(),
        next_page_token: page.next_page_token.clone(),
    })
    .into_response())
}

#[derive(Deserialize)]
pub struct History {
    #[serde(flatten)]
    run: RunRef,
    metric_key: Option<String>,
    page_token: Option<String>,
    #[serde(default, deserialize_with = "opt_num")]
    max_results: Option<i64>,
}

pub async fn metric_history(
    State(s): State<AppState>,
    Msg(m): Msg<History>,
) -> ApiResult<Response> {
    let key = required_str(&m.metric_key, "metric_key")?.to_string();
    let (points, next_page_token) = s
        .tracking
        .metric_history(m.run.id()?, &key, m.max_results, m.page_token.as_deref())
        .await?;
    let body = history_json(&key, &points, next_page_token.as_deref())
        .map_err(|e| ApiError(kittiwake_domain::Error::internal(e.to_string())))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Writes a history page as MLflow's JSON. A million-point history is an 85 MB answer, so the
/// points are written straight into one buffer rather than through a JSON tree.
fn history_json(
    key: &str,
    points: &[MetricPoint],
    next_page_token: Option<&str>,
) -> serde_json::Result<Vec<u8>> {
    let key_json = serde_json::to_string(key)?;
    let mut out = Vec::with_capacity(32 + points.len() * (key_json.len() + 64));
    out.push(b'{');
    if !points.is_empty() {
        out.extend_from_slice(b"\"metrics\":[");
        let mut ints = itoa::Buffer::new();
        let mut floats = ryu::Buffer::new();
        for (i, p) in points.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"key\":");
            out.extend_from_slice(key_json.as_bytes());
            out.extend_from_slice(b",\"value\":");
            match p.value {
                v if v.is_nan() => out.extend_from_slice(b"\"NaN\""),
                v if v == f64::INFINITY => out.extend_from_slice(b"\"Infinity\""),
                v if v == f64::NEG_INFINITY => out.extend_from_slice(b"\"-Infinity\""),
                v => out.extend_from_slice(floats.format_finite(v).as_bytes()),
            }
            out.extend_from_slice(b",\"timestamp\":");
            out.extend_from_slice(ints.format(p.timestamp).as_bytes());
            out.extend_from_slice(b",\"step\":");
            out.extend_from_slice(ints.format(p.step).as_bytes());
            out.push(b'}');
        }
        out.push(b']');
    }
    if let Some(token) = next_page_token {
        if !points.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(b"\"next_page_token\":");
        out.extend_from_slice(serde_json::to_string(token)?.as_bytes());
    }
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_json_is_what_serde_would_write() {
        let points = [
            MetricPoint {
                step: 1,
                timestamp: 2,
                value: 0.5,
            },
            MetricPoint {
                step: -3,
                timestamp: 4,
                value: f64::NAN,
            },
            MetricPoint {
                step: 5,
                timestamp: 6,
                value: f64::NEG_INFINITY,
            },
            MetricPoint {
                step: 7,
                timestamp: 8,
                value: 1e300,
            },
        ];
        let body: Value =
            serde_json::from_slice(&history_json("a\"b", &points, Some("tok")).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"metrics": [
                {"key": "a\"b", "value": 0.5, "timestamp": 2, "step": 1},
                {"key": "a\"b", "value": "NaN", "timestamp": 4, "step": -3},
                {"key": "a\"b", "value": "-Infinity", "timestamp": 6, "step": 5},
                {"key": "a\"b", "value": 1e300, "timestamp": 8, "step": 7}],
             "next_page_token": "tok"})
        );
        assert_eq!(history_json("k", &[], None).unwrap(), b"{}");
        let only_token: Value =
            serde_json::from_slice(&history_json("k", &[], Some("t")).unwrap()).unwrap();
        assert_eq!(only_token, json!({"next_page_token": "t"}));
    }
}

//! Kittiwake's own API, for what MLflow's lacks: AzureML's metric kinds, run properties, bulk
//! columnar metric upload for the SDK, and the workspace's identity.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use kittiwake_domain::{MetricPoint, MetricSeries, RichMetric, Tag, now_millis};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Msg, num, required_str};
use crate::mlflow::wire::{ExperimentJson, RunJson, float};
use crate::routes::Routes;

pub fn routes(r: Routes) -> Routes {
    let v1 = "/api/kittiwake/v1";
    r.add(
        Method::GET,
        &format!("{v1}/workspace"),
        "workspace/read",
        workspace,
    )
    .add(
        Method::POST,
        &format!("{v1}/experiments/get-or-create"),
        "experiments/write",
        get_or_create_experiment,
    )
    .add(
        Method::GET,
        &format!("{v1}/runs/{{run_id}}"),
        "experiments/runs/read",
        run_details,
    )
    .add(
        Method::POST,
        &format!("{v1}/runs/{{run_id}}/metrics"),
        "experiments/runs/write",
        log_metrics,
    )
    .add(
        Method::GET,
        &format!("{v1}/runs/{{run_id}}/metrics"),
        "experiments/runs/read",
        get_metrics,
    )
    .add(
        Method::POST,
        &format!("{v1}/runs/{{run_id}}/properties"),
        "experiments/runs/write",
        add_properties,
    )
}

async fn workspace(State(s): State<AppState>) -> Json<Value> {
    Json(json!({
        "name": s.workspace.name,
        "workspace_id": s.workspace.id,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

#[derive(Deserialize)]
struct GetOrCreate {
    name: Option<String>,
}

async fn get_or_create_experiment(
    State(s): State<AppState>,
    Msg(m): Msg<GetOrCreate>,
) -> ApiResult<Json<Value>> {
    let e = s
        .tracking
        .get_or_create_experiment(required_str(&m.name, "name")?)
        .await?;
    Ok(Json(json!({"experiment": ExperimentJson::from(&e)})))
}

async fn run_details(
    State(s): State<AppState>,
    Path(run_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let run = s.tracking.get_run(&run_id).await?;
    let properties: BTreeMap<String, String> = s
        .tracking
        .run_properties(&run_id)
        .await?
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect();
    Ok(Json(
        json!({"run": RunJson::from(&run), "properties": properties}),
    ))
}

/// A number that may arrive as a string ("NaN", "Infinity").
struct Number<T>(T);

impl<'de, T: crate::extract::FromLenient> Deserialize<'de> for Number<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        num(d).map(Number)
    }
}

/// One metric's points in columns; `steps` defaults to 0, 1, 2… and `timestamps` to now.
#[derive(Deserialize)]
struct ScalarColumns {
    name: String,
    values: Vec<Number<f64>>,
    steps: Option<Vec<Number<i64>>>,
    timestamps: Option<Vec<Number<i64>>>,
}

#[derive(Deserialize)]
struct RichIn {
    name: String,
    kind: String,
    value: Value,
    #[serde(default)]
    description: String,
    timestamp: Option<Number<i64>>,
}

#[derive(Deserialize)]
struct LogMetrics {
    #[serde(default)]
    scalars: Vec<ScalarColumns>,
    #[serde(default)]
    rich: Vec<RichIn>,
}

async fn log_metrics(
    State(s): State<AppState>,
    Path(run_id): Path<String>,
    Msg(m): Msg<LogMetrics>,
) -> ApiResult<Json<Value>> {
    let now = now_millis();
    let mut scalars = Vec::with_capacity(m.scalars.len());
    for c in m.scalars {
        let n = c.values.len();
        let mismatch = |what: &str, len: usize| {
            ApiError::invalid(format!(
                "Metric '{}' has {n} values but {len} {what}; the columns must be the same length",
                c.name
            ))
        };
        if let Some(steps) = &c.steps
            && steps.len() != n
        {
            return Err(mismatch("steps", steps.len()));
        }
        if let Some(ts) = &c.timestamps
            && ts.len() != n
        {
            return Err(mismatch("timestamps", ts.len()));
        }
        let points = (0..n)
            .map(|i| MetricPoint {
                value: c.values[i].0,
                step: c.steps.as_ref().map_or(i as i64, |s| s[i].0),
                timestamp: c.timestamps.as_ref().map_or(now, |t| t[i].0),
            })
            .collect();
        scalars.push(MetricSeries {
            key: c.name,
            points,
        });
    }
    let rich = m
        .rich
        .into_iter()
        .map(|r| {
            Ok(RichMetric {
                kind: r.kind.parse()?,
                value_json: r.value.to_string(),
                name: r.name,
                description: r.description,
                timestamp: r.timestamp.map_or(now, |t| t.0),
            })
        })
        .collect::<Result<Vec<_>, kittiwake_domain::Error>>()?;
    s.tracking.log_metrics(&run_id, scalars, rich).await?;
    Ok(Json(json!({})))
}

/// Values with NaN and infinities written as protobuf JSON writes them.
struct Floats<'a>(&'a [MetricPoint]);

impl Serialize for Floats<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct One(f64);
        impl Serialize for One {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                float(&self.0, s)
            }
        }
        s.collect_seq(self.0.iter().map(|p| One(p.value)))
    }
}

struct Column<'a, F>(&'a [MetricPoint], F);

impl<F: Fn(&MetricPoint) -> i64> Serialize for Column<'_, F> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(&self.1))
    }
}

/// One scalar series in columns, the compact form the SDK reads.
#[derive(Serialize)]
struct SeriesJson<'a> {
    name: &'a str,
    steps: Column<'a, fn(&MetricPoint) -> i64>,
    timestamps: Column<'a, fn(&MetricPoint) -> i64>,
    values: Floats<'a>,
}

#[derive(Serialize)]
struct RichJson<'a> {
    name: &'a str,
    kind: &'static str,
    value: Value,
    description: &'a str,
    timestamp: i64,
}

#[derive(Serialize)]
struct MetricsJson<'a> {
    scalars: Vec<SeriesJson<'a>>,
    rich: Vec<RichJson<'a>>,
}

#[derive(Deserialize)]
struct MetricsQuery {
    name: Option<String>,
}

async fn get_metrics(
    State(s): State<AppState>,
    Path(run_id): Path<String>,
    Query(q): Query<MetricsQuery>,
) -> ApiResult<Response> {
    let metrics = s.tracking.run_metrics(&run_id, q.name.as_deref()).await?;
    let body = MetricsJson {
        scalars: metrics
            .scalars
            .iter()
            .map(|(name, points)| SeriesJson {
                name,
                steps: Column(points, |p| p.step),
                timestamps: Column(points, |p| p.timestamp),
                values: Floats(points),
            })
            .collect(),
        rich: metrics
            .rich
            .iter()
            .map(|r| RichJson {
                name: &r.name,
                kind: r.kind.as_str(),
                value: serde_json::from_str(&r.value_json).unwrap_or(Value::Null),
                description: &r.description,
                timestamp: r.timestamp,
            })
            .collect(),
    };
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
struct Properties {
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

async fn add_properties(
    State(s): State<AppState>,
    Path(run_id): Path<String>,
    Msg(m): Msg<Properties>,
) -> ApiResult<Json<Value>> {
    let props = m
        .properties
        .into_iter()
        .map(|(k, v)| Tag::new(k, v))
        .collect();
    s.tracking.add_run_properties(&run_id, props).await?;
    Ok(Json(json!({})))
}

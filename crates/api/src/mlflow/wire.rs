//! MLflow's JSON shapes (protobuf JSON with snake_case names) and their conversions from domain
//! types. Unset fields are left out, int64s are numbers, and float specials are strings.

use kittiwake_domain::{
    DatasetInput, Experiment, LoggedModel, Metric, MetricPoint, ModelIo, Run, RunInfo, Tag,
    ViewType,
};
use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyValue {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: String,
}

impl From<&Tag> for KeyValue {
    fn from(t: &Tag) -> Self {
        Self {
            key: t.key.clone(),
            value: t.value.clone(),
        }
    }
}

impl From<KeyValue> for Tag {
    fn from(kv: KeyValue) -> Self {
        Tag::new(kv.key, kv.value)
    }
}

pub fn tags(items: &[Tag]) -> Vec<KeyValue> {
    items.iter().map(KeyValue::from).collect()
}

pub fn into_tags(items: Vec<KeyValue>) -> Vec<Tag> {
    items.into_iter().map(Tag::from).collect()
}

/// Writes NaN and infinities as protobuf JSON does: "NaN", "Infinity", "-Infinity".
pub fn float<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_str("NaN")
    } else if v.is_infinite() {
        s.serialize_str(if *v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        s.serialize_f64(*v)
    }
}

#[derive(Serialize)]
pub struct ExperimentJson {
    experiment_id: String,
    name: String,
    artifact_location: String,
    lifecycle_stage: &'static str,
    last_update_time: i64,
    creation_time: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<KeyValue>,
}

impl From<&Experiment> for ExperimentJson {
    fn from(e: &Experiment) -> Self {
        Self {
            experiment_id: e.experiment_id.to_string(),
            name: e.name.clone(),
            artifact_location: e.artifact_location.clone(),
            lifecycle_stage: e.lifecycle_stage.as_str(),
            last_update_time: e.last_update_time,
            creation_time: e.creation_time,
            tags: tags(&e.tags),
        }
    }
}

#[derive(Serialize)]
pub struct RunInfoJson {
    run_id: String,
    run_uuid: String,
    run_name: String,
    experiment_id: String,
    user_id: String,
    status: &'static str,
    start_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<i64>,
    artifact_uri: String,
    lifecycle_stage: &'static str,
}

impl From<&RunInfo> for RunInfoJson {
    fn from(i: &RunInfo) -> Self {
        Self {
            run_id: i.run_id.clone(),
            run_uuid: i.run_id.clone(),
            run_name: i.run_name.clone(),
            experiment_id: i.experiment_id.to_string(),
            user_id: i.user_id.clone(),
            status: i.status.as_str(),
            start_time: i.start_time,
            end_time: i.end_time,
            artifact_uri: i.artifact_uri.clone(),
            lifecycle_stage: i.lifecycle_stage.as_str(),
        }
    }
}

#[derive(Serialize)]
pub struct MetricJson<'a> {
    key: &'a str,
    #[serde(serialize_with = "float")]
    value: f64,
    timestamp: i64,
    step: i64,
}

impl<'a> MetricJson<'a> {
    pub fn new(key: &'a str, p: &MetricPoint) -> Self {
        Self {
            key,
            value: p.value,
            timestamp: p.timestamp,
            step: p.step,
        }
    }
}

impl<'a> From<&'a Metric> for MetricJson<'a> {
    fn from(m: &'a Metric) -> Self {
        Self::new(&m.key, &m.point)
    }
}

#[derive(Serialize)]
struct RunDataJson<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    metrics: Vec<MetricJson<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    params: Vec<KeyValue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<KeyValue>,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct DatasetJson {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub source_type: String,
    #[serde(default)]
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub schema: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub profile: Option<String>,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct DatasetInputJson {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
    pub dataset: DatasetJson,
}

impl From<&DatasetInput> for DatasetInputJson {
    fn from(d: &DatasetInput) -> Self {
        let ds = &d.dataset;
        Self {
            tags: tags(&d.tags),
            dataset: DatasetJson {
                name: ds.name.clone(),
                digest: ds.digest.clone(),
                source_type: ds.source_type.clone(),
                source: ds.source.clone(),
                schema: ds.schema.clone(),
                profile: ds.profile.clone(),
            },
        }
    }
}

impl From<DatasetInputJson> for DatasetInput {
    fn from(d: DatasetInputJson) -> Self {
        DatasetInput {
            tags: into_tags(d.tags),
            dataset: kittiwake_domain::Dataset {
                name: d.dataset.name,
                digest: d.dataset.digest,
                source_type: d.dataset.source_type,
                source: d.dataset.source,
                schema: d.dataset.schema,
                profile: d.dataset.profile,
            },
        }
    }
}

#[derive(Serialize, Deserialize, Clone)]
pub struct ModelIoJson {
    #[serde(default)]
    pub model_id: String,
    #[serde(default, deserialize_with = "crate::extract::num")]
    pub step: i64,
}

impl From<&ModelIo> for ModelIoJson {
    fn from(m: &ModelIo) -> Self {
        Self {
            model_id: m.model_id.clone(),
            step: m.step,
        }
    }
}

impl From<ModelIoJson> for ModelIo {
    fn from(m: ModelIoJson) -> Self {
        ModelIo {
            model_id: m.model_id,
            step: m.step,
        }
    }
}

#[derive(Serialize)]
struct RunInputsJson {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dataset_inputs: Vec<DatasetInputJson>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    model_inputs: Vec<ModelInputJson>,
}

#[derive(Serialize)]
struct ModelInputJson {
    model_id: String,
}

#[derive(Serialize)]
struct RunOutputsJson {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    model_outputs: Vec<ModelIoJson>,
}

#[derive(Serialize)]
pub struct RunJson<'a> {
    info: RunInfoJson,
    data: RunDataJson<'a>,
    inputs: RunInputsJson,
    outputs: RunOutputsJson,
}

impl<'a> From<&'a Run> for RunJson<'a> {
    fn from(r: &'a Run) -> Self {
        Self {
            info: (&r.info).into(),
            data: RunDataJson {
                metrics: r.metrics.iter().map(MetricJson::from).collect(),
                params: tags(&r.params),
                tags: tags(&r.tags),
            },
            inputs: RunInputsJson {
                dataset_inputs: r
                    .dataset_inputs
                    .iter()
                    .map(DatasetInputJson::from)
                    .collect(),
                model_inputs: r
                    .model_inputs
                    .iter()
                    .map(|m| ModelInputJson {
                        model_id: m.model_id.clone(),
                    })
                    .collect(),
            },
            outputs: RunOutputsJson {
                model_outputs: r.model_outputs.iter().map(ModelIoJson::from).collect(),
            },
        }
    }
}

#[derive(Serialize)]
struct LoggedModelInfoJson {
    model_id: String,
    experiment_id: String,
    name: String,
    creation_timestamp_ms: i64,
    last_updated_timestamp_ms: i64,
    artifact_uri: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_message: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<KeyValue>,
}

#[derive(Serialize)]
struct LoggedModelDataJson {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    params: Vec<KeyValue>,
}

#[derive(Serialize)]
pub struct LoggedModelJson {
    info: LoggedModelInfoJson,
    data: LoggedModelDataJson,
}

impl From<&LoggedModel> for LoggedModelJson {
    fn from(m: &LoggedModel) -> Self {
        Self {
            info: LoggedModelInfoJson {
                model_id: m.model_id.clone(),
                experiment_id: m.experiment_id.to_string(),
                name: m.name.clone(),
                creation_timestamp_ms: m.creation_timestamp,
                last_updated_timestamp_ms: m.last_updated_timestamp,
                artifact_uri: m.artifact_location.clone(),
                status: m.status.as_str(),
                model_type: m.model_type.clone(),
                source_run_id: m.source_run_id.clone(),
                status_message: m.status_message.clone(),
                tags: tags(&m.tags),
            },
            data: LoggedModelDataJson {
                params: tags(&m.params),
            },
        }
    }
}

/// `ViewType` arrives as its name or its number.
pub fn view_type(raw: Option<&str>) -> Result<ViewType, crate::error::ApiError> {
    match raw.unwrap_or("") {
        "" | "1" | "ACTIVE_ONLY" => Ok(ViewType::ActiveOnly),
        "2" | "DELETED_ONLY" => Ok(ViewType::DeletedOnly),
        "3" | "ALL" => Ok(ViewType::All),
        other => Err(crate::error::ApiError::invalid(format!(
            "Invalid view type '{other}': expected ACTIVE_ONLY, DELETED_ONLY or ALL"
        ))),
    }
}

/// Deserializes an enum field sent as a name string or a number into its text.
pub fn enum_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<serde_json::Value> = Option::deserialize(d)?;
    Ok(match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// `{"<name>": value}`, serialized straight from `value` without building a JSON tree first.
pub struct Named<T>(pub &'static str, pub T);

impl<T: Serialize> Serialize for Named<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.0, &self.1)?;
        map.end()
    }
}

/// One page of a search answer: the items under `field` and the next page's token, each left out
/// when empty, as MLflow does.
pub struct PageJson<T> {
    pub field: &'static str,
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

impl<T: Serialize> Serialize for PageJson<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        if !self.items.is_empty() {
            map.serialize_entry(self.field, &self.items)?;
        }
        if let Some(token) = &self.next_page_token {
            map.serialize_entry("next_page_token", token)?;
        }
        map.end()
    }
}

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// Milliseconds since the Unix epoch, the unit of every timestamp in Kittiwake.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Whether an experiment or run is live or in the bin (soft-deleted, restorable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleStage {
    Active,
    Deleted,
}

impl LifecycleStage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deleted => "deleted",
        }
    }
}

impl FromStr for LifecycleStage {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "active" => Ok(Self::Active),
            "deleted" => Ok(Self::Deleted),
            other => Err(Error::internal(format!(
                "unknown lifecycle stage '{other}'"
            ))),
        }
    }
}

/// Which lifecycle stages a listing includes (MLflow's `ViewType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewType {
    #[default]
    ActiveOnly,
    DeletedOnly,
    All,
}

impl ViewType {
    pub fn stages(self) -> &'static [LifecycleStage] {
        match self {
            Self::ActiveOnly => &[LifecycleStage::Active],
            Self::DeletedOnly => &[LifecycleStage::Deleted],
            Self::All => &[LifecycleStage::Active, LifecycleStage::Deleted],
        }
    }
}

/// A run's state machine. Names follow MLflow; AzureML's names are offered by [`RunStatus::azureml_name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Scheduled,
    Finished,
    Failed,
    Killed,
}

impl RunStatus {
    pub const ALL: [RunStatus; 5] = [
        Self::Running,
        Self::Scheduled,
        Self::Finished,
        Self::Failed,
        Self::Killed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Scheduled => "SCHEDULED",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
        }
    }

    /// The status string AzureML SDK v1 users know for this state.
    pub fn azureml_name(self) -> &'static str {
        match self {
            Self::Running => "Running",
            Self::Scheduled => "Queued",
            Self::Finished => "Completed",
            Self::Failed => "Failed",
            Self::Killed => "Canceled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Finished | Self::Failed | Self::Killed)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s || st.azureml_name() == s)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Invalid run status '{s}': expected one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED"
                ))
            })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Experiment {
    pub experiment_id: i64,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: LifecycleStage,
    pub creation_time: Millis,
    pub last_update_time: Millis,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone)]
pub struct RunInfo {
    pub run_id: String,
    pub experiment_id: i64,
    pub run_name: String,
    pub user_id: String,
    pub status: RunStatus,
    pub start_time: Millis,
    pub end_time: Option<Millis>,
    pub artifact_uri: String,
    pub lifecycle_stage: LifecycleStage,
}

/// One point of a scalar metric series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricPoint {
    pub step: i64,
    pub timestamp: Millis,
    pub value: f64,
}

/// A metric's value as a run reports it: its key and the point that counts as latest.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub key: String,
    pub point: MetricPoint,
}

/// Points of one metric key, as logged in one call.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSeries {
    pub key: String,
    pub points: Vec<MetricPoint>,
}

/// AzureML's non-scalar metric kinds; their value is kept as the JSON the SDK sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RichMetricKind {
    List,
    Row,
    Table,
    Image,
}

impl RichMetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Row => "row",
            Self::Table => "table",
            Self::Image => "image",
        }
    }
}

impl FromStr for RichMetricKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "list" => Ok(Self::List),
            "row" => Ok(Self::Row),
            "table" => Ok(Self::Table),
            "image" => Ok(Self::Image),
            other => Err(Error::invalid(format!(
                "Invalid metric kind '{other}': expected list, row, table or image"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RichMetric {
    pub name: String,
    pub kind: RichMetricKind,
    /// The value as JSON text (a list, a row object, a table of columns, an image reference).
    pub value_json: String,
    pub description: String,
    pub timestamp: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    pub schema: Option<String>,
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInput {
    pub tags: Vec<Tag>,
    pub dataset: Dataset,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelIo {
    pub model_id: String,
    pub step: i64,
}

/// Everything a run holds apart from its artifacts.
#[derive(Debug, Clone)]
pub struct Run {
    pub info: RunInfo,
    pub metrics: Vec<Metric>,
    pub params: Vec<Tag>,
    pub tags: Vec<Tag>,
    pub dataset_inputs: Vec<DatasetInput>,
    pub model_inputs: Vec<ModelIo>,
    pub model_outputs: Vec<ModelIo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoggedModelStatus {
    Pending,
    Ready,
    Failed,
}

impl LoggedModelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "LOGGED_MODEL_PENDING",
            Self::Ready => "LOGGED_MODEL_READY",
            Self::Failed => "LOGGED_MODEL_UPLOAD_FAILED",
        }
    }
}

impl FromStr for LoggedModelStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "LOGGED_MODEL_PENDING" => Ok(Self::Pending),
            "LOGGED_MODEL_READY" => Ok(Self::Ready),
            "LOGGED_MODEL_UPLOAD_FAILED" => Ok(Self::Failed),
            other => Err(Error::invalid(format!(
                "Invalid logged model status '{other}'"
            ))),
        }
    }
}

/// An MLflow 3 logged model: a model's artifacts and metadata, optionally tied to the run that made it.
#[derive(Debug, Clone)]
pub struct LoggedModel {
    pub model_id: String,
    pub experiment_id: i64,
    pub name: String,
    pub artifact_location: String,
    pub creation_timestamp: Millis,
    pub last_updated_timestamp: Millis,
    pub status: LoggedModelStatus,
    pub status_message: Option<String>,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub tags: Vec<Tag>,
    pub params: Vec<Tag>,
}

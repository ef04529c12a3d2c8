//! Submitted jobs: their AzureML statuses, what a submission holds, and source snapshots.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Millis, Result};

/// AzureML's limits on a source snapshot.
pub const SNAPSHOT_MAX_BYTES: u64 = 300 * 1024 * 1024;
pub const SNAPSHOT_MAX_FILES: usize = 2000;
/// AzureML's default for `max_run_duration_seconds`: 30 days.
pub const DEFAULT_MAX_RUN_DURATION_SECONDS: i64 = 2_592_000;

/// A submitted run's state machine, with AzureML's names. A job moves forward only:
/// Queued → Preparing → Starting → Running → Finalizing → one of Completed, Failed, Canceled; it
/// may fail or be canceled from any state that is not terminal. Its run's MLflow status follows
/// (the store keeps them in step): SCHEDULED until Running, RUNNING until it ends, then FINISHED,
/// FAILED or KILLED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JobStatus {
    Queued,
    Preparing,
    Starting,
    Running,
    Finalizing,
    Completed,
    Failed,
    Canceled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 8] = [
        Self::Queued,
        Self::Preparing,
        Self::Starting,
        Self::Running,
        Self::Finalizing,
        Self::Completed,
        Self::Failed,
        Self::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "Queued",
            Self::Preparing => "Preparing",
            Self::Starting => "Starting",
            Self::Running => "Running",
            Self::Finalizing => "Finalizing",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Canceled => "Canceled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled)
    }

    /// Whether a job in this state holds a slot of its compute target (its agent has been started).
    pub fn holds_slot(self) -> bool {
        !self.is_terminal() && self != Self::Queued
    }

    /// Whether a job may go from `self` to `next`.
    pub fn may_become(self, next: JobStatus) -> bool {
        !self.is_terminal() && (next > self || next.is_terminal())
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Invalid job status '{s}': expected one of Queued, Preparing, Starting, Running, Finalizing, Completed, Failed, Canceled"
                ))
            })
    }
}

/// One file of a source snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    /// The path inside the snapshot, with `/` separators.
    pub path: String,
    /// SHA-256 of the content, lower-case hex.
    pub sha256: String,
    pub size: u64,
    #[serde(default)]
    pub executable: bool,
}

pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks a snapshot's file list: relative paths that stay inside the snapshot, no path twice,
/// well-formed hashes, and AzureML's limits (naming the largest files when over them).
pub fn check_snapshot(files: &[SnapshotFile]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for f in files {
        check_relative_path(&f.path)?;
        if !seen.insert(f.path.as_str()) {
            return Err(Error::invalid(format!(
                "The snapshot lists '{}' twice",
                f.path
            )));
        }
        if !is_sha256(&f.sha256) {
            return Err(Error::invalid(format!(
                "Invalid sha256 '{}' for '{}': expected 64 lower-case hex characters",
                f.sha256, f.path
            )));
        }
    }
    let total: u64 = files.iter().map(|f| f.size).sum();
    if files.len() > SNAPSHOT_MAX_FILES || total > SNAPSHOT_MAX_BYTES {
        let mut largest: Vec<&SnapshotFile> = files.iter().collect();
        largest.sort_by_key(|f| std::cmp::Reverse(f.size));
        let names: Vec<String> = largest
            .iter()
            .take(5)
            .map(|f| format!("{} ({})", f.path, human_bytes(f.size)))
            .collect();
        return Err(Error::invalid(format!(
            "The source directory holds {} files, {} in all; the limits are {SNAPSHOT_MAX_FILES} files and {}. \
             Largest: {}. List what the run does not need in .amlignore (or .gitignore)",
            files.len(),
            human_bytes(total),
            human_bytes(SNAPSHOT_MAX_BYTES),
            names.join(", ")
        )));
    }
    Ok(())
}

/// Checks that `path` is relative, uses `/`, and has no empty, `.` or `..` component.
pub fn check_relative_path(path: &str) -> Result<()> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.contains('\0')
        || path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        Err(Error::invalid(format!(
            "Invalid path '{path}': expected a relative path inside the folder, with '/' separators and no '..'"
        )))
    } else {
        Ok(())
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// What a submitted run executes: the script and its arguments inside a snapshot, with an
/// environment, on a compute target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDefinition {
    pub snapshot_id: String,
    pub script: String,
    #[serde(default)]
    pub arguments: Vec<String>,
    pub compute_target: String,
    /// The environment as AzureML serializes it (`azureml_environment.json`).
    pub environment: serde_json::Value,
    #[serde(default)]
    pub environment_variables: std::collections::BTreeMap<String, String>,
    pub max_run_duration_seconds: i64,
    #[serde(default)]
    pub gpu_count: u32,
    /// Datasets laid out as local folders before the script starts.
    #[serde(default)]
    pub inputs: Vec<JobInput>,
    /// Folders the script writes that are uploaded to a datastore when it ends.
    #[serde(default)]
    pub outputs: Vec<JobOutput>,
}

/// A dataset a job reads, with its files as they were resolved at submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInput {
    /// The name the script knows it by (`as_named_input`).
    pub name: String,
    /// `download` or `mount`: both give the script a local, read-only folder.
    pub mode: String,
    /// Where to lay the files out, relative to the working directory (default `inputs/<name>`).
    #[serde(default)]
    pub path_on_compute: Option<String>,
    /// The registered dataset and version, when it is one.
    #[serde(default)]
    pub dataset: Option<(String, i64)>,
    pub files: Vec<InputFile>,
    /// How the files changed since the dataset version was registered, if they did.
    #[serde(default)]
    pub changes: Vec<String>,
}

/// One file of a job input: where it is, and where it goes below the input's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    pub datastore: String,
    pub path: String,
    pub relative: String,
}

/// A folder a job writes (`OutputFileDatasetConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOutput {
    pub name: String,
    pub datastore: String,
    /// The folder in the datastore the files go to.
    pub destination: String,
    /// Registered as a new version of this dataset when the run completes.
    #[serde(default)]
    pub register_as: Option<String>,
}

impl JobOutput {
    /// The destination folder for a run, with AzureML's `{run-id}` and `{output-name}` filled in.
    pub fn destination_for(&self, run_id: &str) -> String {
        self.destination
            .replace("{run-id}", run_id)
            .replace("{output-name}", &self.name)
            .trim_matches('/')
            .to_string()
    }
}

/// Input and output names become folder and variable names, so they are identifiers.
pub fn check_io_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Invalid input or output name '{name}': use letters, digits and '_', starting with a letter"
        )))
    }
}

/// A job as the service reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub run_id: String,
    pub experiment_id: i64,
    pub status: JobStatus,
    pub definition: JobDefinition,
    /// GPU indices assigned to the job, once it holds a slot.
    pub gpus: Vec<u32>,
    pub cancel_requested: bool,
    pub failure_reason: Option<String>,
    pub exit_code: Option<i64>,
    pub queued_at: Millis,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    pub log_bytes: i64,
    /// Each status the job passed through, with when, in order.
    pub history: Vec<(JobStatus, Millis)>,
}

/// A compute target: where jobs run and how many at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputeTarget {
    pub name: String,
    pub kind: String,
    pub slots: u32,
    /// GPU indices this target hands out, one job each.
    pub gpus: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_only_move_forward() {
        use JobStatus::*;
        assert!(Queued.may_become(Preparing));
        assert!(Queued.may_become(Canceled));
        assert!(Running.may_become(Failed));
        assert!(!Running.may_become(Preparing));
        assert!(!Completed.may_become(Failed));
        assert!(!Canceled.may_become(Running));
        assert!(!Queued.holds_slot() && Preparing.holds_slot() && !Failed.holds_slot());
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), s);
        }
    }

    #[test]
    fn snapshot_paths_stay_inside() {
        for bad in ["", "/etc/passwd", "a/../b", "..", "a//b", "./a", "a\\b"] {
            assert!(check_relative_path(bad).is_err(), "{bad}");
        }
        for good in ["train.py", "assets/utils.py", ".amlignore", "a/.b/c"] {
            check_relative_path(good).unwrap();
        }
    }

    #[test]
    fn an_oversized_snapshot_names_its_largest_files() {
        let file = |path: &str, size| SnapshotFile {
            path: path.into(),
            sha256: "0".repeat(64),
            size,
            executable: false,
        };
        let files = vec![
            file("train.py", 10),
            file("data/big.bin", 400 * 1024 * 1024),
        ];
        let err = check_snapshot(&files).unwrap_err().message;
        assert!(err.contains("data/big.bin (400.0 MB)"), "{err}");
        let many: Vec<_> = (0..2001).map(|i| file(&format!("f{i}"), 1)).collect();
        assert!(
            check_snapshot(&many)
                .unwrap_err()
                .message
                .contains("2001 files")
        );
        check_snapshot(&files[..1]).unwrap();
    }
}

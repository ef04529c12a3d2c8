//! Identifier formats shared with MLflow: runs are 32 hex characters, experiments are integers written
//! as strings, logged models are `m-` followed by 32 hex characters.

use crate::{Error, Result};

pub const LOGGED_MODEL_PREFIX: &str = "m-";

pub fn is_run_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks a run id and names the parameter it came from when it is malformed.
pub fn check_run_id(s: &str) -> Result<&str> {
    if is_run_id(s) {
        Ok(s)
    } else {
        Err(Error::invalid(format!(
            "Invalid value '{s}' for parameter 'run_id': a run id is 32 hexadecimal characters"
        )))
    }
}

pub fn parse_experiment_id(s: &str) -> Result<i64> {
    s.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| Error::invalid(format!("Experiment ID must be a valid integer, got '{s}'")))
}

pub fn is_logged_model_id(s: &str) -> bool {
    s.strip_prefix(LOGGED_MODEL_PREFIX).is_some_and(is_run_id)
}

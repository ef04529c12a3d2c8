//! MLflow's limits on names and values, so data logged here also fits an MLflow server and back.

use crate::{Error, Result};

pub const MAX_KEY_LENGTH: usize = 250;
pub const MAX_PARAM_VALUE_LENGTH: usize = 6000;
pub const MAX_RUN_TAG_VALUE_LENGTH: usize = 8000;
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;
pub const MAX_EXPERIMENT_TAG_VALUE_LENGTH: usize = 20000;
pub const MAX_BATCH_METRICS: usize = 1000;
pub const MAX_BATCH_PARAMS: usize = 100;
pub const MAX_BATCH_TAGS: usize = 100;
pub const MAX_BATCH_ENTITIES: usize = 1000;
pub const MAX_SEARCH_RESULTS: i64 = 50000;

/// Checks a metric, param or tag key: at most 250 characters of `[/\w.\- :]`, and a relative path
/// that does not climb out of itself (MLflow stores keys as file names in some backends).
pub fn check_key(what: &str, key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid(format!(
            "Missing value for required parameter '{what}'"
        )));
    }
    if key.chars().count() > MAX_KEY_LENGTH {
        return Err(Error::invalid(format!(
            "'{what}' exceeds the maximum length of {MAX_KEY_LENGTH} characters"
        )));
    }
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '-' | ' ' | ':');
    if !key.chars().all(allowed) {
        return Err(Error::invalid(format!(
            "Invalid {what} '{key}': names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)"
        )));
    }
    if key.starts_with('/') || key.split('/').any(|part| part == ".." || part == ".") {
        return Err(Error::invalid(format!(
            "Invalid {what} '{key}': names may not be absolute or contain '.' or '..' path segments"
        )));
    }
    Ok(())
}

/// Checks a value's length; MLflow's limits count characters.
pub fn check_value_length(what: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max && value.chars().count() > max {
        return Err(Error::invalid(format!(
            "'{what}' exceeds the maximum length of {max} characters"
        )));
    }
    Ok(())
}

pub fn check_experiment_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid("Invalid experiment name: must not be empty"));
    }
    check_value_length("experiment name", name, MAX_EXPERIMENT_NAME_LENGTH)
}

pub fn check_max_results(max_results: i64) -> Result<()> {
    if !(1..=MAX_SEARCH_RESULTS).contains(&max_results) {
        return Err(Error::invalid(format!(
            "Invalid value {max_results} for parameter 'max_results' supplied: it must be between 1 and {MAX_SEARCH_RESULTS}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_mlflow_rules() {
        assert!(check_key("metric name", "loss/train:epoch 1.5-a").is_ok());
        assert!(check_key("metric name", "").is_err());
        assert!(check_key("metric name", "a/../b").is_err());
        assert!(check_key("metric name", "/abs").is_err());
        assert!(check_key("metric name", "bad!").is_err());
        assert!(check_key("metric name", &"k".repeat(251)).is_err());
        assert!(check_key("metric name", &"k".repeat(250)).is_ok());
    }

    #[test]
    fn max_results_range() {
        assert!(check_max_results(0).is_err());
        assert!(check_max_results(50001).is_err());
        assert!(check_max_results(50000).is_ok());
    }
}

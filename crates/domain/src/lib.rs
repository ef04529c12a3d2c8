//! Kittiwake's vocabulary: the entities a workspace holds (experiments, runs, metrics, logged models),
//! the rules their values must obey, and the search grammar users write to find runs.
//!
//! This crate never does IO. Every other crate speaks in these types, so a rule written here (a key
//! length, a status name, what a filter may say) holds for the HTTP API, the CLI and the store alike.

mod entities;
mod error;
pub mod ids;
pub mod jobs;
pub mod search;
pub mod validation;

pub use entities::*;
pub use error::{Error, ErrorKind, Result};
pub use jobs::{ComputeTarget, InputFile, Job, JobDefinition, JobInput, JobOutput, JobStatus};

//! The tracking service: experiments, runs, what runs log, their artifacts and logged models.
//!
//! This is where the rules live: MLflow's limits, params that never change, runs that must be
//! active to be written to, artifact writes that stay inside a run's or model's root. It takes
//! plain values and returns domain types; it never sees HTTP. All writes go to the [`Store`] and
//! the [`BlobStore`], nothing is cached, so the server can be killed at any moment.

mod artifacts;
mod experiments;
mod logged_models;
mod names;
mod runs;

use kittiwake_blob::{BlobError, BlobStore};
use kittiwake_domain::Error;
use kittiwake_store::Store;

pub use artifacts::{ArtifactEntry, ArtifactStream};
pub use logged_models::NewLoggedModel;
pub use runs::{NewRunRequest, RunMetrics};

/// One page of a listing and the token for the next, if any.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

/// The scheme of artifact URIs served through the tracking server's artifact proxy.
pub const PROXY_SCHEME: &str = "mlflow-artifacts:/";

#[derive(Clone)]
pub struct Tracking {
    store: Store,
    blob: BlobStore,
}

impl Tracking {
    pub fn new(store: Store, blob: BlobStore) -> Self {
        Self { store, blob }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

pub(crate) fn blob_error(e: BlobError) -> Error {
    match e {
        BlobError::InvalidPath(path, why) => {
            Error::invalid(format!("Invalid path '{path}': {why}"))
        }
        BlobError::NotFound(path) => Error::not_found(format!("Artifact '{path}' does not exist")),
        BlobError::Storage(msg) => Error::internal(msg),
    }
}

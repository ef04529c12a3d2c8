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
use kittiwake_domain::search::{
    Clause, OrderBy, Target, decode_page_token, encode_page_token, parse_filter, parse_order_by,
};
use kittiwake_domain::validation::check_max_results;
use kittiwake_domain::{Error, Result, ids};
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

impl<T> Page<T> {
    /// The page that starts at `offset`; `more` says whether rows follow it.
    fn after(offset: i64, items: Vec<T>, more: bool) -> Self {
        let next_page_token = more.then(|| encode_page_token(offset + items.len() as i64));
        Self {
            items,
            next_page_token,
        }
    }
}

/// A listing request as the caller wrote it: MLflow's filter, order and paging fields.
#[derive(Debug, Clone, Copy)]
pub struct SearchRequest<'a> {
    pub filter: &'a str,
    pub order_by: &'a [String],
    pub max_results: i64,
    pub page_token: Option<&'a str>,
}

/// A [`SearchRequest`] checked and parsed for one kind of listing.
struct ParsedSearch {
    filter: Vec<Clause>,
    order_by: Vec<OrderBy>,
    offset: i64,
    limit: i64,
}

impl SearchRequest<'_> {
    fn parse(&self, target: Target) -> Result<ParsedSearch> {
        check_max_results(self.max_results)?;
        Ok(ParsedSearch {
            filter: parse_filter(self.filter, target)?,
            order_by: parse_order_by(self.order_by, target)?,
            offset: decode_page_token(self.page_token)?,
            limit: self.max_results,
        })
    }
}

fn parse_experiment_ids(raw: &[String]) -> Result<Vec<i64>> {
    raw.iter().map(|id| ids::parse_experiment_id(id)).collect()
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

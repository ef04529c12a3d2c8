//! The HTTP layer: the only code that knows HTTP and JSON shapes.
//!
//! It serves MLflow's tracking REST API (so the stock `mlflow` client works) and Kittiwake's own
//! API for the Python SDK. Handlers are thin: they read a request message, call a service, and
//! shape the answer; errors become responses in one place ([`error`]). Every route is registered
//! with the action it performs, and one middleware authenticates the caller and authorizes that
//! action before any handler runs; `/health` alone is open.

mod body;
mod data;
mod error;
mod extract;
mod jobs;
mod mlflow;
mod native;
mod routes;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kittiwake_auth::Auth;
use kittiwake_data::Data;
use kittiwake_domain::{Error, ErrorKind};
use kittiwake_jobs::Jobs;
use kittiwake_tracking::Tracking;

pub use error::ApiError;
use routes::{ActionTable, Routes, action_key};

/// Size limits on what clients send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest JSON request body.
    pub max_json_bytes: usize,
    /// Largest single artifact upload.
    pub max_artifact_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_json_bytes: 64 * 1024 * 1024,
            max_artifact_bytes: 50 * 1024 * 1024 * 1024,
        }
    }
}

/// Who this workspace is, as the SDK sees it.
#[derive(Debug, Clone)]
pub struct WorkspaceInfo {
    pub name: String,
    pub id: String,
}

#[derive(Clone)]
pub struct AppState {
    pub tracking: Tracking,
    pub jobs: Jobs,
    pub data: Data,
    pub auth: Auth,
    pub limits: Limits,
    pub workspace: WorkspaceInfo,
}

#[derive(Clone)]
struct Guard {
    auth: Auth,
    actions: ActionTable,
}

/// Authenticates the bearer token and authorizes the route's action; refuses routes with none.
async fn authorize(
    State(guard): State<Guard>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(action) = matched
        .as_ref()
        .and_then(|m| guard.actions.get(&action_key(req.method(), m.as_str())))
    else {
        return ApiError(Error::new(
            ErrorKind::PermissionDenied,
            "This route performs no known action",
        ))
        .into_response();
    };
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return ApiError(Error::new(
            ErrorKind::Unauthenticated,
            "Missing API token: send 'Authorization: Bearer <token>' (for the mlflow client, set MLFLOW_TRACKING_TOKEN)",
        ))
        .into_response();
    };
    match guard.auth.authenticate(token).await {
        Ok(principal) => match guard.auth.authorize(&principal, action) {
            Ok(()) => {
                req.extensions_mut().insert(principal);
                next.run(req).await
            }
            Err(e) => ApiError(e).into_response(),
        },
        Err(e) => ApiError(e).into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError(Error::new(ErrorKind::NotFound, "No such endpoint"))
}

pub fn router(state: AppState) -> Router {
    let (api, actions) =
        data::routes(jobs::routes(native::routes(mlflow::routes(Routes::new())))).finish();
    let guard = Guard {
        auth: state.auth.clone(),
        actions,
    };
    api.route_layer(middleware::from_fn_with_state(guard, authorize))
        .layer(DefaultBodyLimit::max(state.limits.max_json_bytes))
        .route("/health", get(|| async { "OK" }))
        .fallback(not_found)
        .with_state(state)
}

//! Route registration that pairs every route with the action it performs, so that authorization
//! is decided in one middleware from one table, and a route without an action is refused.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};

use crate::AppState;

/// Which action each `METHOD path-pattern` performs, e.g. `POST /api/2.0/mlflow/runs/create` →
/// `experiments/runs/write`.
pub type ActionTable = Arc<HashMap<String, &'static str>>;

pub fn action_key(method: &Method, path: &str) -> String {
    format!("{method} {path}")
}

pub struct Routes {
    router: Router<AppState>,
    actions: HashMap<String, &'static str>,
}

impl Routes {
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            actions: HashMap::new(),
        }
    }

    /// Serves `method path` with `handler`, which performs `action`.
    pub fn add<H, T>(mut self, method: Method, path: &str, action: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        self.actions.insert(action_key(&method, path), action);
        self.router = self.router.route(path, on(filter, handler));
        self
    }

    pub fn finish(self) -> (Router<AppState>, ActionTable) {
        (self.router, Arc::new(self.actions))
    }
}

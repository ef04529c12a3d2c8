//! The agent's calls to the workspace server. Calls that report progress outlive a server restart:
//! they retry while the server cannot be reached or answers 5xx, for up to [`PATIENCE`].

use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// How long the agent keeps retrying a report while the server is away.
pub const PATIENCE: Duration = Duration::from_secs(600);

#[derive(Clone)]
pub struct Server {
    http: reqwest::Client,
    pub url: String,
    pub token: String,
    pub run_id: String,
}

#[derive(Debug)]
pub enum CallError {
    /// The server answered 4xx: retrying will not help.
    Refused(StatusCode, String),
    /// The server could not be reached (or failed) for longer than [`PATIENCE`].
    Unreachable(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(status, body) => write!(f, "the server refused ({status}): {body}"),
            Self::Unreachable(why) => write!(f, "the server could not be reached: {why}"),
        }
    }
}

impl Server {
    pub fn new(url: &str, token: &str, run_id: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            run_id: run_id.to_string(),
        }
    }

    pub fn job_path(&self, rest: &str) -> String {
        format!("/api/kittiwake/v1/jobs/{}/agent{rest}", self.run_id)
    }

    /// Sends a request, retrying while the server is unreachable or failing.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        content_type: &str,
    ) -> Result<Bytes, CallError> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut pause = Duration::from_millis(100);
        loop {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.url))
                .bearer_auth(&self.token);
            if let Some(body) = &body {
                req = req.header("Content-Type", content_type).body(body.clone());
            }
            let why = match req.send().await {
                Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                    Ok(bytes) => return Ok(bytes),
                    Err(e) => e.to_string(),
                },
                Ok(resp) if resp.status().is_client_error() => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    return Err(CallError::Refused(status, text));
                }
                Ok(resp) => format!("HTTP {}", resp.status()),
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() + pause > deadline {
                return Err(CallError::Unreachable(why));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        let bytes = self.call(method, path, body, "application/json").await?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| CallError::Unreachable(format!("the server's answer is not JSON: {e}")))
    }
}

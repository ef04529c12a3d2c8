//! The CLI's connection to a workspace server: where it is, the token, and JSON calls that turn
//! server errors into one readable line.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde_json::Value;

use crate::config;

#[derive(Args, Clone)]
pub struct Connection {
    /// Server URL; by default read from the workspace config (.azureml/config.json).
    #[arg(long, env = "KITTIWAKE_URL", global = true)]
    url: Option<String>,
    /// API token; by default read from the file the workspace config names.
    #[arg(long, env = "KITTIWAKE_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

pub struct Client {
    base: String,
    token: String,
    pub http: reqwest::Client,
}

impl Connection {
    pub fn connect(&self) -> Result<Client> {
        let found = std::env::current_dir().ok().and_then(|d| config::find(&d));
        let cfg = found.as_deref().map(config::read).transpose()?;
        let base = match (
            &self.url,
            cfg.as_ref().and_then(|c| c.kittiwake_url.clone()),
        ) {
            (Some(url), _) => url.clone(),
            (None, Some(url)) => url,
            (None, None) => bail!(
                "no workspace found: pass --url (or set KITTIWAKE_URL), or run from a folder with .azureml/config.json"
            ),
        };
        let token = match (&self.token, cfg.as_ref().and_then(|c| c.token_file.clone())) {
            (Some(t), _) => t.clone(),
            (None, Some(file)) => read_token(&file)?,
            (None, None) => bail!("no API token: pass --token or set KITTIWAKE_TOKEN"),
        };
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        })
    }
}

fn read_token(file: &PathBuf) -> Result<String> {
    Ok(std::fs::read_to_string(file)
        .with_context(|| format!("reading the API token from {}", file.display()))?
        .trim()
        .to_string())
}

impl Client {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        self.send(self.request(reqwest::Method::GET, path).query(query))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.request(reqwest::Method::POST, path).json(body))
            .await
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.base))?;
        check(resp)
            .await?
            .json()
            .await
            .context("the server's answer is not JSON")
    }
}

/// Turns an error response into one line: the server's message, or its status.
pub async fn check(resp: reqwest::Response) -> Result<reqwest::Response> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let message = body["message"].as_str().unwrap_or("no message");
    Err(anyhow!("{message} ({status})"))
}

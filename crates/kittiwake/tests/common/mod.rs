//! Starts the real `kittiwake` binary on a free port in a temporary folder.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Sends a request and returns its status code.
pub async fn status(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.expect("request").status().as_u16()
}

pub struct Server {
    pub child: Child,
    pub url: String,
    pub token: String,
    pub dir: PathBuf,
    pub http: reqwest::Client,
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kittiwake"))
            .args(["server", "--port", "0"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start kittiwake");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().expect("a line").expect("utf-8");
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .to_string();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let token = std::fs::read_to_string(dir.join(".kittiwake/admin.token"))
            .expect("token file")
            .trim()
            .to_string();
        Server {
            child,
            url,
            token,
            dir: dir.to_path_buf(),
            http: reqwest::Client::new(),
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(format!("{}/health", self.url)).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server never became healthy");
    }

    /// Sends a request with the owner token and returns (status, JSON body or null).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            &format!("/api/2.0/mlflow{path}"),
            Some(body),
        )
        .await
    }

    pub async fn get(&self, path_and_query: &str) -> (u16, Value) {
        self.call(
            reqwest::Method::GET,
            &format!("/api/2.0/mlflow{path_and_query}"),
            None,
        )
        .await
    }

    /// Creates a run in the Default experiment and returns its id.
    pub async fn new_run(&self) -> String {
        let (status, body) = self
            .post("/runs/create", json!({"experiment_id": "0"}))
            .await;
        assert_eq!(status, 200, "{body}");
        body["run"]["info"]["run_id"]
            .as_str()
            .expect("run id")
            .to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

//! The job's status reports, sent in order by one background task, so that the agent never waits
//! on one except the last.

use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use kittiwake_domain::JobStatus;

use crate::client::Server;

pub struct Reporter {
    tx: mpsc::UnboundedSender<Value>,
    task: JoinHandle<Result<(), String>>,
}

impl Reporter {
    pub fn start(server: Server) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
        let task = tokio::spawn(async move {
            let mut last = Ok(());
            while let Some(body) = rx.recv().await {
                last = server
                    .json(Method::POST, &server.job_path("/status"), Some(&body))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string());
            }
            last
        });
        Self { tx, task }
    }

    /// Queues a report of a status the job has reached.
    pub fn report(&self, status: JobStatus) {
        let _ = self.tx.send(json!({"status": status.as_str()}));
    }

    /// Sends the job's final status after every earlier report; returns whether the server took it.
    pub async fn finish(
        self,
        status: JobStatus,
        failure_reason: Option<String>,
        exit_code: Option<i64>,
    ) -> Result<(), String> {
        let _ = self.tx.send(json!({
            "status": status.as_str(),
            "failure_reason": failure_reason,
            "exit_code": exit_code,
        }));
        drop(self.tx);
        self.task
            .await
            .map_err(|e| format!("the reporting task failed: {e}"))?
    }
}

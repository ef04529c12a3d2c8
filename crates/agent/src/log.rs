//! The run's log: everything written is kept in a local file and sent to the server in order, as
//! soon as it arrives, by one background task.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use reqwest::Method;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::client::Server;

/// At most this much goes in one request.
const CHUNK: usize = 256 * 1024;

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    /// The log offset of `pending[0]`.
    offset: i64,
    closed: bool,
    /// Set when the server refused the log for good; later writes only go to the file.
    failed: Option<String>,
}

pub struct LogShipper {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    file: Mutex<std::fs::File>,
    task: JoinHandle<()>,
}

impl LogShipper {
    /// Starts sending to the server, appending after `offset` bytes it already holds.
    pub fn start(server: Server, file: std::fs::File, offset: i64) -> Self {
        let state = Arc::new(Mutex::new(State {
            offset,
            ..State::default()
        }));
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(send_loop(server, state.clone(), wake.clone()));
        Self {
            state,
            wake,
            file: Mutex::new(file),
            task,
        }
    }

    pub fn write(&self, bytes: &[u8]) {
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(bytes);
        }
        if let Ok(mut s) = self.state.lock() {
            s.pending.extend_from_slice(bytes);
        }
        self.wake.notify_one();
    }

    /// Writes one line of the agent's own (its own lines start with `[kittiwake]`).
    pub fn line(&self, text: &str) {
        self.write(format!("[kittiwake] {text}\n").as_bytes());
    }

    /// Sends what is left and stops; returns why the server did not take the log, if it did not.
    pub async fn close(self) -> Option<String> {
        if let Ok(mut s) = self.state.lock() {
            s.closed = true;
        }
        self.wake.notify_one();
        let _ = self.task.await;
        if let Ok(mut f) = self.file.lock() {
            let _ = f.flush();
        }
        self.state.lock().ok().and_then(|s| s.failed.clone())
    }
}

async fn send_loop(server: Server, state: Arc<Mutex<State>>, wake: Arc<Notify>) {
    loop {
        let next = match state.lock() {
            Ok(s) if s.failed.is_some() => return,
            Ok(s) if s.pending.is_empty() && s.closed => return,
            Ok(s) if s.pending.is_empty() => None,
            Ok(s) => {
                let n = s.pending.len().min(CHUNK);
                Some((s.offset, Bytes::copy_from_slice(&s.pending[..n])))
            }
            Err(_) => return,
        };
        let Some((offset, chunk)) = next else {
            wake.notified().await;
            continue;
        };
        let path = format!("{}?offset={offset}", server.job_path("/log"));
        let result = server
            .call(
                Method::POST,
                &path,
                Some(chunk.clone()),
                "application/octet-stream",
            )
            .await;
        let Ok(mut s) = state.lock() else {
            return;
        };
        match result {
            Ok(_) => {
                s.pending.drain(..chunk.len());
                s.offset += chunk.len() as i64;
            }
            Err(e) => s.failed = Some(e.to_string()),
        }
    }
}

//! The `local` backend: agents are processes on the server's own machine.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kittiwake_domain::{Error, Result};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::process::Command;

use crate::{AgentLaunch, ComputeBackend};

/// Starts agents as child processes, each in its own process group so that it outlives an
/// interrupted server and can be reattached after a restart. Handles are `pid:<pid>:<start>`,
/// where `<start>` is the process's start time in clock ticks, so a reused pid is not mistaken
/// for the agent.
pub struct LocalBackend {
    exe: PathBuf,
    work_root: PathBuf,
    cache_dir: PathBuf,
    /// Agents this process started that have exited (reaped by a waiting task).
    exited: Arc<Mutex<HashSet<u32>>>,
}

impl LocalBackend {
    /// `exe` is the `kittiwake` binary; each job works in `work_root/<run id>` and shares
    /// environments and downloaded files in `cache_dir`.
    pub fn new(exe: PathBuf, work_root: PathBuf, cache_dir: PathBuf) -> Self {
        Self {
            exe,
            work_root,
            cache_dir,
            exited: Arc::new(Mutex::new(HashSet::new())),
        }
    }
}

fn parse_handle(handle: &str) -> Option<(u32, u64)> {
    let mut parts = handle.strip_prefix("pid:")?.split(':');
    let pid = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    Some((pid, start))
}

/// The process's start time (field 22 of `/proc/<pid>/stat`) and whether it is a zombie.
fn proc_start(pid: u32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; fields after it follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let zombie = fields.first() == Some(&"Z");
    Some((fields.get(19)?.parse().ok()?, zombie))
}

#[async_trait]
impl ComputeBackend for LocalBackend {
    async fn start(&self, launch: &AgentLaunch) -> Result<String> {
        let work_dir = self.work_root.join(&launch.run_id);
        std::fs::create_dir_all(&work_dir)
            .map_err(|e| Error::internal(format!("creating {}: {e}", work_dir.display())))?;
        let agent_log = std::fs::File::create(work_dir.with_extension("agent.log"))
            .map_err(|e| Error::internal(format!("creating the agent's log: {e}")))?;
        let agent_err = agent_log
            .try_clone()
            .map_err(|e| Error::internal(format!("opening the agent's log: {e}")))?;
        let mut child = Command::new(&self.exe)
            .arg("exec")
            .arg("--server")
            .arg(&launch.server_url)
            .arg("--run-id")
            .arg(&launch.run_id)
            .arg("--work-dir")
            .arg(&work_dir)
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .env("KITTIWAKE_RUN_TOKEN", &launch.token)
            .stdin(Stdio::null())
            .stdout(agent_log)
            .stderr(agent_err)
            .process_group(0)
            .spawn()
            .map_err(|e| {
                Error::internal(format!(
                    "cannot start the job agent {}: {e}",
                    self.exe.display()
                ))
            })?;
        let pid = child
            .id()
            .ok_or_else(|| Error::internal("the job agent exited at once"))?;
        let start = proc_start(pid).map(|(start, _)| start).unwrap_or(0);
        let exited = self.exited.clone();
        tokio::spawn(async move {
            let _ = child.wait().await;
            if let Ok(mut set) = exited.lock() {
                set.insert(pid);
            }
        });
        Ok(format!("pid:{pid}:{start}"))
    }

    async fn is_alive(&self, handle: &str) -> bool {
        let Some((pid, start)) = parse_handle(handle) else {
            return false;
        };
        if self.exited.lock().is_ok_and(|set| set.contains(&pid)) {
            return false;
        }
        matches!(proc_start(pid), Some((s, false)) if s == start)
    }

    async fn stop(&self, handle: &str, grace: Duration) {
        let Some((pid, _)) = parse_handle(handle) else {
            return;
        };
        if !self.is_alive(handle).await {
            return;
        }
        let Ok(raw) = i32::try_from(pid) else {
            return;
        };
        let _ = kill(Pid::from_raw(raw), Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if !self.is_alive(handle).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(
            pid,
            "the job agent did not stop in time; killing its process group"
        );
        let _ = killpg(Pid::from_raw(raw), Signal::SIGKILL);
    }
}

/// Parses `nvidia-smi --query-gpu=index --format=csv,noheader` output into GPU indices.
pub fn parse_gpu_indices(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

/// How long the server waits for `nvidia-smi` at start: a wedged driver can make it hang.
pub const GPU_DETECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The GPUs `nvidia-smi` reports on this machine; none when it is missing, fails, or does not
/// answer within [`GPU_DETECTION_TIMEOUT`] (then it is killed, and a warning says so).
pub async fn detect_gpus() -> Vec<u32> {
    detect_gpus_with("nvidia-smi", GPU_DETECTION_TIMEOUT).await
}

async fn detect_gpus_with(program: &str, timeout: Duration) -> Vec<u32> {
    let run = Command::new(program)
        .args(["--query-gpu=index", "--format=csv,noheader"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok(out)) if out.status.success() => {
            parse_gpu_indices(&String::from_utf8_lossy(&out.stdout))
        }
        Ok(_) => Vec::new(),
        Err(_) => {
            tracing::warn!(
                "{program} did not answer in {}s; the local target gets no GPUs (--local-gpus names them)",
                timeout.as_secs()
            );
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hung_gpu_query_is_given_up_on() {
        let dir = std::env::temp_dir().join(format!("kw-gpu-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = |name: &str, body: &str| {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path.to_string_lossy().into_owned()
        };
        let answers = script("answers", "printf '0\\n1\\n'");
        let hangs = script("hangs", "exec sleep 30");
        let second = Duration::from_secs(1);
        assert_eq!(detect_gpus_with(&answers, second).await, vec![0, 1]);
        let started = std::time::Instant::now();
        assert!(
            detect_gpus_with(&hangs, Duration::from_millis(200))
                .await
                .is_empty()
        );
        assert!(started.elapsed() < second, "{:?}", started.elapsed());
        assert!(
            detect_gpus_with("/nonexistent/nvidia-smi", second)
                .await
                .is_empty()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gpu_indices_come_from_nvidia_smi_csv() {
        assert_eq!(parse_gpu_indices("0\n1\n 2 \n\n"), vec![0, 1, 2]);
        assert!(parse_gpu_indices("").is_empty());
        assert!(parse_gpu_indices("NVIDIA-SMI has failed").is_empty());
    }

    #[test]
    fn handles_name_pid_and_start_time() {
        assert_eq!(parse_handle("pid:12:345"), Some((12, 345)));
        assert_eq!(parse_handle("slurm:12"), None);
        assert_eq!(parse_handle("pid:x:1"), None);
        let me = std::process::id();
        let (start, zombie) = proc_start(me).unwrap();
        assert!(start > 0 && !zombie);
    }

    #[tokio::test]
    async fn a_reused_pid_is_not_the_agent() {
        let backend = LocalBackend::new("true".into(), "/tmp".into(), "/tmp".into());
        let me = std::process::id();
        let (start, _) = proc_start(me).unwrap();
        assert!(backend.is_alive(&format!("pid:{me}:{start}")).await);
        assert!(!backend.is_alive(&format!("pid:{me}:{}", start + 1)).await);
        assert!(!backend.is_alive("pid:999999999:1").await);
    }
}

//! Compute backends: where a job's agent (`kittiwake exec`) runs.
//!
//! A backend does three things and nothing more: start the agent for a job, say whether an agent
//! it started still lives, and end one. Everything else (statuses, slots, logs, timeouts) belongs to
//! the jobs service and the agent, so a cluster backend (Slurm) only has to submit `kittiwake exec`
//! and poll the cluster. A backend names each agent it starts with a handle string that the jobs
//! service keeps in the database, so a restarted server can ask about agents started before it.

mod local;

use async_trait::async_trait;
use kittiwake_domain::Result;

pub use local::{LocalBackend, detect_gpus, parse_gpu_indices};

/// What starting a job's agent needs.
#[derive(Debug, Clone)]
pub struct AgentLaunch {
    pub run_id: String,
    /// The workspace server the agent reports to.
    pub server_url: String,
    /// The token the agent (and the run's script) uses; passed in the environment, never in argv.
    pub token: String,
}

#[async_trait]
pub trait ComputeBackend: Send + Sync {
    /// Starts the agent for a job and returns the handle that names it.
    async fn start(&self, launch: &AgentLaunch) -> Result<String>;
    /// Whether the agent named by `handle` is still running.
    async fn is_alive(&self, handle: &str) -> bool;
    /// Asks the agent to stop (it then ends the script's process tree); after `grace`, kills it.
    async fn stop(&self, handle: &str, grace: std::time::Duration);
}

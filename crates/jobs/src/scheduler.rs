//! The scheduler: starts queued jobs when their target has room, and looks after started ones.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kittiwake_auth::Role;
use kittiwake_compute::AgentLaunch;
use kittiwake_domain::{ComputeTarget, Job, JobStatus, Result, now_millis};
use kittiwake_store::{JobChange, JobRow};

use crate::{HEARTBEAT, Jobs, agent_name};

/// The agent handle recorded between marking a job started and its backend answering; a job still
/// holding it after a restart never got an agent.
const STARTING: &str = "starting";
/// How long a canceled job's agent has to stop its script before the backend kills it.
const CANCEL_GRACE: Duration = Duration::from_secs(10);
/// How long past `max_run_duration_seconds` the agent has to end the run itself.
const TIMEOUT_GRACE_MS: i64 = 15_000;

/// Which queued jobs to start on a target, and the GPUs each gets: in queue order, every job that
/// fits in the free slots and free GPUs (a job waiting for GPUs does not hold back one that needs
/// none). `running` are the target's started jobs.
pub fn plan_starts(
    target: &ComputeTarget,
    running: &[&Job],
    queued: &[&Job],
) -> Vec<(String, Vec<u32>)> {
    let mut free_slots = (target.slots as usize).saturating_sub(running.len());
    let busy: HashSet<u32> = running
        .iter()
        .flat_map(|j| j.gpus.iter().copied())
        .collect();
    let mut free_gpus: Vec<u32> = target
        .gpus
        .iter()
        .copied()
        .filter(|g| !busy.contains(g))
        .collect();
    let mut starts = Vec::new();
    for job in queued {
        if free_slots == 0 {
            break;
        }
        let want = job.definition.gpu_count as usize;
        if want > free_gpus.len() {
            continue;
        }
        let gpus: Vec<u32> = free_gpus.drain(..want).collect();
        free_slots -= 1;
        starts.push((job.run_id.clone(), gpus));
    }
    starts
}

impl Jobs {
    /// Runs the scheduler until the process ends: on every change, and at least every heartbeat.
    pub async fn run_scheduler(self) {
        loop {
            if let Err(e) = self.schedule().await {
                tracing::error!("scheduling jobs failed: {e}");
            }
            let _ = tokio::time::timeout(HEARTBEAT, self.inner.wake.notified()).await;
        }
    }

    /// One pass: fail or stop started jobs that need it, then start what fits.
    pub async fn schedule(&self) -> Result<()> {
        let jobs = self.inner.store.unfinished_jobs().await?;
        let targets: HashMap<String, ComputeTarget> = self
            .compute_targets()
            .await?
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        let now = now_millis();
        let mut running: HashMap<String, Vec<&Job>> = HashMap::new();
        let mut queued: HashMap<String, Vec<&Job>> = HashMap::new();
        for row in &jobs {
            let job = &row.job;
            let target = &job.definition.compute_target;
            if job.status == JobStatus::Queued {
                if !targets.contains_key(target) {
                    self.finish(
                        &job.run_id,
                        JobStatus::Failed,
                        failed(format!("Compute target '{target}' no longer exists")),
                    )
                    .await?;
                    continue;
                }
                queued.entry(target.clone()).or_default().push(job);
            } else if self.look_after(row, now).await? {
                running.entry(target.clone()).or_default().push(job);
            }
        }
        for (name, waiting) in &queued {
            let Some(target) = targets.get(name) else {
                continue;
            };
            let busy = running.get(name).cloned().unwrap_or_default();
            for (run_id, gpus) in plan_starts(target, &busy, waiting) {
                self.start(&run_id, gpus).await?;
            }
        }
        Ok(())
    }

    /// Checks a started job; returns whether it still holds its slot.
    async fn look_after(&self, row: &JobRow, now: i64) -> Result<bool> {
        let job = &row.job;
        let agent = row.agent.as_deref().unwrap_or(STARTING);
        let alive = agent != STARTING && self.inner.backend.is_alive(agent).await;
        if !alive {
            let (to, reason) = if job.cancel_requested {
                (JobStatus::Canceled, "Canceled".to_string())
            } else if agent == STARTING {
                (
                    JobStatus::Failed,
                    "The server stopped while it was starting the job's agent; submit the run again".into(),
                )
            } else {
                (
                    JobStatus::Failed,
                    format!(
                        "The job agent ({agent}) stopped without reporting how the run ended \
                         (killed, or the machine ran out of memory?); the log has everything it sent"
                    ),
                )
            };
            self.finish(&job.run_id, to, failed(reason)).await?;
            return Ok(false);
        }
        let heartbeat_age = now - row.heartbeat_at.unwrap_or(now);
        let limit_ms = job.definition.max_run_duration_seconds.saturating_mul(1000);
        let overdue = job
            .started_at
            .is_some_and(|s| now - s > limit_ms.saturating_add(TIMEOUT_GRACE_MS));
        let stuck_cancel = job.cancel_requested && heartbeat_age > CANCEL_GRACE.as_millis() as i64;
        if overdue || stuck_cancel {
            let backend = self.inner.backend.clone();
            let handle = agent.to_string();
            tokio::spawn(async move { backend.stop(&handle, CANCEL_GRACE).await });
        }
        Ok(true)
    }

    /// Marks a job started, then has its backend start the agent.
    async fn start(&self, run_id: &str, gpus: Vec<u32>) -> Result<()> {
        let moved = self
            .inner
            .store
            .move_job(
                run_id,
                JobStatus::Preparing,
                JobChange {
                    agent: Some((STARTING.into(), gpus)),
                    ..JobChange::default()
                },
            )
            .await?;
        if !moved {
            return Ok(());
        }
        self.changed(run_id);
        let launch = AgentLaunch {
            run_id: run_id.to_string(),
            server_url: self.server_url(),
            token: self
                .inner
                .auth
                .create_token(&agent_name(run_id), Role::Contributor)
                .await?,
        };
        match self.inner.backend.start(&launch).await {
            Ok(handle) => self.inner.store.set_job_agent(run_id, &handle).await,
            Err(e) => {
                self.finish(
                    run_id,
                    JobStatus::Failed,
                    failed(format!("The job's agent could not be started: {e}")),
                )
                .await?;
                Ok(())
            }
        }
    }
}

fn failed(reason: String) -> JobChange {
    JobChange {
        failure_reason: Some(reason),
        ..JobChange::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kittiwake_domain::JobDefinition;

    fn job(id: &str, gpu_count: u32, gpus: Vec<u32>) -> Job {
        Job {
            run_id: id.into(),
            experiment_id: 0,
            status: JobStatus::Queued,
            definition: JobDefinition {
                snapshot_id: String::new(),
                script: "s.py".into(),
                arguments: Vec::new(),
                compute_target: "local".into(),
                environment: serde_json::Value::Null,
                environment_variables: Default::default(),
                max_run_duration_seconds: 60,
                gpu_count,
                inputs: Vec::new(),
                outputs: Vec::new(),
            },
            gpus,
            cancel_requested: false,
            failure_reason: None,
            exit_code: None,
            queued_at: 0,
            started_at: None,
            ended_at: None,
            log_bytes: 0,
            history: Vec::new(),
        }
    }

    fn target(slots: u32, gpus: Vec<u32>) -> ComputeTarget {
        ComputeTarget {
            name: "local".into(),
            kind: "local".into(),
            slots,
            gpus,
        }
    }

    #[test]
    fn jobs_start_in_order_while_slots_last() {
        let queued = [
            job("a", 0, vec![]),
            job("b", 0, vec![]),
            job("c", 0, vec![]),
        ];
        let running = [job("r", 0, vec![])];
        let starts = plan_starts(
            &target(3, vec![]),
            &running.iter().collect::<Vec<_>>(),
            &queued.iter().collect::<Vec<_>>(),
        );
        let ids: Vec<&str> = starts.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(
            plan_starts(
                &target(1, vec![]),
                &running.iter().collect::<Vec<_>>(),
                &queued.iter().collect::<Vec<_>>()
            )
            .is_empty()
        );
    }

    #[test]
    fn each_gpu_job_gets_its_own_gpus() {
        let running = [job("r", 1, vec![0])];
        let queued = [
            job("a", 1, vec![]),
            job("b", 2, vec![]),
            job("c", 0, vec![]),
            job("d", 1, vec![]),
        ];
        let starts = plan_starts(
            &target(8, vec![0, 1, 2]),
            &running.iter().collect::<Vec<_>>(),
            &queued.iter().collect::<Vec<_>>(),
        );
        assert_eq!(
            starts,
            vec![
                ("a".to_string(), vec![1]),
                ("c".to_string(), vec![]),
                ("d".to_string(), vec![2]),
            ]
        );
    }
}

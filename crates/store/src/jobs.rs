//! Submitted jobs, their logs, source snapshots, registered environments and compute targets.

use kittiwake_domain::{
    ComputeTarget, Error, Job, JobDefinition, JobStatus, Millis, Result, now_millis,
};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::sql::{Arg, Sql};
use crate::{Store, db_error};

/// The job row of a run being created (see [`crate::NewRun::job`]).
pub struct NewJob<'a> {
    pub definition: &'a JobDefinition,
    pub queued_at: Millis,
}

/// What a status change also records.
#[derive(Default)]
pub struct JobChange {
    pub failure_reason: Option<String>,
    pub exit_code: Option<i64>,
    /// `(agent handle, GPU indices)`, set when the job's agent is started.
    pub agent: Option<(String, Vec<u32>)>,
}

const JOB_COLUMNS: &str = "j.run_id, r.experiment_id, j.status, j.definition, j.gpus, j.cancel_requested, \
     j.failure_reason, j.exit_code, j.queued_at, j.started_at, j.ended_at, j.log_bytes, j.agent, j.heartbeat_at, j.compute_target";

/// A job and the bookkeeping the scheduler needs about its agent.
pub struct JobRow {
    pub job: Job,
    pub agent: Option<String>,
    pub heartbeat_at: Option<Millis>,
}

fn gpus_text(gpus: &[u32]) -> String {
    gpus.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_gpus(text: &str) -> Result<Vec<u32>> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| Error::internal(format!("corrupt GPU list '{text}'")))
        })
        .collect()
}

fn job_from_row(row: &AnyRow) -> Result<JobRow> {
    let definition: String = row.try_get("definition").map_err(db_error)?;
    let definition: JobDefinition = serde_json::from_str(&definition)
        .map_err(|e| Error::internal(format!("corrupt job definition: {e}")))?;
    let gpus: String = row.try_get("gpus").map_err(db_error)?;
    Ok(JobRow {
        job: Job {
            run_id: row.try_get("run_id").map_err(db_error)?,
            experiment_id: row.try_get("experiment_id").map_err(db_error)?,
            status: row
                .try_get::<String, _>("status")
                .map_err(db_error)?
                .parse()?,
            definition,
            gpus: parse_gpus(&gpus)?,
            cancel_requested: row
                .try_get::<i64, _>("cancel_requested")
                .map_err(db_error)?
                != 0,
            failure_reason: row.try_get("failure_reason").map_err(db_error)?,
            exit_code: row.try_get("exit_code").map_err(db_error)?,
            queued_at: row.try_get("queued_at").map_err(db_error)?,
            started_at: row.try_get("started_at").map_err(db_error)?,
            ended_at: row.try_get("ended_at").map_err(db_error)?,
            log_bytes: row.try_get("log_bytes").map_err(db_error)?,
            history: Vec::new(),
        },
        agent: row.try_get("agent").map_err(db_error)?,
        heartbeat_at: row.try_get("heartbeat_at").map_err(db_error)?,
    })
}

pub(crate) async fn insert_job(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run_id: &str,
    job: &NewJob<'_>,
) -> Result<()> {
    let definition = serde_json::to_string(job.definition)
        .map_err(|e| Error::internal(format!("encoding a job definition: {e}")))?;
    sqlx::query(
        "INSERT INTO jobs (run_id, status, status_at, compute_target, definition, gpu_count, gpus, cancel_requested, queued_at, log_bytes) \
         VALUES ($1, 'Queued', $5, $2, $3, $4, '', 0, $5, 0)",
    )
    .bind(run_id)
    .bind(job.definition.compute_target.as_str())
    .bind(definition)
    .bind(i64::from(job.definition.gpu_count))
    .bind(job.queued_at)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    sqlx::query("INSERT INTO job_status_history (run_id, status, at) VALUES ($1, 'Queued', $2)")
        .bind(run_id)
        .bind(job.queued_at)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    for input in &job.definition.inputs {
        if let Some((name, version)) = &input.dataset {
            crate::datasets::insert_lineage(tx, run_id, name, *version, "input", &input.name)
                .await?;
        }
    }
    Ok(())
}

impl Store {
    /// A job with its status history.
    pub async fn get_job(&self, run_id: &str) -> Result<Option<JobRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs j JOIN runs r ON r.run_id = j.run_id WHERE j.run_id = $1"
        )))
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut job = job_from_row(&row)?;
        let history = sqlx::query(
            "SELECT status, at FROM job_status_history WHERE run_id = $1 ORDER BY at, status",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        for row in history {
            let status: String = row.try_get("status").map_err(db_error)?;
            job.job
                .history
                .push((status.parse()?, row.try_get("at").map_err(db_error)?));
        }
        job.job.history.sort_by_key(|(status, at)| (*at, *status));
        Ok(Some(job))
    }

    /// Every job that is not finished, oldest first: what the scheduler looks after.
    pub async fn unfinished_jobs(&self) -> Result<Vec<JobRow>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs j JOIN runs r ON r.run_id = j.run_id \
             WHERE j.status NOT IN ('Completed', 'Failed', 'Canceled') ORDER BY j.queued_at, j.run_id"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(job_from_row).collect()
    }

    /// Moves a job to `to` if it is in one of the states `to` may follow; its run's MLflow status
    /// and the status history follow in the same statement (a trigger). Returns whether it moved.
    pub async fn move_job(&self, run_id: &str, to: JobStatus, change: JobChange) -> Result<bool> {
        let now = now_millis();
        let from: Vec<Arg> = JobStatus::ALL
            .into_iter()
            .filter(|s| s.may_become(to))
            .map(|s| Arg::Text(s.as_str().into()))
            .collect();
        let mut sql = Sql::new("UPDATE jobs SET status = ");
        sql.bind_text(to.as_str())
            .push(", status_at = ")
            .bind(Arg::Int(now));
        if let Some(reason) = change.failure_reason {
            sql.push(", failure_reason = ").bind_text(reason);
        }
        if let Some(code) = change.exit_code {
            sql.push(", exit_code = ").bind(Arg::Int(code));
        }
        if let Some((agent, gpus)) = change.agent {
            sql.push(", agent = ")
                .bind_text(agent)
                .push(", gpus = ")
                .bind_text(gpus_text(&gpus))
                .push(", heartbeat_at = ")
                .bind(Arg::Int(now));
        }
        if to == JobStatus::Running {
            sql.push(", started_at = ").bind(Arg::Int(now));
        }
        if to.is_terminal() {
            sql.push(", ended_at = ").bind(Arg::Int(now));
        }
        sql.push(" WHERE run_id = ")
            .bind_text(run_id)
            .push(" AND status IN ")
            .bind_list(from);
        let _guard = self.write_lock.lock().await;
        let done = sql.query().execute(&self.pool).await.map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    /// A job's status and log length, or `None` if there is no such job: what a log follower
    /// polls, without the rest of the job.
    pub async fn job_progress(&self, run_id: &str) -> Result<Option<(JobStatus, i64)>> {
        let row = sqlx::query("SELECT status, log_bytes FROM jobs WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.map(|row| {
            let status: String = row.try_get("status").map_err(db_error)?;
            Ok((status.parse()?, row.try_get("log_bytes").map_err(db_error)?))
        })
        .transpose()
    }

    /// Marks a job to be canceled; returns its status, or `None` if there is no such job.
    pub async fn request_cancel(&self, run_id: &str) -> Result<Option<JobStatus>> {
        let (_guard, mut tx) = self.write().await?;
        let status: Option<String> = sqlx::query_scalar(
            "UPDATE jobs SET cancel_requested = 1 WHERE run_id = $1 RETURNING status",
        )
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        status.map(|s| s.parse()).transpose()
    }

    /// Records that the job's agent is alive; returns the job's status and whether it is to be
    /// canceled, or `None` if there is no such job.
    pub async fn job_heartbeat(&self, run_id: &str) -> Result<Option<(JobStatus, bool)>> {
        let (_guard, mut tx) = self.write().await?;
        let row = sqlx::query(
            "UPDATE jobs SET heartbeat_at = $1 WHERE run_id = $2 RETURNING status, cancel_requested",
        )
        .bind(now_millis())
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        row.map(|row| {
            let status: String = row.try_get("status").map_err(db_error)?;
            let cancel: i64 = row.try_get("cancel_requested").map_err(db_error)?;
            Ok((status.parse()?, cancel != 0))
        })
        .transpose()
    }

    /// Records the handle of a job's agent once its backend has started it.
    pub async fn set_job_agent(&self, run_id: &str, agent: &str) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        sqlx::query("UPDATE jobs SET agent = $1, heartbeat_at = $2 WHERE run_id = $3")
            .bind(agent)
            .bind(now_millis())
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    /// Appends a chunk at byte `offset` of a job's log. A chunk that was stored before (a resend)
    /// changes nothing; one that would leave a gap is refused. Returns the log's length.
    pub async fn append_job_log(&self, run_id: &str, offset: i64, data: &[u8]) -> Result<i64> {
        let (_guard, mut tx) = self.write().await?;
        let length: Option<i64> =
            sqlx::query_scalar("SELECT log_bytes FROM jobs WHERE run_id = $1")
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        let length =
            length.ok_or_else(|| Error::not_found(format!("No job with run id {run_id}")))?;
        let end = offset + data.len() as i64;
        if offset > length {
            return Err(Error::invalid(format!(
                "Log chunk at byte {offset} would leave a gap: the log has {length} bytes"
            )));
        }
        if end <= length || data.is_empty() {
            return Ok(length);
        }
        // Keep only the part not stored yet.
        let fresh = &data[(length - offset) as usize..];
        sqlx::query("INSERT INTO job_logs (run_id, byte_offset, data) VALUES ($1, $2, $3)")
            .bind(run_id)
            .bind(length)
            .bind(fresh)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("UPDATE jobs SET log_bytes = $1 WHERE run_id = $2")
            .bind(end)
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(end)
    }

    /// A job's log from byte `from` on, at most about `limit` bytes.
    pub async fn read_job_log(&self, run_id: &str, from: i64, limit: usize) -> Result<Vec<u8>> {
        let rows = sqlx::query(
            "SELECT byte_offset, data FROM job_logs WHERE run_id = $1 AND byte_offset >= \
             COALESCE((SELECT MAX(byte_offset) FROM job_logs WHERE run_id = $1 AND byte_offset <= $2), 0) \
             ORDER BY byte_offset",
        )
        .bind(run_id)
        .bind(from)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut out = Vec::new();
        for row in rows {
            let offset: i64 = row.try_get("byte_offset").map_err(db_error)?;
            let data: Vec<u8> = row.try_get("data").map_err(db_error)?;
            let skip = (from - offset).clamp(0, data.len() as i64) as usize;
            out.extend_from_slice(&data[skip..]);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Stores a snapshot's file list under its id; storing the same id again changes nothing.
    pub async fn put_snapshot(
        &self,
        snapshot_id: &str,
        manifest: &str,
        file_count: i64,
        total_bytes: i64,
    ) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        sqlx::query(
            "INSERT INTO snapshots (snapshot_id, manifest, file_count, total_bytes, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (snapshot_id) DO NOTHING",
        )
        .bind(snapshot_id)
        .bind(manifest)
        .bind(file_count)
        .bind(total_bytes)
        .bind(now_millis())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    pub async fn get_snapshot(&self, snapshot_id: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT manifest FROM snapshots WHERE snapshot_id = $1")
            .bind(snapshot_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)
    }

    /// Registers an environment definition under `name` and returns its version: the latest
    /// version if its definition is the same, else a new one.
    pub async fn register_environment(
        &self,
        name: &str,
        definition: &str,
        definition_hash: &str,
    ) -> Result<i64> {
        let (_guard, mut tx) = self.write().await?;
        let latest = sqlx::query(
            "SELECT version, definition_hash FROM environments WHERE name = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let mut next = 1;
        if let Some(row) = latest {
            let version: i64 = row.try_get("version").map_err(db_error)?;
            let hash: String = row.try_get("definition_hash").map_err(db_error)?;
            if hash == definition_hash {
                return Ok(version);
            }
            next = version + 1;
        }
        sqlx::query(
            "INSERT INTO environments (name, version, definition, definition_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(name)
        .bind(next)
        .bind(definition)
        .bind(definition_hash)
        .bind(now_millis())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(next)
    }

    /// `(version, definition)` of a registered environment: the given version, or the latest.
    pub async fn get_environment(
        &self,
        name: &str,
        version: Option<i64>,
    ) -> Result<Option<(i64, String)>> {
        let row = sqlx::query(
            "SELECT version, definition FROM environments WHERE name = $1 AND ($2 < 0 OR version = $2) \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(name)
        .bind(version.unwrap_or(-1))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|row| {
            Ok((
                row.try_get("version").map_err(db_error)?,
                row.try_get("definition").map_err(db_error)?,
            ))
        })
        .transpose()
    }

    /// The latest version of every registered environment: `(name, version, definition)`.
    pub async fn list_environments(&self) -> Result<Vec<(String, i64, String)>> {
        let rows = sqlx::query(
            "SELECT e.name, e.version, e.definition FROM environments e \
             WHERE e.version = (SELECT MAX(version) FROM environments l WHERE l.name = e.name) ORDER BY e.name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("name").map_err(db_error)?,
                    row.try_get("version").map_err(db_error)?,
                    row.try_get("definition").map_err(db_error)?,
                ))
            })
            .collect()
    }

    /// Creates a compute target, or updates the one with that name.
    pub async fn put_compute_target(&self, target: &ComputeTarget) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        sqlx::query(
            "INSERT INTO compute_targets (name, kind, slots, gpus, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, slots = excluded.slots, gpus = excluded.gpus",
        )
        .bind(target.name.as_str())
        .bind(target.kind.as_str())
        .bind(i64::from(target.slots))
        .bind(gpus_text(&target.gpus))
        .bind(now_millis())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    pub async fn list_compute_targets(&self) -> Result<Vec<ComputeTarget>> {
        let rows = sqlx::query("SELECT name, kind, slots, gpus FROM compute_targets ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let gpus: String = row.try_get("gpus").map_err(db_error)?;
                let slots: i64 = row.try_get("slots").map_err(db_error)?;
                Ok(ComputeTarget {
                    name: row.try_get("name").map_err(db_error)?,
                    kind: row.try_get("kind").map_err(db_error)?,
                    slots: u32::try_from(slots).unwrap_or(0),
                    gpus: parse_gpus(&gpus)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewRun;
    use kittiwake_domain::JobDefinition;

    #[tokio::test]
    async fn a_job_moves_forward_and_its_run_follows() {
        let (_dir, store) = crate::tests::temp_store().await;
        let definition = JobDefinition {
            snapshot_id: "s".into(),
            script: "train.py".into(),
            arguments: Vec::new(),
            compute_target: "local".into(),
            environment: serde_json::Value::Null,
            environment_variables: Default::default(),
            max_run_duration_seconds: 60,
            gpu_count: 0,
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        let run_id = "0123456789abcdef0123456789abcdef";
        store
            .create_run(NewRun {
                run_id,
                experiment_id: 0,
                run_name: "r",
                user_id: "u",
                start_time: 1,
                tags: &[],
                job: Some(NewJob {
                    definition: &definition,
                    queued_at: 1,
                }),
            })
            .await
            .unwrap();
        let run_status = || async { store.get_run_info(run_id).await.unwrap().status.as_str() };
        assert_eq!(run_status().await, "SCHEDULED");
        for (to, mlflow) in [
            (JobStatus::Preparing, "SCHEDULED"),
            (JobStatus::Running, "RUNNING"),
            (JobStatus::Finalizing, "RUNNING"),
            (JobStatus::Completed, "FINISHED"),
        ] {
            assert!(
                store
                    .move_job(run_id, to, JobChange::default())
                    .await
                    .unwrap()
            );
            assert_eq!(run_status().await, mlflow, "{to}");
        }
        assert!(
            !store
                .move_job(run_id, JobStatus::Failed, JobChange::default())
                .await
                .unwrap()
        );
        let job = store.get_job(run_id).await.unwrap().unwrap().job;
        let history: Vec<JobStatus> = job.history.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            history,
            [
                JobStatus::Queued,
                JobStatus::Preparing,
                JobStatus::Running,
                JobStatus::Finalizing,
                JobStatus::Completed
            ]
        );
        assert!(job.ended_at.is_some());
        assert!(store.get_run_info(run_id).await.unwrap().end_time.is_some());
    }
}

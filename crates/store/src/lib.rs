//! The metadata store: the only code that speaks SQL or touches the metadata database.
//!
//! It runs the same SQL text on every backend through sqlx's `Any` driver (SQLite today; PostgreSQL
//! is a second migrations folder, not a second code path). It knows nothing of HTTP or JSON shapes
//! and enforces no business rule beyond what the schema says; the services above it decide what may
//! be written. Every write that returns `Ok` is committed, and SQLite runs in WAL mode, so an
//! acknowledged write survives the server being killed.

mod datasets;
mod datastores;
mod experiments;
mod jobs;
mod metrics;
mod models;
mod runs;
mod search;
mod settings;
mod sql;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use kittiwake_domain::{Error, Result};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};
use tokio::sync::Mutex;

pub use datasets::{Lineage, StoredDataset};
pub use datastores::StoredDatastore;
pub use jobs::{JobChange, JobRow, NewJob};
pub use metrics::{ScalarHistory, decode_points, encode_points};
pub use models::LoggedModelPatch;
pub use runs::{NewRun, RunPatch};
pub use search::{ExperimentQuery, ModelQuery, RunQuery};
pub use settings::StoredToken;

/// A handle on the metadata database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// SQLite allows one writer at a time; taking this lock before a write transaction queues
    /// writers inside the process instead of letting them fail with "database is locked".
    write_lock: Arc<Mutex<()>>,
}

static MIGRATIONS_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and brings its schema up to date.
    pub async fn open_sqlite(path: &Path) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let options = AnyConnectOptions::from_str(&url)
            .map_err(db_error)?
            .disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            // A local SQLite connection does not go stale; pinging it before each use would
            // double the cost of every query.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers run beside the writer; NORMAL sync keeps every committed
                    // transaction through a process kill (the WAL is in the OS page cache).
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON; \
                         PRAGMA case_sensitive_like = ON;",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(db_error)?;
        MIGRATIONS_SQLITE
            .run(&pool)
            .await
            .map_err(|e| Error::internal(format!("migrating the metadata database failed: {e}")))?;
        Ok(Self {
            pool,
            write_lock: Arc::new(Mutex::new(())),
        })
    }

    async fn write(
        &self,
    ) -> Result<(
        tokio::sync::MutexGuard<'_, ()>,
        sqlx::Transaction<'static, sqlx::Any>,
    )> {
        let guard = self.write_lock.lock().await;
        let tx = self.pool.begin().await.map_err(db_error)?;
        Ok((guard, tx))
    }
}

/// Maps a database error to the domain error; unique violations become "already exists".
pub(crate) fn db_error(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            Error::already_exists(format!("already exists: {}", d.message()))
        }
        sqlx::Error::RowNotFound => Error::not_found("not found"),
        _ => Error::internal(format!("metadata store error: {e}")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A store in a fresh temporary folder (kept as long as the returned guard lives).
    pub(crate) async fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("m.sqlite"))
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn every_connection_runs_in_wal_with_normal_sync() {
        let (_dir, store) = crate::tests::temp_store().await;
        let mut conns = Vec::new();
        for _ in 0..3 {
            conns.push(store.pool.acquire().await.unwrap());
        }
        for conn in &mut conns {
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!((mode.as_str(), sync, busy), ("wal", 1, 30000));
        }
    }

    #[tokio::test]
    async fn history_pages_match_slices_of_the_whole() {
        use kittiwake_domain::{MetricPoint, MetricSeries};
        let (_dir, store) = crate::tests::temp_store().await;
        let run_id = "0123456789abcdef0123456789abcdef";
        store
            .create_run(NewRun {
                run_id,
                experiment_id: 0,
                run_name: "r",
                user_id: "u",
                start_time: 0,
                tags: &[],
                job: None,
            })
            .await
            .unwrap();
        let mut step = 0i64;
        for size in [3usize, 1, 7, 2, 5] {
            let points = (0..size)
                .map(|_| {
                    step += 1;
                    MetricPoint {
                        step,
                        timestamp: 0,
                        value: step as f64,
                    }
                })
                .collect();
            store
                .log_metrics(
                    run_id,
                    &[MetricSeries {
                        key: "m".into(),
                        points,
                    }],
                    &[],
                )
                .await
                .unwrap();
        }
        let (all, more) = store.metric_history(run_id, "m", 0, None).await.unwrap();
        assert_eq!(all.len(), 18);
        assert!(!more);
        for offset in 0..20 {
            for limit in [1usize, 2, 4, 7, 18, 30] {
                let (page, more) = store
                    .metric_history(run_id, "m", offset, Some(limit))
                    .await
                    .unwrap();
                let expected: Vec<_> = all.iter().skip(offset).take(limit).copied().collect();
                assert_eq!(page, expected, "offset {offset} limit {limit}");
                assert_eq!(more, offset + limit < 18, "offset {offset} limit {limit}");
            }
        }
        let (none, _) = store
            .metric_history(run_id, "other", 0, None)
            .await
            .unwrap();
        assert!(none.is_empty());
    }
}

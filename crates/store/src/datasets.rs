//! Registered dataset versions.

use kittiwake_domain::{Result, now_millis};
use sqlx::Row;

use crate::{Store, db_error};

/// One version of a dataset as stored; definition, tags and fingerprint are JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDataset {
    pub name: String,
    pub version: i64,
    pub dataset_type: String,
    pub description: String,
    pub tags: String,
    pub definition: String,
    pub fingerprint: String,
    pub fingerprint_hash: String,
    pub file_count: i64,
    pub total_bytes: i64,
    pub created_at: i64,
}

const COLUMNS: &str = "name, version, dataset_type, description, tags, definition, fingerprint, \
     fingerprint_hash, file_count, total_bytes, created_at";

fn from_row(row: &sqlx::any::AnyRow) -> Result<StoredDataset> {
    Ok(StoredDataset {
        name: row.try_get("name").map_err(db_error)?,
        version: row.try_get("version").map_err(db_error)?,
        dataset_type: row.try_get("dataset_type").map_err(db_error)?,
        description: row.try_get("description").map_err(db_error)?,
        tags: row.try_get("tags").map_err(db_error)?,
        definition: row.try_get("definition").map_err(db_error)?,
        fingerprint: row.try_get("fingerprint").map_err(db_error)?,
        fingerprint_hash: row.try_get("fingerprint_hash").map_err(db_error)?,
        file_count: row.try_get("file_count").map_err(db_error)?,
        total_bytes: row.try_get("total_bytes").map_err(db_error)?,
        created_at: row.try_get("created_at").map_err(db_error)?,
    })
}

impl Store {
    /// Stores `d` as the next version of its name and returns that version; with `only_if_new`,
    /// stores nothing and returns `None` when the name already has a version.
    pub async fn add_dataset_version(
        &self,
        d: &StoredDataset,
        only_if_new: bool,
    ) -> Result<Option<i64>> {
        let (_guard, mut tx) = self.write().await?;
        let latest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM dataset_versions WHERE name = $1")
                .bind(d.name.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
        if latest.is_some() && only_if_new {
            return Ok(None);
        }
        let version = latest.unwrap_or(0) + 1;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO dataset_versions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )))
        .bind(d.name.as_str())
        .bind(version)
        .bind(d.dataset_type.as_str())
        .bind(d.description.as_str())
        .bind(d.tags.as_str())
        .bind(d.definition.as_str())
        .bind(d.fingerprint.as_str())
        .bind(d.fingerprint_hash.as_str())
        .bind(d.file_count)
        .bind(d.total_bytes)
        .bind(now_millis())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(version))
    }

    /// A version of a dataset, or its latest with `None`.
    pub async fn get_dataset(
        &self,
        name: &str,
        version: Option<i64>,
    ) -> Result<Option<StoredDataset>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM dataset_versions WHERE name = $1 AND ($2 < 0 OR version = $2) \
             ORDER BY version DESC LIMIT 1"
        )))
        .bind(name)
        .bind(version.unwrap_or(-1))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(from_row).transpose()
    }

    /// The latest version of every dataset.
    pub async fn list_datasets(&self) -> Result<Vec<StoredDataset>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM dataset_versions d WHERE version = \
             (SELECT MAX(version) FROM dataset_versions l WHERE l.name = d.name) ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(from_row).collect()
    }
}

/// One edge of the lineage graph: a run read or wrote a dataset version under a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    pub run_id: String,
    pub dataset_name: String,
    pub dataset_version: i64,
    /// `input` or `output`.
    pub direction: String,
    pub io_name: String,
}

pub(crate) async fn insert_lineage(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run_id: &str,
    name: &str,
    version: i64,
    direction: &str,
    io_name: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO dataset_lineage (run_id, dataset_name, dataset_version, direction, io_name) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (run_id, direction, io_name) DO NOTHING",
    )
    .bind(run_id)
    .bind(name)
    .bind(version)
    .bind(direction)
    .bind(io_name)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

fn lineage_from(row: &sqlx::any::AnyRow) -> Result<Lineage> {
    Ok(Lineage {
        run_id: row.try_get("run_id").map_err(db_error)?,
        dataset_name: row.try_get("dataset_name").map_err(db_error)?,
        dataset_version: row.try_get("dataset_version").map_err(db_error)?,
        direction: row.try_get("direction").map_err(db_error)?,
        io_name: row.try_get("io_name").map_err(db_error)?,
    })
}

impl Store {
    /// Records that a run wrote a dataset version.
    pub async fn add_output_lineage(
        &self,
        run_id: &str,
        name: &str,
        version: i64,
        io_name: &str,
    ) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        insert_lineage(&mut tx, run_id, name, version, "output", io_name).await?;
        tx.commit().await.map_err(db_error)
    }

    /// The runs that read or wrote a dataset version.
    pub async fn lineage_of_dataset(&self, name: &str, version: i64) -> Result<Vec<Lineage>> {
        let rows = sqlx::query(
            "SELECT run_id, dataset_name, dataset_version, direction, io_name FROM dataset_lineage \
             WHERE dataset_name = $1 AND dataset_version = $2 ORDER BY run_id, direction, io_name",
        )
        .bind(name)
        .bind(version)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(lineage_from).collect()
    }

    /// The dataset versions a run read or wrote.
    pub async fn lineage_of_run(&self, run_id: &str) -> Result<Vec<Lineage>> {
        let rows = sqlx::query(
            "SELECT run_id, dataset_name, dataset_version, direction, io_name FROM dataset_lineage \
             WHERE run_id = $1 ORDER BY direction, io_name",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(lineage_from).collect()
    }
}

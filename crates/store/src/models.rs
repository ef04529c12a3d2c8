use kittiwake_domain::{Error, LoggedModel, LoggedModelStatus, Millis, Result, Tag};
use sqlx::{AssertSqlSafe, Row};

use crate::sql::{Arg, upsert_key_value};
use crate::{Store, db_error};

/// The fields finalizing or updating a logged model may change.
pub struct LoggedModelPatch {
    pub status: LoggedModelStatus,
    pub now: Millis,
}

impl Store {
    pub async fn create_logged_model(&self, m: &LoggedModel) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        sqlx::query(
            "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, creation_timestamp, last_updated_timestamp, status, status_message, model_type, source_run_id, lifecycle_stage) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'active')",
        )
        .bind(&m.model_id)
        .bind(m.experiment_id)
        .bind(&m.name)
        .bind(&m.artifact_location)
        .bind(m.creation_timestamp)
        .bind(m.last_updated_timestamp)
        .bind(m.status.as_str())
        .bind(m.status_message.as_deref())
        .bind(m.model_type.as_deref())
        .bind(m.source_run_id.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        for (table, items) in [
            ("logged_model_tags", &m.tags),
            ("logged_model_params", &m.params),
        ] {
            for t in items.iter() {
                upsert_key_value(&mut tx, table, "model_id", Arg::Text(m.model_id.clone()), t)
                    .await?;
            }
        }
        tx.commit().await.map_err(db_error)
    }

    pub async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        let row = sqlx::query(
            "SELECT model_id, experiment_id, name, artifact_location, creation_timestamp, last_updated_timestamp, status, status_message, model_type, source_run_id \
             FROM logged_models WHERE model_id = $1 AND lifecycle_stage = 'active'",
        )
        .bind(model_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .ok_or_else(|| Error::not_found(format!("Logged model with ID '{model_id}' not found")))?;
        let kv = |table: &'static str| {
            let pool = self.pool.clone();
            async move {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT key, value FROM {table} WHERE model_id = $1 ORDER BY key"
                )))
                .bind(model_id)
                .fetch_all(&pool)
                .await
                .map_err(db_error)?
                .iter()
                .map(|r| {
                    Ok(Tag::new(
                        r.try_get::<String, _>("key").map_err(db_error)?,
                        r.try_get::<String, _>("value").map_err(db_error)?,
                    ))
                })
                .collect::<Result<Vec<_>>>()
            }
        };
        let tags = kv("logged_model_tags").await?;
        let params = kv("logged_model_params").await?;
        Ok(LoggedModel {
            model_id: row.try_get("model_id").map_err(db_error)?,
            experiment_id: row.try_get("experiment_id").map_err(db_error)?,
            name: row.try_get("name").map_err(db_error)?,
            artifact_location: row.try_get("artifact_location").map_err(db_error)?,
            creation_timestamp: row.try_get("creation_timestamp").map_err(db_error)?,
            last_updated_timestamp: row.try_get("last_updated_timestamp").map_err(db_error)?,
            status: row
                .try_get::<String, _>("status")
                .map_err(db_error)?
                .parse()?,
            status_message: row.try_get("status_message").map_err(db_error)?,
            model_type: row.try_get("model_type").map_err(db_error)?,
            source_run_id: row.try_get("source_run_id").map_err(db_error)?,
            tags,
            params,
        })
    }

    pub async fn update_logged_model(
        &self,
        model_id: &str,
        patch: &LoggedModelPatch,
    ) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        sqlx::query(
            "UPDATE logged_models SET status = $1, last_updated_timestamp = $2 WHERE model_id = $3",
        )
        .bind(patch.status.as_str())
        .bind(patch.now)
        .bind(model_id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    pub async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        sqlx::query("UPDATE logged_models SET lifecycle_stage = 'deleted' WHERE model_id = $1")
            .bind(model_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    /// Sets tags (`params == false`) or params of a logged model.
    pub async fn set_logged_model_values(
        &self,
        model_id: &str,
        items: &[Tag],
        params: bool,
    ) -> Result<()> {
        let table = if params {
            "logged_model_params"
        } else {
            "logged_model_tags"
        };
        let (_guard, mut tx) = self.write().await?;
        for t in items {
            upsert_key_value(
                &mut tx,
                table,
                "model_id",
                Arg::Text(model_id.to_string()),
                t,
            )
            .await?;
        }
        tx.commit().await.map_err(db_error)
    }

    pub async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<bool> {
        let (_guard, mut tx) = self.write().await?;
        let done = sqlx::query("DELETE FROM logged_model_tags WHERE model_id = $1 AND key = $2")
            .bind(model_id)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }
}

use std::collections::HashMap;

use kittiwake_domain::{Error, Experiment, LifecycleStage, Millis, Result, Tag};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::sql::{Arg, Sql, upsert_key_value};
use crate::{Store, db_error};

const EXPERIMENT_COLUMNS: &str = "e.experiment_id, e.name, e.artifact_location, e.lifecycle_stage, e.creation_time, e.last_update_time";

fn experiment_from_row(row: &AnyRow) -> Result<Experiment> {
    Ok(Experiment {
        experiment_id: row.try_get("experiment_id").map_err(db_error)?,
        name: row.try_get("name").map_err(db_error)?,
        artifact_location: row.try_get("artifact_location").map_err(db_error)?,
        lifecycle_stage: row
            .try_get::<String, _>("lifecycle_stage")
            .map_err(db_error)?
            .parse()?,
        creation_time: row.try_get("creation_time").map_err(db_error)?,
        last_update_time: row.try_get("last_update_time").map_err(db_error)?,
        tags: Vec::new(),
    })
}

impl Store {
    /// Creates an experiment. `artifact_location` may contain `{id}`, replaced by the new id.
    pub async fn create_experiment(
        &self,
        name: &str,
        artifact_location: &str,
        tags: &[Tag],
        now: Millis,
    ) -> Result<i64> {
        let (_guard, mut tx) = self.write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) \
             VALUES ((SELECT COALESCE(MAX(experiment_id), 0) + 1 FROM experiments), $1, '', 'active', $2, $2) RETURNING experiment_id",
        )
        .bind(name)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match db_error(e) {
            err if err.kind == kittiwake_domain::ErrorKind::AlreadyExists => Error::already_exists(
                format!("Experiment(name={name}) already exists."),
            ),
            err => err,
        })?;
        sqlx::query("UPDATE experiments SET artifact_location = $1 WHERE experiment_id = $2")
            .bind(artifact_location.replace("{id}", &id.to_string()))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        for tag in tags {
            upsert_key_value(
                &mut tx,
                "experiment_tags",
                "experiment_id",
                Arg::Int(id),
                tag,
            )
            .await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(id)
    }

    /// An experiment with its tags, in one query.
    pub async fn get_experiment(&self, id: i64) -> Result<Experiment> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EXPERIMENT_COLUMNS}, t.key AS tag_key, t.value AS tag_value FROM experiments e \
             LEFT JOIN experiment_tags t ON t.experiment_id = e.experiment_id \
             WHERE e.experiment_id = $1 ORDER BY t.key"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let first = rows
            .first()
            .ok_or_else(|| Error::not_found(format!("No Experiment with id={id} exists")))?;
        let mut experiment = experiment_from_row(first)?;
        for row in &rows {
            let key: Option<String> = row.try_get("tag_key").map_err(db_error)?;
            let value: Option<String> = row.try_get("tag_value").map_err(db_error)?;
            if let (Some(key), Some(value)) = (key, value) {
                experiment.tags.push(Tag::new(key, value));
            }
        }
        Ok(experiment)
    }

    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        let id: Option<i64> =
            sqlx::query_scalar("SELECT experiment_id FROM experiments WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        match id {
            Some(id) => self.get_experiment(id).await,
            None => Err(Error::not_found(format!(
                "Could not find experiment with name '{name}'"
            ))),
        }
    }

    pub(crate) async fn experiments_by_sql(&self, sql: &Sql) -> Result<Vec<Experiment>> {
        let rows = sql.query().fetch_all(&self.pool).await.map_err(db_error)?;
        let mut experiments = rows
            .iter()
            .map(experiment_from_row)
            .collect::<Result<Vec<_>>>()?;
        self.attach_experiment_tags(&mut experiments).await?;
        Ok(experiments)
    }

    async fn attach_experiment_tags(&self, experiments: &mut [Experiment]) -> Result<()> {
        if experiments.is_empty() {
            return Ok(());
        }
        let mut sql = Sql::new(
            "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN ",
        );
        sql.bind_list(experiments.iter().map(|e| Arg::Int(e.experiment_id)));
        sql.push(" ORDER BY key");
        let rows = sql.query().fetch_all(&self.pool).await.map_err(db_error)?;
        let mut by_id: HashMap<i64, Vec<Tag>> = HashMap::new();
        for row in rows {
            by_id
                .entry(row.try_get("experiment_id").map_err(db_error)?)
                .or_default()
                .push(Tag::new(
                    row.try_get::<String, _>("key").map_err(db_error)?,
                    row.try_get::<String, _>("value").map_err(db_error)?,
                ));
        }
        for e in experiments {
            e.tags = by_id.remove(&e.experiment_id).unwrap_or_default();
        }
        Ok(())
    }

    pub async fn rename_experiment(&self, id: i64, new_name: &str, now: Millis) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        sqlx::query(
            "UPDATE experiments SET name = $1, last_update_time = $2 WHERE experiment_id = $3",
        )
        .bind(new_name)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| match db_error(e) {
            err if err.kind == kittiwake_domain::ErrorKind::AlreadyExists => {
                Error::already_exists(format!("Experiment(name={new_name}) already exists."))
            }
            err => err,
        })?;
        tx.commit().await.map_err(db_error)
    }

    pub async fn set_experiment_stage(
        &self,
        id: i64,
        stage: LifecycleStage,
        now: Millis,
    ) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        sqlx::query("UPDATE experiments SET lifecycle_stage = $1, last_update_time = $2 WHERE experiment_id = $3")
            .bind(stage.as_str())
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        // MLflow moves an experiment's runs to the bin with it, and brings them back on restore.
        sqlx::query("UPDATE runs SET lifecycle_stage = $1 WHERE experiment_id = $2")
            .bind(stage.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    pub async fn set_experiment_tag(&self, id: i64, tag: &Tag) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        upsert_key_value(
            &mut tx,
            "experiment_tags",
            "experiment_id",
            Arg::Int(id),
            tag,
        )
        .await?;
        tx.commit().await.map_err(db_error)
    }

    /// Deletes an experiment tag; returns whether it existed.
    pub async fn delete_experiment_tag(&self, id: i64, key: &str) -> Result<bool> {
        let (_guard, mut tx) = self.write().await?;
        let done = sqlx::query("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
            .bind(id)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }
}

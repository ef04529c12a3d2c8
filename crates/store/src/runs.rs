use std::collections::HashMap;

use kittiwake_domain::{
    Dataset, DatasetInput, Error, LifecycleStage, Metric, MetricPoint, MetricSeries, Millis,
    ModelIo, Result, Run, RunInfo, RunStatus, Tag,
};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::sql::{Arg, Sql, upsert_key_value};
use crate::{Store, db_error};

pub(crate) const RUN_COLUMNS: &str = "r.run_id, r.experiment_id, r.run_name, r.user_id, r.status, r.start_time, r.end_time, r.artifact_uri, r.lifecycle_stage";

/// What creating a run needs; the service fills in defaults.
pub struct NewRun<'a> {
    pub run_id: &'a str,
    pub experiment_id: i64,
    pub run_name: &'a str,
    pub user_id: &'a str,
    pub start_time: Millis,
    pub artifact_uri: &'a str,
    pub tags: &'a [Tag],
}

/// The fields `runs/update` may change; `None` leaves a field as it is.
#[derive(Default)]
pub struct RunPatch {
    pub status: Option<RunStatus>,
    pub end_time: Option<Millis>,
    pub run_name: Option<String>,
}

pub(crate) fn run_info_from_row(row: &AnyRow) -> Result<RunInfo> {
    Ok(RunInfo {
        run_id: row.try_get("run_id").map_err(db_error)?,
        experiment_id: row.try_get("experiment_id").map_err(db_error)?,
        run_name: row.try_get("run_name").map_err(db_error)?,
        user_id: row.try_get("user_id").map_err(db_error)?,
        status: row
            .try_get::<String, _>("status")
            .map_err(db_error)?
            .parse()?,
        start_time: row.try_get("start_time").map_err(db_error)?,
        end_time: row.try_get("end_time").map_err(db_error)?,
        artifact_uri: row.try_get("artifact_uri").map_err(db_error)?,
        lifecycle_stage: row
            .try_get::<String, _>("lifecycle_stage")
            .map_err(db_error)?
            .parse::<LifecycleStage>()?,
    })
}

fn key_value(row: &AnyRow) -> Result<(String, Tag)> {
    Ok((
        row.try_get("run_id").map_err(db_error)?,
        Tag::new(
            row.try_get::<String, _>("key").map_err(db_error)?,
            row.try_get::<String, _>("value").map_err(db_error)?,
        ),
    ))
}

impl Store {
    pub async fn create_run(&self, run: NewRun<'_>) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        sqlx::query(
            "INSERT INTO runs (run_id, experiment_id, run_name, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage) \
             VALUES ($1, $2, $3, $4, 'RUNNING', $5, NULL, $6, 'active')",
        )
        .bind(run.run_id)
        .bind(run.experiment_id)
        .bind(run.run_name)
        .bind(run.user_id)
        .bind(run.start_time)
        .bind(run.artifact_uri)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        for tag in run.tags {
            upsert_tag(&mut tx, run.run_id, tag).await?;
        }
        tx.commit().await.map_err(db_error)
    }

    pub async fn get_run_info(&self, run_id: &str) -> Result<RunInfo> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs r WHERE r.run_id = $1"
        )))
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .ok_or_else(|| Error::not_found(format!("Run with id={run_id} not found")))?;
        run_info_from_row(&row)
    }

    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        let info = self.get_run_info(run_id).await?;
        Ok(self.hydrate_runs(vec![info]).await?.remove(0))
    }

    /// Attaches params, tags, latest metrics, inputs and outputs to run infos, in a few queries.
    pub(crate) async fn hydrate_runs(&self, infos: Vec<RunInfo>) -> Result<Vec<Run>> {
        if infos.is_empty() {
            return Ok(Vec::new());
        }
        let ids = || infos.iter().map(|i| Arg::Text(i.run_id.clone()));
        let mut params: HashMap<String, Vec<Tag>> = HashMap::new();
        let mut tags: HashMap<String, Vec<Tag>> = HashMap::new();
        for (table, into) in [("params", &mut params), ("run_tags", &mut tags)] {
            let mut sql = Sql::new(format!(
                "SELECT run_id, key, value FROM {table} WHERE run_id IN "
            ));
            sql.bind_list(ids()).push(" ORDER BY key");
            for row in sql.query().fetch_all(&self.pool).await.map_err(db_error)? {
                let (run_id, tag) = key_value(&row)?;
                into.entry(run_id).or_default().push(tag);
            }
        }
        let mut metrics: HashMap<String, Vec<Metric>> = HashMap::new();
        let mut sql = Sql::new(
            "SELECT run_id, key, value, is_nan, step, timestamp FROM latest_metrics WHERE run_id IN ",
        );
        sql.bind_list(ids()).push(" ORDER BY key");
        for row in sql.query().fetch_all(&self.pool).await.map_err(db_error)? {
            let is_nan: i64 = row.try_get("is_nan").map_err(db_error)?;
            let value: f64 = row.try_get("value").map_err(db_error)?;
            metrics
                .entry(row.try_get("run_id").map_err(db_error)?)
                .or_default()
                .push(Metric {
                    key: row.try_get("key").map_err(db_error)?,
                    point: MetricPoint {
                        step: row.try_get("step").map_err(db_error)?,
                        timestamp: row.try_get("timestamp").map_err(db_error)?,
                        value: if is_nan != 0 { f64::NAN } else { value },
                    },
                });
        }
        let mut inputs: HashMap<String, Vec<DatasetInput>> = HashMap::new();
        let mut sql = Sql::new(
            "SELECT i.run_id, i.tags_json, d.name, d.digest, d.source_type, d.source, d.dataset_schema, d.profile \
             FROM dataset_inputs i JOIN datasets d ON d.dataset_id = i.dataset_id WHERE i.run_id IN ",
        );
        sql.bind_list(ids());
        for row in sql.query().fetch_all(&self.pool).await.map_err(db_error)? {
            let tags_json: String = row.try_get("tags_json").map_err(db_error)?;
            let tags: Vec<(String, String)> = serde_json::from_str(&tags_json)
                .map_err(|e| Error::internal(format!("corrupt dataset input tags: {e}")))?;
            inputs
                .entry(row.try_get("run_id").map_err(db_error)?)
                .or_default()
                .push(DatasetInput {
                    tags: tags.into_iter().map(|(k, v)| Tag::new(k, v)).collect(),
                    dataset: Dataset {
                        name: row.try_get("name").map_err(db_error)?,
                        digest: row.try_get("digest").map_err(db_error)?,
                        source_type: row.try_get("source_type").map_err(db_error)?,
                        source: row.try_get("source").map_err(db_error)?,
                        schema: row.try_get("dataset_schema").map_err(db_error)?,
                        profile: row.try_get("profile").map_err(db_error)?,
                    },
                });
        }
        let mut model_inputs: HashMap<String, Vec<ModelIo>> = HashMap::new();
        let mut model_outputs: HashMap<String, Vec<ModelIo>> = HashMap::new();
        let mut sql = Sql::new(
            "SELECT run_id, model_id, step, direction FROM run_model_links WHERE run_id IN ",
        );
        sql.bind_list(ids());
        for row in sql.query().fetch_all(&self.pool).await.map_err(db_error)? {
            let direction: String = row.try_get("direction").map_err(db_error)?;
            let into = if direction == "input" {
                &mut model_inputs
            } else {
                &mut model_outputs
            };
            into.entry(row.try_get("run_id").map_err(db_error)?)
                .or_default()
                .push(ModelIo {
                    model_id: row.try_get("model_id").map_err(db_error)?,
                    step: row.try_get("step").map_err(db_error)?,
                });
        }
        Ok(infos
            .into_iter()
            .map(|info| {
                let id = info.run_id.clone();
                Run {
                    metrics: metrics.remove(&id).unwrap_or_default(),
                    params: params.remove(&id).unwrap_or_default(),
                    tags: tags.remove(&id).unwrap_or_default(),
                    dataset_inputs: inputs.remove(&id).unwrap_or_default(),
                    model_inputs: model_inputs.remove(&id).unwrap_or_default(),
                    model_outputs: model_outputs.remove(&id).unwrap_or_default(),
                    info,
                }
            })
            .collect())
    }

    pub async fn update_run(&self, run_id: &str, patch: &RunPatch) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        sqlx::query(
            "UPDATE runs SET status = COALESCE($1, status), end_time = COALESCE($2, end_time), \
             run_name = COALESCE($3, run_name) WHERE run_id = $4",
        )
        .bind(patch.status.map(|s| s.as_str()))
        .bind(patch.end_time)
        .bind(patch.run_name.as_deref())
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if let Some(name) = &patch.run_name {
            upsert_tag(&mut tx, run_id, &Tag::new("mlflow.runName", name.clone())).await?;
        }
        tx.commit().await.map_err(db_error)
    }

    pub async fn set_run_stage(&self, run_id: &str, stage: LifecycleStage) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        sqlx::query("UPDATE runs SET lifecycle_stage = $1 WHERE run_id = $2")
            .bind(stage.as_str())
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    /// Writes metrics, params and tags in one transaction: all of it lands or none does.
    /// A param already logged with a different value fails the whole batch.
    pub async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[MetricSeries],
        params: &[Tag],
        tags: &[Tag],
    ) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        if !params.is_empty() {
            let mut sql = Sql::new("SELECT key, value FROM params WHERE run_id = ");
            sql.bind_text(run_id).push(" AND key IN ");
            sql.bind_list(params.iter().map(|p| Arg::Text(p.key.clone())));
            let existing: HashMap<String, String> = sql
                .query()
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get("key").map_err(db_error)?,
                        row.try_get("value").map_err(db_error)?,
                    ))
                })
                .collect::<Result<_>>()?;
            let changed: Vec<String> = params
                .iter()
                .filter(|p| existing.get(&p.key).is_some_and(|old| *old != p.value))
                .map(|p| format!("{}: '{}' -> '{}'", p.key, existing[&p.key], p.value))
                .collect();
            if !changed.is_empty() {
                return Err(Error::invalid(format!(
                    "Changing param values is not allowed. Params already logged for run '{run_id}' with other values: {}",
                    changed.join(", ")
                )));
            }
            for p in params {
                sqlx::query("INSERT INTO params (run_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (run_id, key) DO NOTHING")
                    .bind(run_id)
                    .bind(&p.key)
                    .bind(&p.value)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
        }
        for tag in tags {
            upsert_tag(&mut tx, run_id, tag).await?;
        }
        crate::metrics::append(&mut tx, run_id, metrics).await?;
        tx.commit().await.map_err(db_error)
    }

    /// Deletes a run tag; returns whether it existed.
    pub async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<bool> {
        let (_guard, mut tx) = self.write().await?;
        let done = sqlx::query("DELETE FROM run_tags WHERE run_id = $1 AND key = $2")
            .bind(run_id)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    /// Adds AzureML properties. A key that already holds another value fails the whole call.
    pub async fn add_run_properties(&self, run_id: &str, properties: &[Tag]) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        for p in properties {
            let old: Option<String> = sqlx::query_scalar(
                "SELECT value FROM run_properties WHERE run_id = $1 AND key = $2",
            )
            .bind(run_id)
            .bind(&p.key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            match old {
                Some(old) if old != p.value => {
                    return Err(Error::invalid(format!(
                        "Property '{}' of run '{run_id}' is already '{old}'; properties cannot be changed once set",
                        p.key
                    )));
                }
                Some(_) => {}
                None => {
                    sqlx::query(
                        "INSERT INTO run_properties (run_id, key, value) VALUES ($1, $2, $3)",
                    )
                    .bind(run_id)
                    .bind(&p.key)
                    .bind(&p.value)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                }
            }
        }
        tx.commit().await.map_err(db_error)
    }

    pub async fn get_run_properties(&self, run_id: &str) -> Result<Vec<Tag>> {
        sqlx::query("SELECT run_id, key, value FROM run_properties WHERE run_id = $1 ORDER BY key")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .iter()
            .map(|row| key_value(row).map(|(_, t)| t))
            .collect()
    }

    /// Records datasets a run read, creating each dataset once per experiment.
    pub async fn log_inputs(
        &self,
        run_id: &str,
        experiment_id: i64,
        inputs: &[DatasetInput],
    ) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        for input in inputs {
            let d = &input.dataset;
            sqlx::query(
                "INSERT INTO datasets (experiment_id, name, digest, source_type, source, dataset_schema, profile) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (experiment_id, name, digest) DO NOTHING",
            )
            .bind(experiment_id)
            .bind(&d.name)
            .bind(&d.digest)
            .bind(&d.source_type)
            .bind(&d.source)
            .bind(d.schema.as_deref())
            .bind(d.profile.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            let dataset_id: i64 = sqlx::query_scalar(
                "SELECT dataset_id FROM datasets WHERE experiment_id = $1 AND name = $2 AND digest = $3",
            )
            .bind(experiment_id)
            .bind(&d.name)
            .bind(&d.digest)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
            let tags: Vec<(&str, &str)> = input
                .tags
                .iter()
                .map(|t| (t.key.as_str(), t.value.as_str()))
                .collect();
            let tags_json =
                serde_json::to_string(&tags).map_err(|e| Error::internal(e.to_string()))?;
            sqlx::query(
                "INSERT INTO dataset_inputs (run_id, dataset_id, tags_json) VALUES ($1, $2, $3) \
                 ON CONFLICT (run_id, dataset_id) DO UPDATE SET tags_json = excluded.tags_json",
            )
            .bind(run_id)
            .bind(dataset_id)
            .bind(tags_json)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    /// Links logged models to a run as its inputs or outputs.
    pub async fn link_models(&self, run_id: &str, models: &[ModelIo], output: bool) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        for m in models {
            sqlx::query(
                "INSERT INTO run_model_links (run_id, model_id, step, direction) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (run_id, model_id, direction) DO UPDATE SET step = excluded.step",
            )
            .bind(run_id)
            .bind(&m.model_id)
            .bind(m.step)
            .bind(if output { "output" } else { "input" })
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }
}

async fn upsert_tag(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    run_id: &str,
    tag: &Tag,
) -> Result<()> {
    upsert_key_value(tx, "run_tags", "run_id", Arg::Text(run_id.to_string()), tag).await
}

use std::collections::HashMap;

use kittiwake_domain::{
    Dataset, DatasetInput, Error, LifecycleStage, Metric, MetricPoint, MetricSeries, Millis,
    ModelIo, Result, Run, RunInfo, RunStatus, Tag,
};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::sql::{Arg, Sql};
use crate::{Store, db_error};

pub(crate) const RUN_COLUMNS: &str = "r.run_id, r.experiment_id, r.run_name, r.user_id, r.status, r.start_time, r.end_time, r.artifact_uri, r.lifecycle_stage";

/// What creating a run needs; the service fills in defaults.
pub struct NewRun<'a> {
    pub run_id: &'a str,
    pub experiment_id: i64,
    pub run_name: &'a str,
    pub user_id: &'a str,
    pub start_time: Millis,
    pub tags: &'a [Tag],
    /// A submitted run starts `SCHEDULED` with its job `Queued`; an interactive one `RUNNING`.
    pub job: Option<crate::jobs::NewJob<'a>>,
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

/// The run columns of the `runs` row aliased `alias`, followed by its params and tags, each packed
/// into one text column, and `linked`: whether the run has dataset inputs or model links, so that
/// reading a run without any costs no query for them. Hundreds of key/value rows cost far more to carry out of the database one
/// row at a time than to pack into a string there and split here. The packing is
/// `<bytes>:<key><bytes>:<value>` repeated, which needs no escaping, and `string_agg` and
/// `octet_length` are spelled the same in SQLite and PostgreSQL.
pub(crate) fn run_with_params_and_tags(alias: &str) -> String {
    let columns = RUN_COLUMNS.replace("r.", &format!("{alias}."));
    let packed = |table: &str| {
        format!(
            "(SELECT string_agg(octet_length(kv.key) || ':' || kv.key || octet_length(kv.value) || ':' || kv.value, '') \
             FROM {table} kv WHERE kv.run_id = {alias}.run_id)"
        )
    };
    format!(
        "{columns}, {} AS packed_params, {} AS packed_tags, \
         CASE WHEN EXISTS (SELECT 1 FROM dataset_inputs di WHERE di.run_id = {alias}.run_id) \
         OR EXISTS (SELECT 1 FROM run_model_links ml WHERE ml.run_id = {alias}.run_id) \
         THEN 1 ELSE 0 END AS linked",
        packed("params"),
        packed("run_tags")
    )
}

/// A run read with [`run_with_params_and_tags`], and whether it is `linked`; its metrics, inputs
/// and outputs come from [`Store::with_metrics_and_links`].
pub(crate) fn run_from_row(row: &AnyRow) -> Result<(Run, bool)> {
    let unpack = |column: &str| -> Result<Vec<Tag>> {
        let packed: Option<String> = row.try_get(column).map_err(db_error)?;
        let mut pairs = unpack_pairs(packed.as_deref().unwrap_or_default())?;
        pairs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(pairs)
    };
    let run = Run {
        info: run_info_from_row(row)?,
        params: unpack("packed_params")?,
        tags: unpack("packed_tags")?,
        metrics: Vec::new(),
        dataset_inputs: Vec::new(),
        model_inputs: Vec::new(),
        model_outputs: Vec::new(),
    };
    let linked: i64 = row.try_get("linked").map_err(db_error)?;
    Ok((run, linked != 0))
}

/// Splits what [`run_with_params_and_tags`] packed back into key/value pairs.
fn unpack_pairs(mut packed: &str) -> Result<Vec<Tag>> {
    fn next<'a>(packed: &mut &'a str) -> Result<&'a str> {
        let corrupt = || Error::internal("corrupt packed key/value list from the metadata store");
        let (length, rest) = packed.split_once(':').ok_or_else(corrupt)?;
        let length: usize = length.parse().map_err(|_| corrupt())?;
        let text = rest.get(..length).ok_or_else(corrupt)?;
        *packed = &rest[length..];
        Ok(text)
    }
    let mut pairs = Vec::new();
    while !packed.is_empty() {
        let key = next(&mut packed)?;
        pairs.push(Tag::new(key, next(&mut packed)?));
    }
    Ok(pairs)
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
    /// Creates a run in an active experiment, below the experiment's artifact location, and returns
    /// the run's artifact URI; `None` (nothing written) if no active experiment has that id.
    pub async fn create_run(&self, run: NewRun<'_>) -> Result<Option<String>> {
        let (_guard, mut tx) = self.write().await?;
        let artifact_uri: Option<String> = sqlx::query_scalar(
            "INSERT INTO runs (run_id, experiment_id, run_name, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage) \
             SELECT $1, e.experiment_id, $3, $4, $6, $5, NULL, e.artifact_location || '/' || $1 || '/artifacts', 'active' \
             FROM experiments e WHERE e.experiment_id = $2 AND e.lifecycle_stage = 'active' \
             RETURNING artifact_uri",
        )
        .bind(run.run_id)
        .bind(run.experiment_id)
        .bind(run.run_name)
        .bind(run.user_id)
        .bind(run.start_time)
        .bind(if run.job.is_some() {
            RunStatus::Scheduled.as_str()
        } else {
            RunStatus::Running.as_str()
        })
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        if artifact_uri.is_none() {
            return Ok(None);
        }
        if !run.tags.is_empty() {
            set_tags_if_active(&mut *tx, run.run_id, run.tags).await?;
        }
        if let Some(job) = &run.job {
            crate::jobs::insert_job(&mut tx, run.run_id, job).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(artifact_uri)
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
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM runs r WHERE r.run_id = $1",
            run_with_params_and_tags("r")
        )))
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .ok_or_else(|| Error::not_found(format!("Run with id={run_id} not found")))?;
        let mut runs = self
            .with_metrics_and_links(vec![run_from_row(&row)?])
            .await?;
        Ok(runs.remove(0))
    }

    /// Completes runs read with [`run_from_row`]: latest metrics for all (one query), then model
    /// links and dataset inputs (one query each) for the runs that have any.
    pub(crate) async fn with_metrics_and_links(&self, rows: Vec<(Run, bool)>) -> Result<Vec<Run>> {
        let linked: Vec<Arg> = rows
            .iter()
            .filter(|(_, linked)| *linked)
            .map(|(run, _)| Arg::Text(run.info.run_id.clone()))
            .collect();
        let mut runs: Vec<Run> = rows.into_iter().map(|(run, _)| run).collect();
        if runs.is_empty() {
            return Ok(runs);
        }
        let mut metrics: HashMap<String, Vec<Metric>> = HashMap::new();
        let mut sql = Sql::new(
            "SELECT run_id, key, value, is_nan, step, timestamp FROM latest_metrics WHERE run_id IN ",
        );
        sql.bind_list(runs.iter().map(|r| Arg::Text(r.info.run_id.clone())));
        sql.push(" ORDER BY key");
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
        let mut model_inputs: HashMap<String, Vec<ModelIo>> = HashMap::new();
        let mut model_outputs: HashMap<String, Vec<ModelIo>> = HashMap::new();
        let mut inputs: HashMap<String, Vec<DatasetInput>> = HashMap::new();
        if !linked.is_empty() {
            let mut sql = Sql::new(
                "SELECT run_id, model_id, step, direction FROM run_model_links WHERE run_id IN ",
            );
            sql.bind_list(linked.iter().cloned());
            sql.push(" ORDER BY model_id");
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
            let mut sql = Sql::new(
                "SELECT i.run_id, i.tags_json, d.name, d.digest, d.source_type, d.source, d.dataset_schema, d.profile \
                 FROM dataset_inputs i JOIN datasets d ON d.dataset_id = i.dataset_id WHERE i.run_id IN ",
            );
            sql.bind_list(linked);
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
        }
        for run in &mut runs {
            let id = &run.info.run_id;
            run.metrics = metrics.remove(id).unwrap_or_default();
            run.dataset_inputs = inputs.remove(id).unwrap_or_default();
            run.model_inputs = model_inputs.remove(id).unwrap_or_default();
            run.model_outputs = model_outputs.remove(id).unwrap_or_default();
        }
        Ok(runs)
    }

    /// Updates an active run and returns it as updated; `None` if no active run has this id.
    pub async fn update_active_run(
        &self,
        run_id: &str,
        patch: &RunPatch,
    ) -> Result<Option<RunInfo>> {
        // RETURNING takes bare column names.
        let columns = RUN_COLUMNS.replace("r.", "");
        let update = format!(
            "UPDATE runs SET status = COALESCE($1, status), end_time = COALESCE($2, end_time), \
             run_name = COALESCE($3, run_name) WHERE run_id = $4 AND lifecycle_stage = 'active' \
             RETURNING {columns}"
        );
        let update = || {
            sqlx::query(AssertSqlSafe(update.clone()))
                .bind(patch.status.map(|s| s.as_str()))
                .bind(patch.end_time)
                .bind(patch.run_name.as_deref())
                .bind(run_id)
        };
        let Some(name) = &patch.run_name else {
            // Status and end time alone (ending a run, the common call) are one statement,
            // atomic by itself.
            let _guard = self.write_lock.lock().await;
            let row = update()
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
            return row.as_ref().map(run_info_from_row).transpose();
        };
        let (_guard, mut tx) = self.write().await?;
        let Some(row) = update().fetch_optional(&mut *tx).await.map_err(db_error)? else {
            return Ok(None);
        };
        set_tags_if_active(
            &mut *tx,
            run_id,
            &[Tag::new("mlflow.runName", name.clone())],
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        run_info_from_row(&row).map(Some)
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

    /// Writes metrics, params and tags of an active run: all of it lands or none does. Returns
    /// `false`, writing nothing, when the run is missing or not active. A param already logged
    /// with a different value fails the whole batch.
    pub async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[MetricSeries],
        params: &[Tag],
        tags: &[Tag],
    ) -> Result<bool> {
        // The common calls (log a metric, set a tag) are one statement, atomic by itself.
        if params.is_empty() && (metrics.is_empty() || tags.is_empty()) {
            let _guard = self.write_lock.lock().await;
            return if tags.is_empty() {
                crate::metrics::append(&self.pool, run_id, metrics).await
            } else {
                set_tags_if_active(&self.pool, run_id, tags).await
            };
        }
        let (_guard, mut tx) = self.write().await?;
        if !run_is_active(&mut *tx, run_id).await? {
            return Ok(false);
        }
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
            let mut sql = Sql::new("INSERT INTO params (run_id, key, value) VALUES ");
            for (i, p) in params.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind_text(run_id)
                    .push(", ")
                    .bind_text(p.key.clone())
                    .push(", ")
                    .bind_text(p.value.clone());
                sql.push(")");
            }
            sql.push(" ON CONFLICT (run_id, key) DO NOTHING");
            sql.query().execute(&mut *tx).await.map_err(db_error)?;
        }
        if !tags.is_empty() {
            set_tags_if_active(&mut *tx, run_id, tags).await?;
        }
        crate::metrics::append(&mut *tx, run_id, metrics).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
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

/// Sets tags of an active run in one statement; a key given twice keeps its last value.
/// Returns whether the run was active (nothing is written otherwise).
async fn set_tags_if_active<'e, E>(executor: E, run_id: &str, tags: &[Tag]) -> Result<bool>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let mut unique: Vec<&Tag> = Vec::with_capacity(tags.len());
    for tag in tags.iter().rev() {
        if !unique.iter().any(|t| t.key == tag.key) {
            unique.push(tag);
        }
    }
    if unique.is_empty() {
        return run_is_active(executor, run_id).await;
    }
    let mut sql = Sql::new("INSERT INTO run_tags (run_id, key, value) SELECT ");
    // The run id is $1, which the EXISTS clause below refers to again.
    sql.bind_text(run_id);
    sql.push(", column1, column2 FROM (VALUES ");
    for (i, tag) in unique.iter().enumerate() {
        sql.push(if i == 0 { "(" } else { ", (" });
        sql.bind_text(tag.key.clone())
            .push(", ")
            .bind_text(tag.value.clone())
            .push(")");
    }
    sql.push(
        ") AS tags WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = $1 AND lifecycle_stage = 'active') \
         ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
    );
    let done = sql.query().execute(executor).await.map_err(db_error)?;
    Ok(done.rows_affected() > 0)
}

/// Whether the run exists and is active.
pub(crate) async fn run_is_active<'e, E>(executor: E, run_id: &str) -> Result<bool>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM runs WHERE run_id = $1 AND lifecycle_stage = 'active'")
            .bind(run_id)
            .fetch_optional(executor)
            .await
            .map_err(db_error)?;
    Ok(found.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn params_and_tags_survive_packing_whatever_they_contain() {
        let (_dir, store) = crate::tests::temp_store().await;
        let awkward = [
            ("", ""),
            ("a:b", "12:34"),
            ("3:x", "0:"),
            ("ünïcødé", "日本語 🐦"),
            ("nul", "before\0after"),
            ("long", &"9:".repeat(3000)),
        ];
        let tags: Vec<Tag> = awkward.iter().map(|(k, v)| Tag::new(*k, *v)).collect();
        let run_id = "0123456789abcdef0123456789abcdef";
        let created = store
            .create_run(NewRun {
                run_id,
                experiment_id: 0,
                run_name: "r",
                user_id: "u",
                start_time: 0,
                tags: &tags,
                job: None,
            })
            .await
            .unwrap();
        assert_eq!(
            created.as_deref(),
            Some("mlflow-artifacts:/0/0123456789abcdef0123456789abcdef/artifacts")
        );
        store.log_batch(run_id, &[], &tags, &[]).await.unwrap();
        let run = store.get_run(run_id).await.unwrap();
        let mut expected = tags.clone();
        expected.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(run.tags, expected);
        assert_eq!(run.params, expected);
    }

    #[tokio::test]
    async fn no_run_is_created_outside_an_active_experiment() {
        let (_dir, store) = crate::tests::temp_store().await;
        let run = |experiment_id| NewRun {
            run_id: "0123456789abcdef0123456789abcdef",
            experiment_id,
            run_name: "r",
            user_id: "u",
            start_time: 0,
            tags: &[],
            job: None,
        };
        assert_eq!(store.create_run(run(42)).await.unwrap(), None);
        store
            .set_experiment_stage(0, LifecycleStage::Deleted, 1)
            .await
            .unwrap();
        assert_eq!(store.create_run(run(0)).await.unwrap(), None);
        assert!(store.get_run_info(run(0).run_id).await.is_err());
    }
}

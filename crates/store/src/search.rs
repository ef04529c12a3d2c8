//! Turns parsed search requests into SQL. Filters become `EXISTS` subqueries against the
//! key/value tables, so a run with many params never multiplies result rows.

use kittiwake_domain::search::{Clause, Entity, Op, OrderBy, Value};
use kittiwake_domain::{Experiment, LifecycleStage, LoggedModel, Result, Run, ViewType};

use crate::runs::{run_from_row, run_with_params_and_tags};
use crate::sql::{Arg, Sql};
use crate::{Store, db_error};

pub struct RunQuery<'a> {
    pub experiment_ids: &'a [i64],
    pub filter: &'a [Clause],
    pub order_by: &'a [OrderBy],
    pub view: ViewType,
    pub offset: i64,
    pub limit: i64,
}

pub struct ExperimentQuery<'a> {
    pub filter: &'a [Clause],
    pub order_by: &'a [OrderBy],
    pub view: ViewType,
    pub offset: i64,
    pub limit: i64,
}

pub struct ModelQuery<'a> {
    pub experiment_ids: &'a [i64],
    pub filter: &'a [Clause],
    pub order_by: &'a [OrderBy],
    pub offset: i64,
    pub limit: i64,
}

fn stages(sql: &mut Sql, column: &str, view: ViewType) {
    sql.push(&format!(" AND {column} IN "));
    sql.bind_list(view.stages().iter().map(|s| Arg::Text(s.as_str().into())));
}

fn value_arg(v: &Value) -> Arg {
    match v {
        Value::Number(n) => Arg::Float(*n),
        Value::Text(s) => Arg::Text(s.clone()),
        Value::List(_) | Value::Null => Arg::Text(String::new()),
    }
}

/// Appends `column OP value` for string comparisons, with ILIKE as a lower-cased LIKE.
fn compare(sql: &mut Sql, column: &str, op: Op, value: &Value) {
    match (op, value) {
        (Op::ILike, _) => {
            sql.push(&format!("LOWER({column}) LIKE LOWER("));
            sql.bind(value_arg(value)).push(")");
        }
        (Op::In | Op::NotIn, Value::List(items)) => {
            sql.push(&format!("{column} {} ", op.sql()));
            sql.bind_list(items.iter().map(|i| Arg::Text(i.clone())));
        }
        _ => {
            sql.push(&format!("{column} {} ", op.sql()));
            sql.bind(value_arg(value));
        }
    }
}

/// Appends one filter clause about the row aliased `owner` whose id column is `id_column`.
/// `kv` names the tag, param and metric tables of that kind of row.
fn clause_sql(sql: &mut Sql, clause: &Clause, id_column: &str, kv: &KeyValueTables) {
    let Clause {
        entity,
        key,
        op,
        value,
    } = clause;
    match entity {
        Entity::Attribute => compare(sql, &format!("o.{key}"), *op, value),
        Entity::Dataset => {
            sql.push(&format!(
                "EXISTS (SELECT 1 FROM dataset_inputs di JOIN datasets d ON d.dataset_id = di.dataset_id WHERE di.run_id = o.{id_column} AND "
            ));
            if key == "context" {
                sql.push("di.tags_json LIKE ");
                let text = match value {
                    Value::Text(s) => s.clone(),
                    _ => String::new(),
                };
                sql.bind_text(format!("%\"mlflow.data.context\",\"{text}\"%"));
            } else {
                compare(sql, &format!("d.{key}"), *op, value);
            }
            sql.push(")");
        }
        Entity::Metric => {
            sql.push(&format!(
                "EXISTS (SELECT 1 FROM {} m WHERE m.{} = o.{id_column} AND m.key = ",
                kv.metrics, kv.owner_column
            ));
            sql.bind_text(key.clone());
            sql.push(&format!(" AND m.value {} ", op.sql()));
            sql.bind(value_arg(value)).push(")");
        }
        Entity::Param | Entity::Tag => {
            let table = if *entity == Entity::Param {
                kv.params
            } else {
                kv.tags
            };
            let negate = *op == Op::IsNull;
            sql.push(&format!(
                "{}EXISTS (SELECT 1 FROM {table} t WHERE t.{} = o.{id_column} AND t.key = ",
                if negate { "NOT " } else { "" },
                kv.owner_column
            ));
            sql.bind_text(key.clone());
            if !matches!(op, Op::IsNull | Op::IsNotNull) {
                sql.push(" AND ");
                compare(sql, "t.value", *op, value);
            }
            sql.push(")");
        }
    }
}

struct KeyValueTables {
    owner_column: &'static str,
    params: &'static str,
    tags: &'static str,
    metrics: &'static str,
}

const RUN_TABLES: KeyValueTables = KeyValueTables {
    owner_column: "run_id",
    params: "params",
    tags: "run_tags",
    metrics: "latest_metrics",
};
const EXPERIMENT_TABLES: KeyValueTables = KeyValueTables {
    owner_column: "experiment_id",
    params: "experiment_tags",
    tags: "experiment_tags",
    metrics: "experiment_tags",
};
const MODEL_TABLES: KeyValueTables = KeyValueTables {
    owner_column: "model_id",
    params: "logged_model_params",
    tags: "logged_model_tags",
    // Unused: a model's metrics are those of its source run, filtered through RUN_TABLES.
    metrics: "latest_metrics",
};

/// Joins a row's metric, param or tag values used by the ordering and returns the ORDER BY terms;
/// missing values sort last whatever the direction, as in MLflow. One join per ordered key lets
/// the database look each value up once instead of once per sort comparison. `joined` lists metric
/// keys already inner-joined by the filter (alias `f<i>`), which the ordering reuses.
fn order_joins(
    sql: &mut Sql,
    order_by: &[OrderBy],
    id_column: &str,
    kv: &KeyValueTables,
    joined: &[(String, String)],
) -> Vec<String> {
    let mut terms = Vec::new();
    for (i, o) in order_by.iter().enumerate() {
        let dir = if o.ascending { "ASC" } else { "DESC" };
        let table = match o.entity {
            Entity::Attribute => {
                terms.push(format!("o.{} {dir}", o.key));
                continue;
            }
            Entity::Dataset => continue,
            Entity::Metric => kv.metrics,
            Entity::Param => kv.params,
            Entity::Tag => kv.tags,
        };
        let reused = (o.entity == Entity::Metric)
            .then(|| {
                joined
                    .iter()
                    .find(|(key, _)| *key == o.key)
                    .map(|(_, alias)| alias.clone())
            })
            .flatten();
        let alias = match reused {
            Some(alias) => {
                // Inner-joined by the filter, so never missing: order as the metric index does.
                terms.push(format!("{alias}.is_nan, {alias}.value {dir}"));
                continue;
            }
            None => {
                let alias = format!("ob{i}");
                sql.push(&format!(
                    " LEFT JOIN {table} {alias} ON {alias}.{} = o.{id_column} AND {alias}.key = ",
                    kv.owner_column
                ));
                sql.bind_text(o.key.clone());
                alias
            }
        };
        if o.entity == Entity::Metric {
            terms.push(format!(
                "{alias}.value IS NULL, {alias}.is_nan, {alias}.value {dir}"
            ));
        } else {
            terms.push(format!("{alias}.value IS NULL, {alias}.value {dir}"));
        }
    }
    terms
}

fn order_by_terms(sql: &mut Sql, mut terms: Vec<String>, tail: &str) {
    terms.push(tail.to_string());
    sql.push(" ORDER BY ");
    sql.push(&terms.join(", "));
}

/// The page's bounds are written into the statement as numbers, not bound: SQLite re-plans a
/// statement whose bound LIMIT changes, on every execution, which cost more than the search.
fn page(sql: &mut Sql, offset: i64, limit: i64) {
    sql.push(&format!(" LIMIT {} OFFSET {offset}", limit + 1));
}

impl Store {
    /// Returns one page of runs and whether more follow.
    pub async fn search_runs(&self, q: &RunQuery<'_>) -> Result<(Vec<Run>, bool)> {
        if q.experiment_ids.is_empty() {
            return Ok((Vec::new(), false));
        }
        let mut sql = Sql::new(format!(
            "SELECT {} FROM runs o",
            run_with_params_and_tags("o")
        ));
        // Metric filters become inner joins so the database can start from the metric index
        // (key, value) rather than from every run of the experiment.
        let mut joined = Vec::new();
        for (i, c) in q
            .filter
            .iter()
            .enumerate()
            .filter(|(_, c)| c.entity == Entity::Metric)
        {
            let alias = format!("f{i}");
            sql.push(&format!(
                " JOIN latest_metrics {alias} ON {alias}.run_id = o.run_id AND {alias}.key = "
            ));
            sql.bind_text(c.key.clone());
            // Naming both is_nan values lets the database range-scan the (key, is_nan, value) index.
            sql.push(&format!(
                " AND {alias}.is_nan IN (0, 1) AND {alias}.value {} ",
                c.op.sql()
            ));
            sql.bind(value_arg(&c.value));
            joined.push((c.key.clone(), alias));
        }
        let terms = order_joins(&mut sql, q.order_by, "run_id", &RUN_TABLES, &joined);
        sql.push(" WHERE o.experiment_id IN ");
        sql.bind_list(q.experiment_ids.iter().map(|id| Arg::Int(*id)));
        stages(&mut sql, "o.lifecycle_stage", q.view);
        for clause in q.filter.iter().filter(|c| c.entity != Entity::Metric) {
            sql.push(" AND ");
            clause_sql(&mut sql, clause, "run_id", &RUN_TABLES);
        }
        order_by_terms(&mut sql, terms, "o.start_time DESC, o.run_id");
        page(&mut sql, q.offset, q.limit);
        let rows = sql.query().fetch_all(&self.pool).await.map_err(db_error)?;
        let more = rows.len() as i64 > q.limit;
        let runs = rows
            .iter()
            .take(q.limit as usize)
            .map(run_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok((self.with_metrics_and_links(runs).await?, more))
    }

    pub async fn search_experiments(
        &self,
        q: &ExperimentQuery<'_>,
    ) -> Result<(Vec<Experiment>, bool)> {
        let mut sql = Sql::new(
            "SELECT o.experiment_id, o.name, o.artifact_location, o.lifecycle_stage, o.creation_time, o.last_update_time FROM experiments o",
        );
        let terms = order_joins(
            &mut sql,
            q.order_by,
            "experiment_id",
            &EXPERIMENT_TABLES,
            &[],
        );
        sql.push(" WHERE 1 = 1");
        stages(&mut sql, "o.lifecycle_stage", q.view);
        for clause in q.filter {
            sql.push(" AND ");
            if clause.entity == Entity::Attribute && clause.key == "experiment_id" {
                // Experiment ids are integers in the database and strings on the wire.
                compare(
                    &mut sql,
                    "CAST(o.experiment_id AS TEXT)",
                    clause.op,
                    &clause.value,
                );
            } else {
                clause_sql(&mut sql, clause, "experiment_id", &EXPERIMENT_TABLES);
            }
        }
        order_by_terms(&mut sql, terms, "o.creation_time DESC, o.experiment_id ASC");
        page(&mut sql, q.offset, q.limit);
        let mut experiments = self.experiments_by_sql(&sql).await?;
        let more = experiments.len() as i64 > q.limit;
        experiments.truncate(q.limit as usize);
        Ok((experiments, more))
    }

    pub async fn search_logged_models(
        &self,
        q: &ModelQuery<'_>,
    ) -> Result<(Vec<LoggedModel>, bool)> {
        let mut sql = Sql::new("SELECT o.model_id FROM logged_models o");
        let terms = order_joins(&mut sql, q.order_by, "model_id", &MODEL_TABLES, &[]);
        sql.push(" WHERE o.lifecycle_stage = ");
        sql.bind_text(LifecycleStage::Active.as_str());
        if !q.experiment_ids.is_empty() {
            sql.push(" AND o.experiment_id IN ");
            sql.bind_list(q.experiment_ids.iter().map(|id| Arg::Int(*id)));
        }
        for clause in q.filter {
            sql.push(" AND ");
            if clause.entity == Entity::Metric {
                clause_sql(&mut sql, clause, "source_run_id", &RUN_TABLES);
            } else {
                clause_sql(&mut sql, clause, "model_id", &MODEL_TABLES);
            }
        }
        order_by_terms(&mut sql, terms, "o.creation_timestamp DESC, o.model_id");
        page(&mut sql, q.offset, q.limit);
        let ids: Vec<String> = sql
            .query()
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .iter()
            .map(|row| sqlx::Row::try_get(row, "model_id").map_err(db_error))
            .collect::<Result<_>>()?;
        let more = ids.len() as i64 > q.limit;
        let mut models = Vec::new();
        for id in ids.iter().take(q.limit as usize) {
            models.push(self.get_logged_model(id).await?);
        }
        Ok((models, more))
    }
}

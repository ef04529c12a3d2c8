//! Metric storage. History is kept in chunks (one row per key per logging call) so that a call that
//! logs a thousand points writes one row, and reading a million-point history reads a few hundred.

use std::collections::HashMap;

use kittiwake_domain::{Error, MetricPoint, MetricSeries, Result, RichMetric, RichMetricKind};
use sqlx::Row;

use crate::sql::{Arg, Sql};
use crate::{Store, db_error};

const POINT_BYTES: usize = 24;

pub fn encode_points(points: &[MetricPoint]) -> Vec<u8> {
    let mut out = Vec::with_capacity(points.len() * POINT_BYTES);
    for p in points {
        out.extend_from_slice(&p.step.to_le_bytes());
        out.extend_from_slice(&p.timestamp.to_le_bytes());
        out.extend_from_slice(&p.value.to_le_bytes());
    }
    out
}

pub fn decode_points(data: &[u8], out: &mut Vec<MetricPoint>) -> Result<()> {
    if !data.len().is_multiple_of(POINT_BYTES) {
        return Err(Error::internal(
            "corrupt metric chunk: length is not a whole number of points",
        ));
    }
    out.reserve(data.len() / POINT_BYTES);
    for c in data.chunks_exact(POINT_BYTES) {
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&c[i * 8..i * 8 + 8]);
            b
        };
        out.push(MetricPoint {
            step: i64::from_le_bytes(word(0)),
            timestamp: i64::from_le_bytes(word(1)),
            value: f64::from_le_bytes(word(2)),
        });
    }
    Ok(())
}

/// MLflow's rule for which point is a metric's current value: the greatest (step, timestamp, value),
/// with NaN below every number. The database applies the same rule across calls (see the
/// `metric_chunks_update_latest` trigger); this picks each call's candidate.
fn later(a: &MetricPoint, b: &MetricPoint) -> bool {
    let value_key = |v: f64| if v.is_nan() { f64::NEG_INFINITY } else { v };
    (a.step, a.timestamp) > (b.step, b.timestamp)
        || ((a.step, a.timestamp) == (b.step, b.timestamp)
            && value_key(a.value) > value_key(b.value))
}

/// Appends series to a run's history in one INSERT (the trigger keeps latest values), only if the
/// run is active. Returns whether it was: `false` means nothing was written.
pub(crate) async fn append<'e, E>(
    executor: E,
    run_id: &str,
    series: &[MetricSeries],
) -> Result<bool>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    // Calls may repeat a key (MLflow's log-batch lists points one by one); merge them so each key
    // costs one chunk.
    let mut merged: Vec<(&str, Vec<MetricPoint>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for s in series.iter().filter(|s| !s.points.is_empty()) {
        match index.get(s.key.as_str()) {
            Some(&i) => merged[i].1.extend_from_slice(&s.points),
            None => {
                index.insert(&s.key, merged.len());
                merged.push((&s.key, s.points.clone()));
            }
        }
    }
    if merged.is_empty() {
        return crate::runs::run_is_active(executor, run_id).await;
    }
    let mut sql = Sql::new(
        "INSERT INTO metric_chunks (run_id, key, points, data, latest_step, latest_timestamp, latest_value, latest_is_nan) SELECT ",
    );
    // The run id is $1, which the EXISTS clause below refers to again.
    sql.bind_text(run_id);
    sql.push(", column1, column2, column3, column4, column5, column6, column7 FROM (VALUES ");
    for (i, (key, points)) in merged.iter().enumerate() {
        let mut latest = points[0];
        for p in &points[1..] {
            if later(p, &latest) {
                latest = *p;
            }
        }
        let is_nan = latest.value.is_nan();
        sql.push(if i == 0 { "(" } else { ", (" });
        sql.bind_text(*key).push(", ");
        sql.bind(Arg::Int(points.len() as i64)).push(", ");
        sql.bind(Arg::Blob(encode_points(points))).push(", ");
        sql.bind(Arg::Int(latest.step)).push(", ");
        sql.bind(Arg::Int(latest.timestamp)).push(", ");
        sql.bind(Arg::Float(if is_nan { 0.0 } else { latest.value }))
            .push(", ");
        sql.bind(Arg::Int(is_nan as i64)).push(")");
    }
    sql.push(") AS points WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = $1 AND lifecycle_stage = 'active')");
    let done = sql.query().execute(executor).await.map_err(db_error)?;
    Ok(done.rows_affected() > 0)
}

/// All scalar series of a run, keyed by metric name, in the order they were logged.
pub type ScalarHistory = Vec<(String, Vec<MetricPoint>)>;

impl Store {
    /// The points of one metric in logging order. `offset` and `limit` page through them; only
    /// the chunks a page needs are read.
    pub async fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        offset: usize,
        limit: Option<usize>,
    ) -> Result<(Vec<MetricPoint>, bool)> {
        let sizes: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT chunk_id, points FROM metric_chunks WHERE run_id = $1 AND key = $2 ORDER BY chunk_id",
        )
        .bind(run_id)
        .bind(key)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let total: usize = sizes.iter().map(|(_, n)| *n as usize).sum();
        let end = limit.map_or(total, |l| total.min(offset.saturating_add(l)));
        if offset >= end {
            return Ok((Vec::new(), false));
        }
        // The chunks overlapping [offset, end), and where the first one starts.
        let mut first_start = 0usize;
        let mut wanted = (None, None);
        let mut position = 0usize;
        for (chunk_id, n) in &sizes {
            let next = position + *n as usize;
            if next > offset && position < end {
                if wanted.0.is_none() {
                    wanted.0 = Some(*chunk_id);
                    first_start = position;
                }
                wanted.1 = Some(*chunk_id);
            }
            position = next;
        }
        let (Some(from), Some(to)) = wanted else {
            return Ok((Vec::new(), false));
        };
        let rows = sqlx::query(
            "SELECT data FROM metric_chunks WHERE run_id = $1 AND key = $2 AND chunk_id BETWEEN $3 AND $4 ORDER BY chunk_id",
        )
        .bind(run_id)
        .bind(key)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut points = Vec::with_capacity(end - offset);
        for row in rows {
            let data: Vec<u8> = row.try_get("data").map_err(db_error)?;
            decode_points(&data, &mut points)?;
        }
        points.drain(..offset - first_start);
        points.truncate(end - offset);
        Ok((points, end < total))
    }

    /// Every scalar series of a run, or only the one called `key`.
    pub async fn metric_histories(&self, run_id: &str, key: Option<&str>) -> Result<ScalarHistory> {
        let rows = sqlx::query(
            "SELECT key, data FROM metric_chunks WHERE run_id = $1 AND ($2 IS NULL OR key = $2) ORDER BY key, chunk_id",
        )
        .bind(run_id)
        .bind(key)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut out: ScalarHistory = Vec::new();
        for row in rows {
            let key: String = row.try_get("key").map_err(db_error)?;
            let data: Vec<u8> = row.try_get("data").map_err(db_error)?;
            if out.last().is_none_or(|(k, _)| *k != key) {
                out.push((key, Vec::new()));
            }
            if let Some((_, points)) = out.last_mut() {
                decode_points(&data, points)?;
            }
        }
        Ok(out)
    }

    /// Stores scalar series and AzureML's non-scalar metrics of an active run, all or nothing.
    /// Returns `false`, writing nothing, when the run is missing or not active.
    pub async fn log_metrics(
        &self,
        run_id: &str,
        scalars: &[MetricSeries],
        rich: &[RichMetric],
    ) -> Result<bool> {
        if rich.is_empty() {
            let _guard = self.write_lock.lock().await;
            return append(&self.pool, run_id, scalars).await;
        }
        let (_guard, mut tx) = self.write().await?;
        if !append(&mut *tx, run_id, scalars).await? {
            return Ok(false);
        }
        for m in rich {
            sqlx::query(
                "INSERT INTO rich_metrics (run_id, name, kind, value_json, description, timestamp) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(run_id)
            .bind(&m.name)
            .bind(m.kind.as_str())
            .bind(&m.value_json)
            .bind(&m.description)
            .bind(m.timestamp)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    /// AzureML's non-scalar metrics of a run in logging order, or only those called `name`.
    pub async fn rich_metrics(&self, run_id: &str, name: Option<&str>) -> Result<Vec<RichMetric>> {
        sqlx::query("SELECT name, kind, value_json, description, timestamp FROM rich_metrics WHERE run_id = $1 AND ($2 IS NULL OR name = $2) ORDER BY metric_id")
            .bind(run_id)
            .bind(name)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .iter()
            .map(|row| {
                Ok(RichMetric {
                    name: row.try_get("name").map_err(db_error)?,
                    kind: row.try_get::<String, _>("kind").map_err(db_error)?.parse::<RichMetricKind>()?,
                    value_json: row.try_get("value_json").map_err(db_error)?,
                    description: row.try_get("description").map_err(db_error)?,
                    timestamp: row.try_get("timestamp").map_err(db_error)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_round_trip_including_specials() {
        let points = vec![
            MetricPoint {
                step: -1,
                timestamp: 5,
                value: f64::NAN,
            },
            MetricPoint {
                step: 2,
                timestamp: i64::MAX,
                value: f64::INFINITY,
            },
            MetricPoint {
                step: 3,
                timestamp: 0,
                value: -0.5,
            },
        ];
        let mut back = Vec::new();
        decode_points(&encode_points(&points), &mut back).unwrap();
        assert!(back[0].value.is_nan());
        assert_eq!(back[1..], points[1..]);
        assert!(decode_points(&[0u8; 5], &mut back).is_err());
    }

    #[test]
    fn latest_prefers_step_then_time_then_value() {
        let p = |step, timestamp, value| MetricPoint {
            step,
            timestamp,
            value,
        };
        assert!(later(&p(2, 0, 0.0), &p(1, 9, 9.0)));
        assert!(later(&p(1, 2, 0.0), &p(1, 1, 9.0)));
        assert!(later(&p(1, 1, 2.0), &p(1, 1, 1.0)));
        assert!(later(&p(1, 1, 0.0), &p(1, 1, f64::NAN)));
        assert!(!later(&p(1, 1, f64::NAN), &p(1, 1, 0.0)));
    }
}

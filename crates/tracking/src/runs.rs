use kittiwake_domain::search::{Target, decode_page_token, encode_page_token};
use kittiwake_domain::validation::{
    MAX_BATCH_ENTITIES, MAX_BATCH_METRICS, MAX_BATCH_PARAMS, MAX_BATCH_TAGS,
    MAX_PARAM_VALUE_LENGTH, MAX_RUN_TAG_VALUE_LENGTH, check_key,
};
use kittiwake_domain::{
    DatasetInput, Error, JobDefinition, LifecycleStage, Metric, MetricPoint, MetricSeries, Millis,
    ModelIo, Result, RichMetric, Run, RunInfo, RunStatus, Tag, ViewType, ids, now_millis,
};
use kittiwake_store::{NewJob, NewRun, RunPatch, RunQuery, ScalarHistory};

use crate::names::{random_hex_id, random_run_name};
use crate::{Page, SearchRequest, Tracking, parse_experiment_ids};

pub const RUN_NAME_TAG: &str = "mlflow.runName";

pub struct NewRunRequest<'a> {
    pub experiment_id: &'a str,
    pub user_id: &'a str,
    pub run_name: Option<&'a str>,
    pub start_time: Option<Millis>,
    pub tags: Vec<Tag>,
    /// For a submitted run: what to execute. The run starts `SCHEDULED` with its job `Queued`.
    pub job: Option<&'a JobDefinition>,
}

/// All of a run's metrics: scalar series by name, then AzureML's other kinds in logging order.
pub struct RunMetrics {
    pub scalars: ScalarHistory,
    pub rich: Vec<RichMetric>,
}

/// MLflow truncates over-long param and tag values rather than refusing them; so do we.
fn truncate(value: &str, max: usize) -> String {
    match value.char_indices().nth(max) {
        Some((cut, _)) => value[..cut].to_string(),
        None => value.to_string(),
    }
}

impl Tracking {
    pub async fn create_run(&self, req: NewRunRequest<'_>) -> Result<Run> {
        let experiment_id = ids::parse_experiment_id(req.experiment_id)?;
        let mut tags = req.tags;
        for t in &mut tags {
            check_key("tag key", &t.key)?;
            t.value = truncate(&t.value, MAX_RUN_TAG_VALUE_LENGTH);
        }
        let tagged_name = tags
            .iter()
            .find(|t| t.key == RUN_NAME_TAG)
            .map(|t| t.value.clone());
        let run_name = match (req.run_name.filter(|n| !n.is_empty()), tagged_name) {
            (Some(name), Some(tagged)) if name != tagged => {
                return Err(Error::invalid(format!(
                    "Both 'run_name' ('{name}') and the '{RUN_NAME_TAG}' tag ('{tagged}') were given and differ"
                )));
            }
            (Some(name), _) => name.to_string(),
            (None, Some(tagged)) => tagged,
            (None, None) => random_run_name(),
        };
        tags.retain(|t| t.key != RUN_NAME_TAG);
        tags.push(Tag::new(RUN_NAME_TAG, run_name.clone()));
        // A key given twice keeps its last value; the run lists its tags by key.
        let mut seen = std::collections::HashSet::new();
        tags.reverse();
        tags.retain(|t| seen.insert(t.key.clone()));
        tags.sort_by(|a, b| a.key.cmp(&b.key));
        let run_id = random_hex_id();
        let user_id = if req.user_id.is_empty() {
            "unknown"
        } else {
            req.user_id
        };
        let start_time = req.start_time.unwrap_or_else(now_millis);
        let created = self
            .store
            .create_run(NewRun {
                run_id: &run_id,
                experiment_id,
                run_name: &run_name,
                user_id,
                start_time,
                tags: &tags,
                job: req.job.map(|definition| NewJob {
                    definition,
                    queued_at: start_time,
                }),
            })
            .await?;
        let Some(artifact_uri) = created else {
            // Not created: say whether the experiment is missing or not active.
            let experiment = self.store.get_experiment(experiment_id).await?;
            return Err(Error::invalid(format!(
                "The experiment {} must be in the 'active' state to create runs in it (it is '{}')",
                experiment.experiment_id,
                experiment.lifecycle_stage.as_str()
            )));
        };
        let info = RunInfo {
            artifact_uri,
            run_id,
            experiment_id,
            run_name,
            user_id: user_id.to_string(),
            status: if req.job.is_some() {
                RunStatus::Scheduled
            } else {
                RunStatus::Running
            },
            start_time,
            end_time: None,
            lifecycle_stage: LifecycleStage::Active,
        };
        // A new run holds exactly what was just written; no need to read it back.
        Ok(Run {
            info,
            metrics: Vec::new(),
            params: Vec::new(),
            tags,
            dataset_inputs: Vec::new(),
            model_inputs: Vec::new(),
            model_outputs: Vec::new(),
        })
    }

    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        self.store.get_run(ids::check_run_id(run_id)?).await
    }

    pub async fn get_run_info(&self, run_id: &str) -> Result<RunInfo> {
        self.store.get_run_info(ids::check_run_id(run_id)?).await
    }

    async fn active_run(&self, run_id: &str) -> Result<RunInfo> {
        let info = self.get_run_info(run_id).await?;
        if info.lifecycle_stage != LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "The run {run_id} must be in the 'active' state. Current state is deleted."
            )));
        }
        Ok(info)
    }

    pub async fn update_run(
        &self,
        run_id: &str,
        status: Option<RunStatus>,
        end_time: Option<Millis>,
        run_name: Option<&str>,
    ) -> Result<RunInfo> {
        ids::check_run_id(run_id)?;
        let end_time =
            end_time.or_else(|| status.filter(|s| s.is_terminal()).map(|_| now_millis()));
        let patch = RunPatch {
            status,
            end_time,
            run_name: run_name.filter(|n| !n.is_empty()).map(str::to_string),
        };
        match self.store.update_active_run(run_id, &patch).await? {
            Some(info) => Ok(info),
            None => Err(self.refused_write(run_id).await),
        }
    }

    pub async fn set_run_stage(&self, run_id: &str, stage: LifecycleStage) -> Result<()> {
        self.get_run_info(run_id).await?;
        self.store.set_run_stage(run_id, stage).await
    }

    /// Logs metrics, params and tags together, within MLflow's batch limits.
    pub async fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Tag>,
        tags: Vec<Tag>,
    ) -> Result<()> {
        for (count, max, what) in [
            (metrics.len(), MAX_BATCH_METRICS, "metrics"),
            (params.len(), MAX_BATCH_PARAMS, "params"),
            (tags.len(), MAX_BATCH_TAGS, "tags"),
            (
                metrics.len() + params.len() + tags.len(),
                MAX_BATCH_ENTITIES,
                "entities",
            ),
        ] {
            if count > max {
                return Err(Error::invalid(format!(
                    "A batch logging request can contain at most {max} {what}. Got {count} {what}. Please split up {what} across multiple requests and try again."
                )));
            }
        }
        let series = metrics
            .into_iter()
            .map(|m| {
                check_key("metric name", &m.key)?;
                Ok(MetricSeries {
                    key: m.key,
                    points: vec![m.point],
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let params = self.clean(params, "param name", MAX_PARAM_VALUE_LENGTH)?;
        let tags = self.clean(tags, "tag key", MAX_RUN_TAG_VALUE_LENGTH)?;
        let mut seen = std::collections::HashMap::new();
        for p in &params {
            if let Some(other) = seen.insert(p.key.as_str(), p.value.as_str())
                && other != p.value
            {
                return Err(Error::invalid(format!(
                    "Duplicate parameter keys have been submitted: '{}' with values '{other}' and '{}'",
                    p.key, p.value
                )));
            }
        }
        ids::check_run_id(run_id)?;
        let written = self
            .store
            .log_batch(run_id, &series, &params, &tags)
            .await?;
        self.written(run_id, written).await
    }

    /// Turns a store write that found no active run into the error that says why.
    async fn written(&self, run_id: &str, written: bool) -> Result<()> {
        if written {
            Ok(())
        } else {
            Err(self.refused_write(run_id).await)
        }
    }

    /// Why the store wrote nothing for this run: it is unknown, in the bin, or its state changed
    /// while the write was under way.
    async fn refused_write(&self, run_id: &str) -> Error {
        match self.active_run(run_id).await {
            Err(e) => e,
            Ok(_) => Error::invalid(format!(
                "The run {run_id} changed state while it was being written to; try again"
            )),
        }
    }

    fn clean(&self, items: Vec<Tag>, what: &str, max: usize) -> Result<Vec<Tag>> {
        items
            .into_iter()
            .map(|t| {
                check_key(what, &t.key)?;
                Ok(Tag::new(t.key, truncate(&t.value, max)))
            })
            .collect()
    }

    pub async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.active_run(run_id).await?;
        if !self.store.delete_run_tag(run_id, key).await? {
            return Err(Error::not_found(format!(
                "No tag with name: {key} in run with id {run_id}"
            )));
        }
        Ok(())
    }

    pub async fn log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelIo>,
    ) -> Result<()> {
        let info = self.active_run(run_id).await?;
        for d in &datasets {
            if d.dataset.name.is_empty() || d.dataset.digest.is_empty() {
                return Err(Error::invalid("A dataset input needs a name and a digest"));
            }
        }
        self.store
            .log_inputs(run_id, info.experiment_id, &datasets)
            .await?;
        self.store.link_models(run_id, &models, false).await
    }

    pub async fn log_outputs(&self, run_id: &str, models: Vec<ModelIo>) -> Result<()> {
        self.active_run(run_id).await?;
        self.store.link_models(run_id, &models, true).await
    }

    pub async fn search_runs(
        &self,
        experiment_ids: &[String],
        view: ViewType,
        req: SearchRequest<'_>,
    ) -> Result<Page<Run>> {
        let experiment_ids = parse_experiment_ids(experiment_ids)?;
        let q = req.parse(Target::Runs)?;
        let (items, more) = self
            .store
            .search_runs(&RunQuery {
                experiment_ids: &experiment_ids,
                filter: &q.filter,
                order_by: &q.order_by,
                view,
                offset: q.offset,
                limit: q.limit,
            })
            .await?;
        Ok(Page::after(q.offset, items, more))
    }

    /// A page of a metric's history; without `max_results`, all of it.
    pub async fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<(Vec<MetricPoint>, Option<String>)> {
        if max_results.is_some_and(|m| m <= 0) {
            return Err(Error::invalid("max_results must be a positive integer"));
        }
        self.get_run_info(run_id).await?;
        let offset = decode_page_token(page_token)?;
        let (points, more) = self
            .store
            .metric_history(
                run_id,
                key,
                offset as usize,
                max_results.map(|m| m as usize),
            )
            .await?;
        let next = more.then(|| encode_page_token(offset + points.len() as i64));
        Ok((points, next))
    }

    /// The SDK's bulk path: whole series per key, plus AzureML's list/row/table/image metrics.
    pub async fn log_metrics(
        &self,
        run_id: &str,
        scalars: Vec<MetricSeries>,
        rich: Vec<RichMetric>,
    ) -> Result<()> {
        for s in &scalars {
            check_key("metric name", &s.key)?;
        }
        for m in &rich {
            check_key("metric name", &m.name)?;
        }
        ids::check_run_id(run_id)?;
        let written = self.store.log_metrics(run_id, &scalars, &rich).await?;
        self.written(run_id, written).await
    }

    /// A run's metrics, or only those called `name`.
    pub async fn run_metrics(&self, run_id: &str, name: Option<&str>) -> Result<RunMetrics> {
        self.get_run_info(run_id).await?;
        Ok(RunMetrics {
            scalars: self.store.metric_histories(run_id, name).await?,
            rich: self.store.rich_metrics(run_id, name).await?,
        })
    }

    pub async fn add_run_properties(&self, run_id: &str, properties: Vec<Tag>) -> Result<()> {
        let properties = self.clean(properties, "property name", MAX_RUN_TAG_VALUE_LENGTH)?;
        self.active_run(run_id).await?;
        self.store.add_run_properties(run_id, &properties).await
    }

    pub async fn run_properties(&self, run_id: &str) -> Result<Vec<Tag>> {
        self.get_run_info(run_id).await?;
        self.store.get_run_properties(run_id).await
    }
}

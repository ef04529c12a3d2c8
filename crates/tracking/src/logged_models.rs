use kittiwake_domain::search::Target;
use kittiwake_domain::validation::check_key;
use kittiwake_domain::{Error, LoggedModel, LoggedModelStatus, Result, Tag, ids, now_millis};
use kittiwake_store::{LoggedModelPatch, ModelQuery};

use crate::names::{random_hex_id, random_run_name};
use crate::{Page, SearchRequest, Tracking, parse_experiment_ids};

pub struct NewLoggedModel<'a> {
    pub experiment_id: &'a str,
    pub name: Option<&'a str>,
    pub model_type: Option<&'a str>,
    pub source_run_id: Option<&'a str>,
    pub tags: Vec<Tag>,
    pub params: Vec<Tag>,
}

fn check_model_id(model_id: &str) -> Result<()> {
    if ids::is_logged_model_id(model_id) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Invalid logged model id '{model_id}': expected 'm-' followed by 32 hexadecimal characters"
        )))
    }
}

impl Tracking {
    pub async fn create_logged_model(&self, req: NewLoggedModel<'_>) -> Result<LoggedModel> {
        let experiment = self.get_experiment(req.experiment_id).await?;
        if let Some(run_id) = req.source_run_id.filter(|r| !r.is_empty()) {
            self.get_run_info(run_id).await?;
        }
        for t in req.tags.iter().chain(&req.params) {
            check_key("key", &t.key)?;
        }
        let model_id = format!("{}{}", ids::LOGGED_MODEL_PREFIX, random_hex_id());
        let now = now_millis();
        let model = LoggedModel {
            artifact_location: format!(
                "{}/models/{model_id}/artifacts",
                experiment.artifact_location
            ),
            model_id,
            experiment_id: experiment.experiment_id,
            name: req
                .name
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .unwrap_or_else(random_run_name),
            creation_timestamp: now,
            last_updated_timestamp: now,
            status: LoggedModelStatus::Pending,
            status_message: None,
            model_type: req.model_type.map(str::to_string),
            source_run_id: req
                .source_run_id
                .filter(|r| !r.is_empty())
                .map(str::to_string),
            tags: req.tags,
            params: req.params,
        };
        self.store.create_logged_model(&model).await?;
        Ok(model)
    }

    pub async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        check_model_id(model_id)?;
        self.store.get_logged_model(model_id).await
    }

    pub async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        self.get_logged_model(model_id).await?;
        self.store
            .update_logged_model(
                model_id,
                &LoggedModelPatch {
                    status,
                    now: now_millis(),
                },
            )
            .await?;
        self.store.get_logged_model(model_id).await
    }

    pub async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        self.get_logged_model(model_id).await?;
        self.store.delete_logged_model(model_id).await
    }

    pub async fn set_logged_model_tags(&self, model_id: &str, tags: Vec<Tag>) -> Result<()> {
        for t in &tags {
            check_key("tag key", &t.key)?;
        }
        self.get_logged_model(model_id).await?;
        self.store
            .set_logged_model_values(model_id, &tags, false)
            .await
    }

    pub async fn log_logged_model_params(&self, model_id: &str, params: Vec<Tag>) -> Result<()> {
        for t in &params {
            check_key("param name", &t.key)?;
        }
        self.get_logged_model(model_id).await?;
        self.store
            .set_logged_model_values(model_id, &params, true)
            .await
    }

    pub async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        self.get_logged_model(model_id).await?;
        if !self.store.delete_logged_model_tag(model_id, key).await? {
            return Err(Error::not_found(format!(
                "No tag with key '{key}' on logged model {model_id}"
            )));
        }
        Ok(())
    }

    pub async fn search_logged_models(
        &self,
        experiment_ids: &[String],
        req: SearchRequest<'_>,
    ) -> Result<Page<LoggedModel>> {
        let experiment_ids = parse_experiment_ids(experiment_ids)?;
        let q = req.parse(Target::LoggedModels)?;
        let (items, more) = self
            .store
            .search_logged_models(&ModelQuery {
                experiment_ids: &experiment_ids,
                filter: &q.filter,
                order_by: &q.order_by,
                offset: q.offset,
                limit: q.limit,
            })
            .await?;
        Ok(Page::after(q.offset, items, more))
    }
}

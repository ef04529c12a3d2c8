use kittiwake_domain::search::Target;
use kittiwake_domain::validation::{
    MAX_EXPERIMENT_TAG_VALUE_LENGTH, check_experiment_name, check_key, check_value_length,
};
use kittiwake_domain::{Error, Experiment, LifecycleStage, Result, Tag, ViewType, ids, now_millis};
use kittiwake_store::ExperimentQuery;

use crate::{PROXY_SCHEME, Page, SearchRequest, Tracking};

impl Tracking {
    pub async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[Tag],
    ) -> Result<i64> {
        check_experiment_name(name)?;
        for t in tags {
            check_key("experiment tag key", &t.key)?;
            check_value_length(
                "experiment tag value",
                &t.value,
                MAX_EXPERIMENT_TAG_VALUE_LENGTH,
            )?;
        }
        let location = match artifact_location.filter(|l| !l.is_empty()) {
            Some(l) => l.trim_end_matches('/').to_string(),
            None => format!("{PROXY_SCHEME}{{id}}"),
        };
        self.store
            .create_experiment(name, &location, tags, now_millis())
            .await
    }

    pub async fn get_experiment(&self, id: &str) -> Result<Experiment> {
        self.store
            .get_experiment(ids::parse_experiment_id(id)?)
            .await
    }

    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        self.store.get_experiment_by_name(name).await
    }

    /// Gets the experiment with this name, creating it if there is none (AzureML's `Experiment(ws, name)`).
    pub async fn get_or_create_experiment(&self, name: &str) -> Result<Experiment> {
        match self.store.get_experiment_by_name(name).await {
            Ok(e) => Ok(e),
            Err(e) if e.kind == kittiwake_domain::ErrorKind::NotFound => {
                match self.create_experiment(name, None, &[]).await {
                    Ok(id) => self.store.get_experiment(id).await,
                    // Another caller created it between our read and our write.
                    Err(e) if e.kind == kittiwake_domain::ErrorKind::AlreadyExists => {
                        self.store.get_experiment_by_name(name).await
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    pub async fn search_experiments(
        &self,
        view: ViewType,
        req: SearchRequest<'_>,
    ) -> Result<Page<Experiment>> {
        let q = req.parse(Target::Experiments)?;
        let (items, more) = self
            .store
            .search_experiments(&ExperimentQuery {
                filter: &q.filter,
                order_by: &q.order_by,
                view,
                offset: q.offset,
                limit: q.limit,
            })
            .await?;
        Ok(Page::after(q.offset, items, more))
    }

    pub async fn rename_experiment(&self, id: &str, new_name: &str) -> Result<()> {
        check_experiment_name(new_name)?;
        let experiment = self.get_experiment(id).await?;
        if experiment.lifecycle_stage != LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "Cannot rename a non-active experiment: experiment {id} is deleted"
            )));
        }
        self.store
            .rename_experiment(experiment.experiment_id, new_name, now_millis())
            .await
    }

    pub async fn set_experiment_stage(&self, id: &str, stage: LifecycleStage) -> Result<()> {
        let experiment = self.get_experiment(id).await?;
        if experiment.experiment_id == 0 && stage == LifecycleStage::Deleted {
            return Err(Error::invalid("The Default experiment cannot be deleted"));
        }
        if experiment.lifecycle_stage == stage {
            return Err(Error::invalid(format!(
                "Experiment {id} is already {}",
                stage.as_str()
            )));
        }
        self.store
            .set_experiment_stage(experiment.experiment_id, stage, now_millis())
            .await
    }

    pub async fn set_experiment_tag(&self, id: &str, tag: &Tag) -> Result<()> {
        check_key("experiment tag key", &tag.key)?;
        check_value_length(
            "experiment tag value",
            &tag.value,
            MAX_EXPERIMENT_TAG_VALUE_LENGTH,
        )?;
        let experiment = self.get_experiment(id).await?;
        self.store
            .set_experiment_tag(experiment.experiment_id, tag)
            .await
    }

    pub async fn delete_experiment_tag(&self, id: &str, key: &str) -> Result<()> {
        let experiment = self.get_experiment(id).await?;
        if !self
            .store
            .delete_experiment_tag(experiment.experiment_id, key)
            .await?
        {
            return Err(Error::not_found(format!(
                "No tag with name: {key} in experiment {id}"
            )));
        }
        Ok(())
    }
}

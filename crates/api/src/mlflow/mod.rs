//! MLflow's tracking REST API, so the stock `mlflow` client logs to Kittiwake.

mod artifacts;
mod experiments;
mod logged_models;
mod runs;
pub mod wire;

use axum::http::Method;

use crate::routes::Routes;

const READ_EXPERIMENTS: &str = "experiments/read";
const WRITE_EXPERIMENTS: &str = "experiments/write";
const READ_RUNS: &str = "experiments/runs/read";
const WRITE_RUNS: &str = "experiments/runs/write";
const READ_ARTIFACTS: &str = "artifacts/read";
const WRITE_ARTIFACTS: &str = "artifacts/write";
const READ_MODELS: &str = "models/read";
const WRITE_MODELS: &str = "models/write";

pub fn routes(mut r: Routes) -> Routes {
    const GET: Method = Method::GET;
    const POST: Method = Method::POST;
    const PUT: Method = Method::PUT;
    const PATCH: Method = Method::PATCH;
    const DELETE: Method = Method::DELETE;
    // The UI's `/ajax-api` prefix serves the same handlers as `/api`.
    for prefix in ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"] {
        let p = |path: &str| format!("{prefix}{path}");
        r = r
            .add(
                POST,
                &p("/experiments/create"),
                WRITE_EXPERIMENTS,
                experiments::create,
            )
            .add(
                GET,
                &p("/experiments/get"),
                READ_EXPERIMENTS,
                experiments::get,
            )
            .add(
                GET,
                &p("/experiments/get-by-name"),
                READ_EXPERIMENTS,
                experiments::get_by_name,
            )
            .add(
                POST,
                &p("/experiments/search"),
                READ_EXPERIMENTS,
                experiments::search,
            )
            .add(
                GET,
                &p("/experiments/search"),
                READ_EXPERIMENTS,
                experiments::search,
            )
            .add(
                POST,
                &p("/experiments/update"),
                WRITE_EXPERIMENTS,
                experiments::update,
            )
            .add(
                POST,
                &p("/experiments/delete"),
                WRITE_EXPERIMENTS,
                experiments::delete,
            )
            .add(
                POST,
                &p("/experiments/restore"),
                WRITE_EXPERIMENTS,
                experiments::restore,
            )
            .add(
                POST,
                &p("/experiments/set-experiment-tag"),
                WRITE_EXPERIMENTS,
                experiments::set_tag,
            )
            .add(
                POST,
                &p("/experiments/delete-experiment-tag"),
                WRITE_EXPERIMENTS,
                experiments::delete_tag,
            )
            .add(POST, &p("/runs/create"), WRITE_RUNS, runs::create)
            .add(GET, &p("/runs/get"), READ_RUNS, runs::get)
            .add(POST, &p("/runs/update"), WRITE_RUNS, runs::update)
            .add(POST, &p("/runs/delete"), WRITE_RUNS, runs::delete)
            .add(POST, &p("/runs/restore"), WRITE_RUNS, runs::restore)
            .add(POST, &p("/runs/log-metric"), WRITE_RUNS, runs::log_metric)
            .add(POST, &p("/runs/log-parameter"), WRITE_RUNS, runs::log_param)
            .add(POST, &p("/runs/set-tag"), WRITE_RUNS, runs::set_tag)
            .add(POST, &p("/runs/delete-tag"), WRITE_RUNS, runs::delete_tag)
            .add(POST, &p("/runs/log-batch"), WRITE_RUNS, runs::log_batch)
            .add(POST, &p("/runs/log-inputs"), WRITE_RUNS, runs::log_inputs)
            .add(POST, &p("/runs/outputs"), WRITE_RUNS, runs::log_outputs)
            .add(POST, &p("/runs/search"), READ_RUNS, runs::search)
            .add(GET, &p("/runs/search"), READ_RUNS, runs::search)
            .add(
                GET,
                &p("/metrics/get-history"),
                READ_RUNS,
                runs::metric_history,
            )
            .add(
                GET,
                &p("/artifacts/list"),
                READ_ARTIFACTS,
                artifacts::list_run,
            )
            .add(
                POST,
                &p("/logged-models"),
                WRITE_MODELS,
                logged_models::create,
            )
            .add(
                POST,
                &p("/logged-models/search"),
                READ_MODELS,
                logged_models::search,
            )
            .add(
                GET,
                &p("/logged-models/{model_id}"),
                READ_MODELS,
                logged_models::get,
            )
            .add(
                PATCH,
                &p("/logged-models/{model_id}"),
                WRITE_MODELS,
                logged_models::finalize,
            )
            .add(
                DELETE,
                &p("/logged-models/{model_id}"),
                WRITE_MODELS,
                logged_models::delete,
            )
            .add(
                PATCH,
                &p("/logged-models/{model_id}/tags"),
                WRITE_MODELS,
                logged_models::set_tags,
            )
            .add(
                DELETE,
                &p("/logged-models/{model_id}/tags/{tag_key}"),
                WRITE_MODELS,
                logged_models::delete_tag,
            )
            .add(
                POST,
                &p("/logged-models/{model_id}/params"),
                WRITE_MODELS,
                logged_models::log_params,
            );
    }
    let artifacts = "/api/2.0/mlflow-artifacts/artifacts";
    r.add(
        GET,
        "/api/3.0/mlflow/server-info",
        READ_EXPERIMENTS,
        artifacts::server_info,
    )
    .add(GET, artifacts, READ_ARTIFACTS, artifacts::list)
    .add(
        GET,
        &format!("{artifacts}/{{*path}}"),
        READ_ARTIFACTS,
        artifacts::download,
    )
    .add(
        PUT,
        &format!("{artifacts}/{{*path}}"),
        WRITE_ARTIFACTS,
        artifacts::upload,
    )
    .add(
        DELETE,
        &format!("{artifacts}/{{*path}}"),
        WRITE_ARTIFACTS,
        artifacts::delete,
    )
}

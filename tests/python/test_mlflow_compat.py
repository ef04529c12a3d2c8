"""The real mlflow client (pinned in requirements-test.txt) through every tracking call Kittiwake serves."""

import os

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException, RestException


@pytest.fixture
def client(mlflow_server):
    return MlflowClient()


def test_experiments(client):
    exp_id = client.create_experiment("exp-a", tags={"team": "vision"})
    assert client.get_experiment(exp_id).name == "exp-a"
    assert client.get_experiment(exp_id).tags == {"team": "vision"}
    assert client.get_experiment_by_name("exp-a").experiment_id == exp_id
    assert client.get_experiment_by_name("no-such-experiment") is None
    with pytest.raises(MlflowException) as err:
        client.create_experiment("exp-a")
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(MlflowException) as err:
        client.get_experiment("987654")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    client.set_experiment_tag(exp_id, "stage", "dev")
    client.delete_experiment_tag(exp_id, "team")
    assert client.get_experiment(exp_id).tags == {"stage": "dev"}
    client.rename_experiment(exp_id, "exp-renamed")
    assert client.get_experiment(exp_id).name == "exp-renamed"

    for name in ["exp-b", "exp-c", "other"]:
        client.create_experiment(name)
    found = client.search_experiments(filter_string="name LIKE 'exp-%'", order_by=["name ASC"])
    assert [e.name for e in found] == ["exp-b", "exp-c", "exp-renamed"]
    page = client.search_experiments(max_results=2, filter_string="name LIKE 'exp-%'", order_by=["name ASC"])
    assert len(page) == 2 and page.token
    rest = client.search_experiments(max_results=2, page_token=page.token, filter_string="name LIKE 'exp-%'", order_by=["name ASC"])
    assert [e.name for e in rest] == ["exp-renamed"] and not rest.token
    assert [e.name for e in client.search_experiments(filter_string="tags.stage = 'dev'")] == ["exp-renamed"]

    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    assert "exp-renamed" not in [e.name for e in client.search_experiments()]
    assert "exp-renamed" in [e.name for e in client.search_experiments(view_type=ViewType.DELETED_ONLY)]
    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"


def test_fluent_run_lifecycle(mlflow_server, tmp_path):
    mlflow.set_experiment("fluent")
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"a": 1, "b": "x"})
        mlflow.log_metric("loss", 0.5, step=1)
        mlflow.log_metrics({"acc": 0.9, "f1": 0.8}, step=2)
        mlflow.set_tag("k", "v")
        mlflow.set_tags({"k2": "v2"})
        (tmp_path / "a.txt").write_text("hello")
        mlflow.log_artifact(str(tmp_path / "a.txt"))
        mlflow.log_dict({"a": 1}, "cfg/d.json")
        (tmp_path / "many").mkdir()
        (tmp_path / "many" / "x.txt").write_text("x")
        mlflow.log_artifacts(str(tmp_path / "many"), artifact_path="many")
    client = MlflowClient()
    got = client.get_run(run.info.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "first" and got.info.end_time
    assert got.data.params == {"lr": "0.1", "a": "1", "b": "x"}
    assert got.data.metrics == {"loss": 0.5, "acc": 0.9, "f1": 0.8}
    assert got.data.tags["k"] == "v" and got.data.tags["mlflow.runName"] == "first"
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == ["a.txt", "cfg", "many"]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "cfg")] == ["cfg/d.json"]
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="a.txt", dst_path=str(tmp_path / "dl"))
    assert open(local).read() == "hello"
    whole = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path / "all"))
    assert open(os.path.join(whole, "many", "x.txt")).read() == "x"
    assert mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/cfg/d.json") == {"a": 1}


def test_run_client_calls(client):
    exp_id = client.create_experiment("client-calls")
    run = client.create_run(exp_id, run_name="manual", tags={"t": "1"})
    rid = run.info.run_id
    client.log_param(rid, "p", "1")
    client.log_param(rid, "p", "1")
    with pytest.raises(MlflowException) as err:
        client.log_param(rid, "p", "2")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    client.log_metric(rid, "m", 1.0, step=0)
    client.log_metric(rid, "m", float("nan"), step=1)
    client.log_metric(rid, "m", float("inf"), step=2)
    client.log_batch(rid, metrics=[Metric("b", i, 1000 + i, i) for i in range(1000)],
                     params=[Param("q", "x")], tags=[RunTag("bt", "y")])
    client.set_tag(rid, "gone", "soon")
    client.delete_tag(rid, "gone")
    with pytest.raises(MlflowException) as err:
        client.delete_tag(rid, "gone")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    history = client.get_metric_history(rid, "m")
    assert [h.step for h in history] == [0, 1, 2]
    assert history[1].value != history[1].value and history[2].value == float("inf")
    assert [h.value for h in client.get_metric_history(rid, "b")] == list(range(1000))
    data = client.get_run(rid).data
    assert data.metrics["b"] == 999 and data.tags["bt"] == "y" and "gone" not in data.tags

    client.update_run(rid, status="FAILED", name="renamed")
    info = client.get_run(rid).info
    assert info.status == "FAILED" and info.run_name == "renamed"
    client.set_terminated(rid)
    assert client.get_run(rid).info.status == "FINISHED"
    client.delete_run(rid)
    assert client.get_run(rid).info.lifecycle_stage == "deleted"
    with pytest.raises(MlflowException):
        client.log_metric(rid, "m", 1.0)
    client.restore_run(rid)
    assert client.get_run(rid).info.lifecycle_stage == "active"
    with pytest.raises(MlflowException) as err:
        client.get_run("0" * 32)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_metric_history_pages_past_the_client_page_size(client):
    rid = client.create_run(client.create_experiment("long-history")).info.run_id
    for start in range(0, 30000, 1000):
        client.log_batch(rid, metrics=[Metric("x", float(i), 1, i) for i in range(start, start + 1000)])
    history = client.get_metric_history(rid, "x")
    assert len(history) == 30000
    assert [m.step for m in history[24998:25002]] == [24998, 24999, 25000, 25001]


def test_search_runs_grammar_order_and_pages(client):
    exp_id = client.create_experiment("search")
    ids = []
    for i in range(12):
        r = client.create_run(exp_id, run_name=f"run-{i:02d}", start_time=1000 + i)
        client.log_batch(r.info.run_id, metrics=[Metric("acc", i / 10, 1, 0)],
                         params=[Param("opt", "adam" if i % 2 else "sgd")],
                         tags=[RunTag("group", "A" if i < 6 else "B")])
        ids.append(r.info.run_id)
    nometric = client.create_run(exp_id, run_name="bare", start_time=999).info.run_id

    def names(runs):
        return [r.info.run_name for r in runs]

    assert names(client.search_runs([exp_id], "metrics.acc > 0.85")) == ["run-11", "run-10", "run-09"]
    assert names(client.search_runs([exp_id], "metrics.acc >= 0.5 AND params.opt = 'sgd'", order_by=["metrics.acc ASC"])) == ["run-06", "run-08", "run-10"]
    assert names(client.search_runs([exp_id], "tags.group = 'A' AND params.opt != 'sgd'", order_by=["attributes.run_name DESC"])) == ["run-05", "run-03", "run-01"]
    assert names(client.search_runs([exp_id], "params.opt IS NULL")) == ["bare"]
    assert names(client.search_runs([exp_id], "attributes.run_name LIKE 'run-1%'", order_by=["run_name"])) == ["run-10", "run-11"]
    assert names(client.search_runs([exp_id], "run_name ILIKE 'RUN-0_'", max_results=2)) == ["run-09", "run-08"]
    assert names(client.search_runs([exp_id], f"attributes.run_id IN ('{ids[0]}', '{ids[1]}')")) == ["run-01", "run-00"]
    by_metric = names(client.search_runs([exp_id], "", order_by=["metrics.acc DESC"]))
    assert by_metric[0] == "run-11" and by_metric[-1] == "bare"
    assert names(client.search_runs([exp_id], "attributes.start_time < 1002")) == ["run-01", "run-00", "bare"]
    assert names(client.search_runs([exp_id], "tags.`group` = 'B'", order_by=["params.opt DESC", "run_name"])) == ["run-06", "run-08", "run-10", "run-07", "run-09", "run-11"]

    seen, token = [], None
    while True:
        page = client.search_runs([exp_id], "", max_results=5, page_token=token)
        seen.extend(names(page))
        token = page.token
        if not token:
            break
    assert len(seen) == 13 and len(set(seen)) == 13
    with pytest.raises(MlflowException) as err:
        client.search_runs([exp_id], "metrics.acc > 1 OR metrics.acc < 0")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"

    df = mlflow.search_runs([exp_id], filter_string="metrics.acc < 0.15", order_by=["metrics.acc DESC"])
    assert list(df["tags.mlflow.runName"]) == ["run-01", "run-00"]
    client.delete_run(nometric)
    assert "bare" not in names(client.search_runs([exp_id]))
    assert names(client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)) == ["bare"]


def test_log_inputs_and_dataset_search(mlflow_server):
    import pandas as pd
    mlflow.set_experiment("inputs")
    frame = pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]})
    dataset = mlflow.data.from_pandas(frame, name="train-set", targets="y")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training")
    got = MlflowClient().get_run(run.info.run_id)
    assert len(got.inputs.dataset_inputs) == 1
    ds = got.inputs.dataset_inputs[0]
    assert ds.dataset.name == "train-set" and ds.dataset.digest == dataset.digest
    assert {t.key: t.value for t in ds.tags}["mlflow.data.context"] == "training"
    exp_id = run.info.experiment_id
    assert [r.info.run_id for r in MlflowClient().search_runs([exp_id], "dataset.name = 'train-set'")] == [run.info.run_id]
    assert [r.info.run_id for r in MlflowClient().search_runs([exp_id], "dataset.context = 'training'")] == [run.info.run_id]
    with mlflow.start_run() as plain:
        mlflow.log_metric("loss", 0.5)
    found = {r.info.run_id: r for r in MlflowClient().search_runs([exp_id])}
    assert [d.dataset.name for d in found[run.info.run_id].inputs.dataset_inputs] == ["train-set"]
    assert found[plain.info.run_id].inputs.dataset_inputs == []
    assert found[plain.info.run_id].data.metrics == {"loss": 0.5}


def test_logged_models(mlflow_server):
    import numpy as np
    from sklearn.linear_model import LinearRegression
    mlflow.set_experiment("models")
    model = LinearRegression().fit(np.array([[1.0], [2.0], [3.0]]), np.array([2.0, 4.0, 6.0]))
    with mlflow.start_run() as run:
        mlflow.log_metric("rmse", 0.01)
        info = mlflow.sklearn.log_model(model, name="model", params={"alpha": "0.5"})
    loaded = mlflow.sklearn.load_model(info.model_uri)
    assert loaded.predict(np.array([[4.0]]))[0] == pytest.approx(8.0)
    pyfunc = mlflow.pyfunc.load_model(info.model_uri)
    assert pyfunc.predict(np.array([[5.0]]))[0] == pytest.approx(10.0)

    client = MlflowClient()
    logged = client.get_logged_model(info.model_id)
    assert str(logged.status).endswith("READY")
    assert logged.source_run_id == run.info.run_id and logged.params == {"alpha": "0.5"}
    assert [o.model_id for o in client.get_run(run.info.run_id).outputs.model_outputs] == [info.model_id]
    [searched] = client.search_runs([run.info.experiment_id])
    assert [o.model_id for o in searched.outputs.model_outputs] == [info.model_id]
    assert searched.data.metrics == {"rmse": 0.01}
    client.set_logged_model_tags(info.model_id, {"stage": "candidate"})
    assert client.get_logged_model(info.model_id).tags["stage"] == "candidate"
    client.delete_logged_model_tag(info.model_id, "stage")
    assert "stage" not in client.get_logged_model(info.model_id).tags
    client.log_model_params(info.model_id, {"beta": "2"})
    assert client.get_logged_model(info.model_id).params == {"alpha": "0.5", "beta": "2"}
    found = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert [m.model_id for m in found] == [info.model_id]
    assert mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], filter_string="name = 'model'", output_format="list")[0].name == "model"
    client.delete_logged_model(info.model_id)
    with pytest.raises(MlflowException):
        client.get_logged_model(info.model_id)


def test_artifact_delete_and_missing_files(mlflow_server, tmp_path):
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    mlflow.set_experiment("artifact-delete")
    with mlflow.start_run() as run:
        mlflow.log_text("a", "keep/a.txt")
        mlflow.log_text("b", "drop/b.txt")
    repo = get_artifact_repository(run.info.artifact_uri)
    repo.delete_artifacts("drop")
    assert [a.path for a in MlflowClient().list_artifacts(run.info.run_id)] == ["keep"]
    with pytest.raises((MlflowException, OSError, RestException)):
        mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="drop/b.txt", dst_path=str(tmp_path))

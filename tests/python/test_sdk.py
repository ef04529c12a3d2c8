"""The kittiwake SDK against a live server."""

import io
import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import Server
from kittiwake import Experiment, LoggingError, Run, UserErrorException, Workspace


def test_from_config_follows_azureml_search_rules(server, tmp_path, monkeypatch):
    monkeypatch.delenv("KITTIWAKE_URL", raising=False)
    monkeypatch.delenv("KITTIWAKE_TOKEN", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text(server.token)
    config = {"subscription_id": "s", "resource_group": "rg", "workspace_name": "kittiwake",
              "kittiwake_url": server.url, "token_file": str(token_file)}
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    for where in [".azureml", "aml_config", ""]:
        folder = tmp_path / "a" / where
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config))
        ws = Workspace.from_config(path=str(deep))
        assert ws.name == "kittiwake" and ws.resource_group == "rg"
        (folder / "config.json").unlink()
    monkeypatch.chdir(deep)
    with pytest.raises(UserErrorException, match="config.json could not be found"):
        Workspace.from_config()
    (tmp_path / "explicit.json").write_text(json.dumps(config))
    assert Workspace.from_config(path=str(tmp_path / "explicit.json")).name == "kittiwake"


def test_server_writes_a_config_that_from_config_finds(server, monkeypatch):
    monkeypatch.chdir(server.folder)
    ws = Workspace.from_config()
    assert "kittiwake" in repr(ws)
    written = ws.write_config(path=os.path.join(server.folder, "copy"))
    assert json.load(open(written))["kittiwake_url"] == server.url
    assert oct(os.stat(os.path.join(server.folder, "copy", ".azureml", "kittiwake.token")).st_mode)[-3:] == "600"


def test_metric_kinds_round_trip(ws, tmp_path):
    exp = Experiment(ws, "kinds")
    with exp.start_logging(display_name="kinds-run") as run:
        for i in range(5):
            run.log("loss", 1.0 / (i + 1))
        run.log("acc", 0.5)
        run.log("flag", True)
        run.log("nan", float("nan"))
        run.log_list("sizes", [1, 2, 3])
        run.log_row("confusion", tp=1, fp=2)
        run.log_row("confusion", tp=3, fp=4)
        run.log_table("table", {"x": [1, 2], "y": ["a", "b"]})
        image = tmp_path / "pic.png"
        image.write_bytes(b"\x89PNG fake")
        run.log_image("picture", path=str(image))
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig = plt.figure()
        plt.plot([1, 2, 3])
        run.log_image("plot", plot=fig)
    metrics = run.get_metrics()
    assert metrics["loss"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert metrics["acc"] == 0.5 and metrics["flag"] == 1.0
    assert metrics["nan"] != metrics["nan"]
    assert metrics["sizes"] == [1, 2, 3]
    assert metrics["confusion"] == {"tp": [1, 3], "fp": [2, 4]}
    assert metrics["table"] == {"x": [1, 2], "y": ["a", "b"]}
    assert metrics["picture"] == "images/picture.png"
    assert "images/plot.png" in run.get_file_names()
    assert run.get_metrics(name="acc") == {"acc": 0.5}
    assert run.get_status() == "Completed"
    with pytest.raises(TypeError):
        run.log("bad", "text")
    with pytest.raises(UserErrorException):
        run.log_image("nothing")


def test_scalars_are_mlflow_metrics_both_ways(ws, mlflow_server):
    from mlflow import MlflowClient
    exp = Experiment(ws, "both-ways")
    run = exp.start_logging()
    run.log("loss", 0.5, step=3)
    run.flush()
    client = MlflowClient()
    history = client.get_metric_history(run.id, "loss")
    assert [(m.step, m.value) for m in history] == [(3, 0.5)]
    client.log_metric(run.id, "from_mlflow", 7.0)
    assert run.get_metrics()["from_mlflow"] == 7.0
    run.complete()


def test_files_tags_properties_and_children(ws, tmp_path):
    exp = Experiment(ws, "files")
    run = exp.start_logging()
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.txt").write_text("beta")
    run.upload_file("outputs/single.txt", str(src / "a.txt"))
    run.upload_file("outputs/stream.bin", io.BytesIO(b"\x00\x01"))
    run.upload_folder("folder", str(src))
    assert run.get_file_names() == ["folder/a.txt", "folder/sub/b.txt", "outputs/single.txt", "outputs/stream.bin"]
    dest = tmp_path / "dest"
    run.download_file("folder/sub/b.txt", str(dest / "b.txt"))
    assert (dest / "b.txt").read_text() == "beta"
    written = run.download_files(prefix="folder", output_directory=str(tmp_path / "all"))
    assert sorted(os.path.relpath(p, tmp_path / "all") for p in written) == ["folder/a.txt", "folder/sub/b.txt"]
    with pytest.raises(UserErrorException):
        run.download_file("missing.txt", str(tmp_path / "m"))

    run.tag("team", "vision")
    run.set_tags({"a": 1, "b": None})
    assert run.get_tags()["team"] == "vision" and run.get_tags()["a"] == "1" and run.get_tags()["b"] == ""
    run.remove_tags(["a"])
    assert "a" not in run.get_tags()
    run.add_properties({"framework": "torch"})
    run.add_properties({"framework": "torch"})
    with pytest.raises(UserErrorException, match="cannot be changed"):
        run.add_properties({"framework": "jax"})
    assert run.get_properties() == {"framework": "torch"}

    with run.child_run("child-1") as child:
        child.log("x", 1)
    assert child.parent.id == run.id
    assert [c.id for c in run.get_children()] == [child.id]
    assert run.get_metrics(recursive=True)[child.id] == {"x": 1.0}
    run.display_name = "renamed"
    details = run.get_details()
    assert details["displayName"] == "renamed" and details["properties"] == {"framework": "torch"}
    assert details["status"] == "Running" and details["startTimeUtc"].endswith("Z")
    run.complete()
    assert ws.get_run(run.id).get_status() == "Completed"
    assert [r.id for r in exp.get_runs()] == [run.id]
    assert sorted(r.id for r in exp.get_runs(include_children=True)) == sorted([child.id, run.id])
    assert "files" in ws.experiments


def test_failed_and_canceled_runs(ws):
    exp = Experiment(ws, "statuses")
    with pytest.raises(ValueError):
        with exp.start_logging() as failing:
            raise ValueError("boom")
    assert failing.get_status() == "Failed"
    assert failing.get_tags()["error"] == "boom"
    canceled = exp.start_logging()
    canceled.cancel()
    assert canceled.get_status() == "Canceled"
    assert "Canceled" in repr(canceled)


def test_get_context_offline_and_live(server, ws, capsys, monkeypatch):
    for var in ("AZUREML_RUN_ID", "AZUREML_SERVICE_ENDPOINT", "AZUREML_RUN_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    offline = Run.get_context()
    assert offline.id.startswith("OfflineRun_")
    offline.log("loss", 1.0)
    assert "loss" in capsys.readouterr().out
    with pytest.raises(UserErrorException):
        Run.get_context(allow_offline=False)

    run = Experiment(ws, "submitted").start_logging()
    script = "from kittiwake import Run\nr = Run.get_context()\nr.log('inside', 42)\nprint(r.id)\n"
    env = dict(os.environ, AZUREML_RUN_ID=run.id, AZUREML_SERVICE_ENDPOINT=server.url,
               AZUREML_RUN_TOKEN=server.token, AZUREML_ARM_WORKSPACE_NAME="kittiwake")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == run.id
    assert run.get_metrics() == {"inside": 42.0}


def test_interpreter_exit_flushes_everything(server, ws):
    run = Experiment(ws, "exit-flush").start_logging()
    script = textwrap.dedent("""
        from kittiwake import Workspace, Run
        ws = Workspace(url=%r, token=%r)
        run = ws.get_run(%r)
        for i in range(50000):
            run.log("x", i)
    """ % (server.url, server.token, run.id))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert run.get_metrics()["x"] == [float(i) for i in range(50000)]


def test_undeliverable_metrics_raise_and_are_kept(tmp_path):
    s = Server(tmp_path)
    ws = Workspace(url=s.url, token=s.token)
    run = Experiment(ws, "outage").start_logging()
    run._metrics()._retries = 1
    s.stop()
    for i in range(10):
        run.log("kept", i)
    with pytest.raises(LoggingError) as err:
        run.flush()
    assert err.value.unsent == 10
    s2 = Server(tmp_path, port=s.port)
    try:
        run.flush()
        assert run.get_metrics()["kept"] == [float(i) for i in range(10)]
        run.complete()
    finally:
        s2.stop()

    # At interpreter exit, values that cannot be delivered are reported, not dropped silently.
    s3 = Server(tmp_path, port=s.port)
    script = textwrap.dedent("""
        from kittiwake import Workspace, Experiment
        ws = Workspace(url=%r, token=%r)
        run = Experiment(ws, "outage").start_logging()
        run._metrics()._retries = 0
        print("ready", flush=True)
        input()
        run.log("lost", 1)
    """ % (s3.url, s3.token))
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    s3.stop()
    _, stderr = proc.communicate("\n", timeout=60)
    assert "LoggingError" in stderr and "Could not deliver 1 logged values" in stderr


@pytest.mark.parametrize("module", ["kittiwake", "azureml.core"])
def test_seed_notebook_example(server, tmp_path, module):
    """The FAQ's §2.1 interactive example (with its `run.log("…": …)` slip fixed), run unchanged."""
    notebook = tmp_path / module
    notebook.mkdir()
    subprocess.run(["cp", "-r", os.path.join(server.folder, ".azureml"), str(notebook)], check=True)
    script = textwrap.dedent("""
        import numpy as np
        from %s import Workspace, Experiment

        X = np.zeros((1234, 3))

        # Setup the Workspace and Experiment
        ws = Workspace.from_config()
        exp = Experiment(ws, "test_experiment")

        # Use start_logging() to create a new run
        with exp.start_logging() as run:
            # Log your metrics
            run.log("Sample size", X.shape[0])
        print(run.id)
    """ % module)
    out = subprocess.run([sys.executable, "-c", script], cwd=str(notebook), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ws = Workspace(url=server.url, token=server.token)
    run = ws.get_run(out.stdout.strip())
    assert run.get_metrics() == {"Sample size": 1234.0}
    assert run.get_status() == "Completed"
    assert run.experiment.name == "test_experiment"

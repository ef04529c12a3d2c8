"""Submitted runs end to end: real server, real agents, real scripts, real uv-built environments."""

import os
import signal
import sys
import time

import pytest

from conftest import Server
from files import write_tree as write
from wheels import build_wheel


def wait_for_status(run, wanted, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = run.get_status()
        if status in wanted:
            return status
        time.sleep(0.05)
    raise AssertionError("run %s still %s after %ss" % (run.id, run.get_status(), timeout))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open("/proc/%d/stat" % pid) as f:
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.fixture
def local_env():
    """An environment that runs scripts with this test's interpreter (which has mlflow)."""
    from kittiwake import Environment
    env = Environment("tests-interpreter")
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = sys.executable
    return env


def test_seed_examples_submit_stream_and_keep_outputs(ws, tmp_path, capsys):
    """Seed §2.1 and §2.2 as written (import line aside): a script in a folder with a helper
    package, submitted with ScriptRunConfig, logging with Run.get_context()."""
    from azureml.core import Environment, Experiment, Run, ScriptRunConfig, Workspace  # noqa: F401
    scripts = write(tmp_path / "scripts", {
        "train.py": """
            import sys
            from azureml.core import Run
            from assets.utils import some_function
            run = Run.get_context()
            X_shape = (some_function(), 3)
            run.log("Sample size", X_shape[0])
            print("args", sys.argv[1:])
            import os
            print("greeting", os.environ["KW_GREETING"], os.environ["AZUREML_ARM_PROJECT_NAME"])
            with open("outputs/model.txt", "w") as f:
                f.write("weights")
            with open("logs/progress.txt", "w") as f:
                f.write("epoch 1")
            child = run.child_run("inner")
            child.log("depth", 2)
            child.complete()
            print("done")
            """,
        "assets/__init__.py": "",
        "assets/utils.py": "def some_function():\n    return 128\n",
    })
    env = Environment("test_environment")
    env.environment_variables = {"KW_GREETING": "hello"}
    exp = Experiment(ws, "test_experiment")
    run_cfg = ScriptRunConfig(source_directory=scripts, script="train.py", environment=env,
                              arguments=["--epochs", 3])
    script_run = exp.submit(run_cfg, tags={"team": "birds"})
    assert script_run.get_status() in ("Queued", "Preparing", "Starting", "Running", "Finalizing", "Completed")
    details = script_run.wait_for_completion(show_output=True)
    out = capsys.readouterr().out
    assert "args ['--epochs', '3']" in out and "done" in out, out
    assert "greeting hello test_experiment" in out, out
    assert details["status"] == "Completed"
    assert [h["status"] for h in details["statusHistory"]] == [
        "Queued", "Preparing", "Starting", "Running", "Finalizing", "Completed"]
    assert details["runDefinition"]["arguments"] == ["--epochs", "3"]
    assert details["exitCode"] == 0
    assert script_run.get_metrics()["Sample size"] == 128
    assert script_run.get_tags()["team"] == "birds"
    files = script_run.get_file_names()
    assert "outputs/model.txt" in files and "logs/progress.txt" in files and "user_logs/std_log.txt" in files
    children = script_run.get_children()
    assert [c.get_metrics()["depth"] for c in children] == [2]
    restored = script_run.restore_snapshot(path=str(tmp_path / "restored"))
    assert open(os.path.join(restored, "assets", "utils.py")).read().startswith("def some_function")


def test_seed_2_3_packages_from_conda_dependencies(ws, tmp_path):
    """Seed §2.3 as written, but with this machine's Python (3.8 is not installed here) and a
    package from a local wheel folder instead of scikit-learn from PyPI, so the test needs no
    network. Conda packages are installed from PyPI (here: the folder) under their PyPI names."""
    from azureml.core import Environment, Experiment, ScriptRunConfig, Workspace  # noqa: F401
    from azureml.core.conda_dependencies import CondaDependencies
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels, name="kwconda", version="1.2", source="VERSION = '1.2'\n")
    scripts = write(tmp_path / "scripts", {"train.py": "import kwconda\nprint('kwconda', kwconda.VERSION)\n"})
    exp = Experiment(ws, "test_experiment")

    deps = CondaDependencies()
    deps.set_python_version("%d.%d" % sys.version_info[:2])
    deps.add_conda_package("kwconda>=1.0")
    deps.set_pip_option("--no-index")
    deps.set_pip_option("--find-links %s" % wheels)

    env = Environment("test_environment")
    env.python.conda_dependencies = deps

    run_cfg = ScriptRunConfig(script="train.py", source_directory=scripts, environment=env)
    script_run = exp.submit(run_cfg)
    details = script_run.wait_for_completion(raise_on_error=False)
    log = open(script_run.get_all_logs(str(tmp_path / "logs"))[0]).read()
    assert details["status"] == "Completed", log
    assert "kwconda 1.2" in log
    assert "conda package 'kwconda>=1.0' is installed from PyPI as 'kwconda>=1.0'" in log
    assert "Python %d.%d" % sys.version_info[:2] in log


def test_a_failing_script_fails_with_its_traceback(ws, tmp_path):
    from kittiwake import ActivityFailedException, Experiment, ScriptRunConfig
    src = write(tmp_path, {"bad.py": "print('about to fail')\n1 / 0\n"})
    run = Experiment(ws, "failures").submit(ScriptRunConfig(source_directory=src, script="bad.py"))
    with pytest.raises(ActivityFailedException) as err:
        run.wait_for_completion()
    assert "ZeroDivisionError: division by zero" in str(err.value)
    assert "exited with code 1" in str(err.value)
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed" and details["exitCode"] == 1
    log = open(run.get_all_logs(destination=str(tmp_path / "logs"))[0]).read()
    assert "Traceback (most recent call last)" in log and "about to fail" in log


def test_cancel_ends_the_whole_process_tree(ws, tmp_path):
    from kittiwake import Experiment, ScriptRunConfig
    src = write(tmp_path, {"sleepy.py": """
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        with open("%s", "w") as f:
            f.write("%%d %%d" %% (os.getpid(), child.pid))
        print("sleeping", flush=True)
        time.sleep(120)
        """ % (tmp_path / "pids")})
    run = Experiment(ws, "cancels").submit(ScriptRunConfig(source_directory=src, script="sleepy.py"))
    wait_for_status(run, ("Running",))
    deadline = time.time() + 20
    while not os.path.exists(tmp_path / "pids") and time.time() < deadline:
        time.sleep(0.05)
    pids = [int(p) for p in open(tmp_path / "pids").read().split()]
    started = time.time()
    run.cancel()
    assert wait_for_status(run, ("Canceled", "Failed", "Completed"), timeout=30) == "Canceled"
    assert time.time() - started < 15
    deadline = time.time() + 5
    while any(pid_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(pid_alive(p) for p in pids), "the script or its child outlived the cancel"


def test_max_run_duration_is_enforced(ws, tmp_path):
    from kittiwake import Experiment, ScriptRunConfig
    src = write(tmp_path, {"slow.py": "import time\nprint('start', flush=True)\ntime.sleep(60)\n"})
    run = Experiment(ws, "timeouts").submit(
        ScriptRunConfig(source_directory=src, script="slow.py", max_run_duration_seconds=2))
    started = time.time()
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed"
    assert "max_run_duration_seconds=2" in details["error"]["error"]["message"]
    assert time.time() - started < 30


def test_runs_wait_in_queued_while_the_slots_are_busy(ws, tmp_path):
    from kittiwake import ComputeTarget, Experiment, LocalCompute, ScriptRunConfig
    target = ComputeTarget.create(ws, "one-slot", LocalCompute.provisioning_configuration(slots=1))
    assert target.slots == 1 and "one-slot" in [t.name for t in ComputeTarget.list(ws)]
    src = write(tmp_path, {"nap.py": "import time\ntime.sleep(1.5)\n"})
    exp = Experiment(ws, "queueing")
    first = exp.submit(ScriptRunConfig(source_directory=src, script="nap.py", compute_target=target))
    second = exp.submit(ScriptRunConfig(source_directory=src, script="nap.py", compute_target="one-slot"))
    wait_for_status(first, ("Running",))
    assert second.get_status() == "Queued"
    a = first.wait_for_completion()
    b = second.wait_for_completion()
    first_end = [h for h in a["statusHistory"] if h["status"] == "Completed"][0]["timeUtc"]
    second_start = [h for h in b["statusHistory"] if h["status"] == "Preparing"][0]["timeUtc"]
    assert second_start >= first_end


def test_mlflow_calls_in_a_script_log_into_its_run(ws, tmp_path, local_env):
    from kittiwake import Experiment, ScriptRunConfig
    src = write(tmp_path, {"with_mlflow.py": """
        import mlflow
        mlflow.log_metric("from_mlflow", 5.0)
        mlflow.log_param("lr", "0.1")
        """})
    run = Experiment(ws, "mlflow-in-jobs").submit(
        ScriptRunConfig(source_directory=src, script="with_mlflow.py", environment=local_env))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", open(run.get_all_logs(str(tmp_path / "l"))[0]).read()
    assert run.get_metrics()["from_mlflow"] == 5.0


def test_private_wheel_environment_is_built_once_and_code_uploaded_once(ws, tmp_path):
    from kittiwake import Environment, Experiment, ScriptRunConfig
    wheel = build_wheel(tmp_path)
    url = Environment.add_private_pip_wheel(ws, wheel, exist_ok=True)
    assert url.startswith(ws._session.url) and url.endswith("kwtiny-1.0-py3-none-any.whl")
    env = Environment("with-wheel")
    env.python.conda_dependencies.add_pip_package(url)
    src = write(tmp_path / "src", {"use.py": "import kwtiny\nprint('value', kwtiny.VALUE)\n"})
    exp = Experiment(ws, "wheels")
    first = exp.submit(ScriptRunConfig(source_directory=src, script="use.py", environment=env))
    first.wait_for_completion()
    log = open(first.get_all_logs(str(tmp_path / "l1"))[0]).read()
    assert "value 42" in log and "Building environment" in log, log

    puts = []
    session = ws._session
    original = session.raw

    def counting(method, path, *args, **kwargs):
        if method == "PUT" and "/snapshots/blobs/" in path:
            puts.append(path)
        return original(method, path, *args, **kwargs)
    session.raw = counting
    try:
        second = exp.submit(ScriptRunConfig(source_directory=src, script="use.py", environment=env))
    finally:
        session.raw = original
    second.wait_for_completion()
    log = open(second.get_all_logs(str(tmp_path / "l2"))[0]).read()
    assert "value 42" in log and "Building environment" not in log, log
    assert puts == [], "resubmitting unchanged code uploaded files again"
    assert first.get_snapshot_id() == second.get_snapshot_id()


def test_environment_registry_versions_and_files(ws, tmp_path):
    from kittiwake import CondaDependencies, Environment
    env = Environment("registry-env")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["a==1"], python_version="3.11")
    assert env.register(ws).version == "1"
    assert env.register(ws).version == "1"
    env.python.conda_dependencies.add_pip_package("b==2")
    assert env.register(ws).version == "2"
    assert Environment.get(ws, "registry-env").python.conda_dependencies.pip_packages == ["a==1", "b==2"]
    assert Environment.get(ws, "registry-env", version=1).python.conda_dependencies.pip_packages == ["a==1"]
    listed = Environment.list(ws)
    assert "registry-env" in listed and "AzureML-Minimal" in listed
    env.save_to_directory(str(tmp_path / "saved"))
    loaded = Environment.load_from_directory(str(tmp_path / "saved"))
    assert loaded.python.conda_dependencies.get_python_version() == "3.11"
    yml = write(tmp_path, {"env.yml": """
        name: from-yaml
        channels:
          - conda-forge
        dependencies:
          - python=3.11
          - numpy=1.26
          - pip:
            - tiny==1.0
        """})
    from_yaml = Environment.from_conda_specification("yaml-env", os.path.join(yml, "env.yml"))
    assert from_yaml.python.conda_dependencies.conda_packages == ["numpy=1.26"]
    assert from_yaml.python.conda_dependencies.pip_packages == ["tiny==1.0"]
    write(tmp_path, {"requirements.txt": "# pinned\nalpha==1\n--index-url http://example.invalid/simple\n"})
    from_req = Environment.from_pip_requirements("req-env", str(tmp_path / "requirements.txt"))
    assert from_req.python.conda_dependencies.pip_packages == ["alpha==1"]
    assert from_req.python.conda_dependencies.pip_options == ["--index-url http://example.invalid/simple"]


def test_bad_submissions_are_refused_with_the_reason(ws, tmp_path):
    from kittiwake import (ComputeTargetException, Environment, Experiment, ScriptRunConfig,
                           UserErrorException)
    src = write(tmp_path / "src", {"ok.py": "print('ok')\n"})
    write(tmp_path, {"outside.py": "print('no')\n"})
    exp = Experiment(ws, "bad-input")
    with pytest.raises(UserErrorException, match="was not found in source_directory"):
        exp.submit(ScriptRunConfig(source_directory=src, script="missing.py"))
    with pytest.raises(UserErrorException, match="outside source_directory"):
        exp.submit(ScriptRunConfig(source_directory=src, script="../outside.py"))
    with pytest.raises(UserErrorException, match="Compute target 'nowhere' does not exist"):
        exp.submit(ScriptRunConfig(source_directory=src, script="ok.py", compute_target="nowhere"))
    with pytest.raises(ComputeTargetException):
        from kittiwake import ComputeTarget
        ComputeTarget(ws, "nowhere")
    with pytest.raises(UserErrorException, match="is not registered"):
        Environment.get(ws, "no-such-environment")
    with pytest.raises(UserErrorException, match="arguments must be strings or numbers"):
        exp.submit(ScriptRunConfig(source_directory=src, script="ok.py", arguments=[{"a": 1}]))
    docker = Environment("docker-env")
    docker.docker.base_image = "ubuntu:22.04"
    with pytest.raises(UserErrorException, match="Docker engine"):
        exp.submit(ScriptRunConfig(source_directory=src, script="ok.py", environment=docker))
    channel = Environment("channel-env")
    channel.python.conda_dependencies.add_channel("bioconda")
    with pytest.raises(UserErrorException, match="'bioconda'"):
        exp.submit(ScriptRunConfig(source_directory=src, script="ok.py", environment=channel))
    big = tmp_path / "big"
    big.mkdir()
    for i in range(2001):
        (big / ("f%04d.txt" % i)).write_text("x")
    (big / "run.py").write_text("print(1)\n")
    with pytest.raises(UserErrorException, match="2002 files"):
        exp.submit(ScriptRunConfig(source_directory=str(big), script="run.py"))


def test_environment_failures_fail_the_run_in_preparing(ws, tmp_path):
    from kittiwake import Environment, Experiment, ScriptRunConfig
    src = write(tmp_path / "src", {"ok.py": "print('ok')\n"})
    empty_index = tmp_path / "no-packages"
    empty_index.mkdir()
    exp = Experiment(ws, "env-failures")
    unresolvable = Environment("unresolvable")
    deps = unresolvable.python.conda_dependencies
    deps.add_pip_package("kittiwake-no-such-package==9.9")
    deps.set_pip_option("--no-index")
    deps.set_pip_option("--find-links %s" % empty_index)
    run = exp.submit(ScriptRunConfig(source_directory=src, script="ok.py", environment=unresolvable))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed"
    assert "Preparing failed" in details["error"]["error"]["message"]
    assert "Running" not in [h["status"] for h in details["statusHistory"]]
    log = open(run.get_all_logs(str(tmp_path / "l1"))[0]).read()
    assert "kittiwake-no-such-package" in log, log

    old_python = Environment("old-python")
    old_python.python.conda_dependencies.set_python_version("2.7")
    run = exp.submit(ScriptRunConfig(source_directory=src, script="ok.py", environment=old_python))
    details = run.wait_for_completion(raise_on_error=False)
    message = details["error"]["error"]["message"]
    assert "Python 2.7 is not installed" in message and "found: 3." in message, message


def test_amlignore_decides_what_the_snapshot_holds(ws, tmp_path):
    from kittiwake import Experiment, ScriptRunConfig
    src = write(tmp_path / "src", {
        ".amlignore": "data/\n*.ckpt\n!keep.ckpt\n",
        ".gitignore": "train.py\n",
        "train.py": "import os\nprint(sorted(os.listdir('.')))\n",
        "data/big.bin": "x" * 1000,
        "model.ckpt": "x",
        "keep.ckpt": "x",
    })
    run = Experiment(ws, "ignores").submit(ScriptRunConfig(source_directory=src, script="train.py"))
    run.wait_for_completion()
    restored = run.restore_snapshot(path=str(tmp_path / "restored"))
    assert sorted(os.listdir(restored)) == [".amlignore", ".gitignore", "keep.ckpt", "train.py"]


def test_each_gpu_run_gets_its_own_gpu(tmp_path):
    """Without a GPU here, the local target is told it has two; what matters is the hand-out."""
    from kittiwake import Experiment, ScriptRunConfig, UserErrorException, Workspace
    (tmp_path / "ws").mkdir()
    server = Server(tmp_path / "ws", args=("--local-gpus", "0,1", "--local-slots", "4"))
    try:
        ws = Workspace(url=server.url, token=server.token)
        src = write(tmp_path / "src", {"gpu.py": """
            import os, time
            print("devices=%s" % os.environ.get("CUDA_VISIBLE_DEVICES"), flush=True)
            time.sleep(1)
            """})
        exp = Experiment(ws, "gpus")
        runs = [exp.submit(ScriptRunConfig(source_directory=src, script="gpu.py", gpu_count=1)) for _ in range(3)]
        seen = []
        for run in runs:
            run.wait_for_completion()
            log = open(run.get_all_logs(str(tmp_path / run.id))[0]).read()
            seen.append(log.split("devices=")[1].split()[0])
        assert sorted(seen[:2]) == ["0", "1"] and seen[2] in ("0", "1"), seen
        with pytest.raises(UserErrorException, match="asks for 3 GPU"):
            exp.submit(ScriptRunConfig(source_directory=src, script="gpu.py", gpu_count=3))
    finally:
        server.stop()


def test_runs_survive_a_server_restart_and_dead_agents_are_noticed(tmp_path):
    from kittiwake import ComputeTarget, Experiment, LocalCompute, ScriptRunConfig, Workspace
    folder = tmp_path / "ws"
    folder.mkdir()
    server = Server(folder)
    port = server.port
    try:
        ws = Workspace(url=server.url, token=server.token)
        src = write(tmp_path / "src", {
            "steady.py": "import time\nfor i in range(6):\n    print('tick', i, flush=True)\n    time.sleep(0.5)\n",
            "forever.py": "import time\nprint('up', flush=True)\ntime.sleep(300)\n",
        })
        exp = Experiment(ws, "restarts")
        ComputeTarget.create(ws, "restart-one", LocalCompute.provisioning_configuration(slots=1))
        survivor = exp.submit(ScriptRunConfig(source_directory=src, script="steady.py",
                                              compute_target="restart-one"))
        waiting = exp.submit(ScriptRunConfig(source_directory=src, script="steady.py",
                                             compute_target="restart-one"))
        orphan = exp.submit(ScriptRunConfig(source_directory=src, script="forever.py"))
        wait_for_status(survivor, ("Running",))
        wait_for_status(orphan, ("Running",))
        assert waiting.get_status() == "Queued"
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        server.proc.stdout.close()
        time.sleep(1)
        server = Server(folder, port=port)
        details = survivor.wait_for_completion()
        assert details["status"] == "Completed"
        log = open(survivor.get_all_logs(str(tmp_path / "l"))[0]).read()
        assert all("tick %d" % i in log for i in range(6)), log
        assert waiting.wait_for_completion()["status"] == "Completed"

        agent_pid = None
        for line in os.popen("ps -eww -o pid,args").read().splitlines():
            if "kittiwake exec" in line and orphan.id in line:
                agent_pid = int(line.split()[0])
        assert agent_pid, "the orphan's agent is not running"
        os.kill(agent_pid, signal.SIGKILL)
        started = time.time()
        assert wait_for_status(orphan, ("Failed", "Completed", "Canceled"), timeout=20) == "Failed"
        assert time.time() - started < 10
        assert "stopped without reporting" in orphan.get_details()["error"]["error"]["message"]
    finally:
        server.stop()

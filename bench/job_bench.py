"""Submitted runs: how fast a script starts, how fast an environment builds, what scheduling costs.

Run from the repository root after `cargo build --release -p kittiwake` and `bash scripts/test-all`
(for .venv, which has uv and the SDK):

    .venv/bin/python bench/job_bench.py

Figures, each beside its anchor:
  1. submit → first line the script prints, environment warm, against a bare `python3 -c pass`;
  2. a cold environment build with one small package from a local wheel;
  3. 100 trivial runs through a 2-slot target: wall time, and the overhead per run beyond the
     Python process itself;
  4. the same trivial script through `mlflow run` (MLflow Projects, local env manager), if mlflow is
     installed.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))

from conftest import Server  # noqa: E402
from wheels import build_wheel  # noqa: E402


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def bare_python(python, n=20):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([python, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def first_line_after_submit(exp, config):
    """Seconds from submit to the first byte of the script's own output reaching the client."""
    t = time.perf_counter()
    run = exp.submit(config)
    offset = 0
    while True:
        data, offset, status = run._read_log(offset, 10000)
        if b"first line" in data:
            elapsed = time.perf_counter() - t
            break
        if status in ("Completed", "Failed", "Canceled") and not data:
            raise RuntimeError("run %s ended %s before printing" % (run.id, status))
    run.wait_for_completion()
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("KITTIWAKE_BIN", os.path.join(ROOT, "target", "release", "kittiwake"))
    if "KITTIWAKE_UV" not in os.environ:
        # scripts/test-all installs uv for the system python3.
        os.environ["KITTIWAKE_UV"] = subprocess.run(
            ["python3", "-c", "import uv; print(uv.find_uv_bin())"],
            check=True, capture_output=True, text=True).stdout.strip()
    import conftest
    conftest.BIN = os.environ["KITTIWAKE_BIN"]
    from kittiwake import (ComputeTarget, Environment, Experiment, LocalCompute, ScriptRunConfig,
                           Workspace)

    tmp = tempfile.mkdtemp(prefix="kittiwake-job-bench-")
    folder = os.path.join(tmp, "ws")
    os.makedirs(folder)
    server = Server(folder)
    results = {}
    try:
        ws = Workspace(url=server.url, token=server.token)
        exp = Experiment(ws, "job-bench")
        src = os.path.join(tmp, "src")
        os.makedirs(src)
        write(os.path.join(src, "first.py"), "print('first line', flush=True)\n")
        write(os.path.join(src, "noop.py"), "pass\n")

        warm_env = Environment.get(ws, "AzureML-Minimal")
        config = ScriptRunConfig(source_directory=src, script="first.py", environment=warm_env)
        first_line_after_submit(exp, config)  # builds and caches the environment
        envs = os.path.join(folder, ".kittiwake", "cache", "envs")
        built = [d for d in os.listdir(envs) if os.path.isdir(os.path.join(envs, d))]
        # The anchor is the very interpreter the runs use, started by hand.
        bare = bare_python(os.path.join(envs, built[0], "bin", "python"))
        results["bare `python -c pass`, the run's own interpreter (ms)"] = bare * 1000
        warm = [first_line_after_submit(exp, config) for _ in range(10)]
        results["submit → first line, warm environment, median of 10 (ms)"] = statistics.median(warm) * 1000
        results["  … over bare python start (ms)"] = (statistics.median(warm) - bare) * 1000

        wheels = os.path.join(tmp, "wheels")
        os.makedirs(wheels)
        cold = []
        for i in range(3):
            build_wheel(wheels, name="kwbench%d" % i, version="1.0")
            env = Environment("cold-%d" % i)
            deps = env.python.conda_dependencies
            deps.add_pip_package("kwbench%d==1.0" % i)
            deps.set_pip_option("--no-index")
            deps.set_pip_option("--find-links %s" % wheels)
            t = time.perf_counter()
            run = exp.submit(ScriptRunConfig(source_directory=src, script="first.py", environment=env))
            run.wait_for_completion()
            total = time.perf_counter() - t
            log = open(run.get_all_logs(os.path.join(tmp, "logs-%d" % i))[0]).read()
            built = [line for line in log.splitlines() if "ready in" in line]
            cold.append((float(built[0].split("ready in ")[1].split()[0]), total))
        results["cold environment build, one wheel, median of 3 (s)"] = statistics.median(c[0] for c in cold)
        results["  … submit → completed with that build (s)"] = statistics.median(c[1] for c in cold)

        ComputeTarget.create(ws, "bench-two", LocalCompute.provisioning_configuration(slots=2))
        gate = os.path.join(tmp, "gate")
        write(os.path.join(src, "blocker.py"),
              "import os, time\nwhile not os.path.exists(%r):\n    time.sleep(0.005)\n" % gate)
        noop = ScriptRunConfig(source_directory=src, script="noop.py", compute_target="bench-two",
                               environment=warm_env)
        exp.submit(noop).wait_for_completion()
        # Two blockers hold both slots while the runs are submitted, so that the client's own work
        # (hashing, requests) is done before the measured part starts.
        blockers = [exp.submit(ScriptRunConfig(source_directory=src, script="blocker.py",
                                               compute_target="bench-two", environment=warm_env))
                    for _ in range(2)]
        for b in blockers:
            while b.get_status() != "Running":
                time.sleep(0.01)
        runs = [exp.submit(noop) for _ in range(args.runs)]
        t = time.perf_counter()
        open(gate, "w").close()
        for run in runs:
            run.wait_for_completion()
        wall = time.perf_counter() - t
        histories = [ws._session.call("GET", "/api/kittiwake/v1/jobs/" + r.id)["status_history"] for r in runs]
        first_start = min(h["time"] for hist in histories for h in hist if h["status"] == "Preparing")
        last_end = max(h["time"] for hist in histories for h in hist if h["status"] == "Completed")
        busy = (last_end - first_start) / 1000
        script = statistics.median(
            [h for h in hist if h["status"] == "Finalizing"][0]["time"]
            - [h for h in hist if h["status"] == "Running"][0]["time"] for hist in histories)
        results["%d trivial runs through 2 slots, all queued first: wall (s)" % args.runs] = wall
        results["  … first start to last end on the server (s)"] = busy
        results["  … per run per slot (ms)"] = busy * 2 / args.runs * 1000
        results["  … of which the script's process, Running → Finalizing, median (ms)"] = script
        results["  … scheduling overhead per run: per run per slot beyond the script (ms)"] = (
            busy * 2 / args.runs * 1000 - script)
    finally:
        server.stop()

    try:
        import mlflow  # noqa: F401
        project = os.path.join(tmp, "project")
        os.makedirs(project)
        write(os.path.join(project, "MLproject"),
              "name: bench\nentry_points:\n  main:\n    command: \"python first.py\"\n")
        write(os.path.join(project, "first.py"), "print('first line', flush=True)\n")
        mlflow_bin = os.path.join(os.path.dirname(sys.executable), "mlflow")
        env = dict(os.environ, MLFLOW_TRACKING_URI="sqlite:///" + os.path.join(tmp, "mlflow.db"))
        times = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run([mlflow_bin, "run", project, "--env-manager", "local"], check=True, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - t)
        results["`mlflow run` (MLflow Projects, local env manager), same script, median of 3 (s)"] = statistics.median(times)
    except ImportError:
        pass

    width = max(len(k) for k in results)
    for key, value in results.items():
        print("%s  %10.1f" % (key.ljust(width), value) if "(ms)" in key else "%s  %10.2f" % (key.ljust(width), value))


if __name__ == "__main__":
    main()

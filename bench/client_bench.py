"""The same mlflow-client workloads against `mlflow server`, Kittiwake and a do-nothing server.

Run from the repository root after `cargo build --release -p kittiwake -p kittiwake-bench`:

    .venv/bin/python bench/client_bench.py

Prints a markdown table of rates and the ratios Kittiwake/mlflow and Kittiwake/do-nothing, then
the native SDK, start-up and memory figures. mlflow runs first and alone; then Kittiwake and the
do-nothing server take turns, two rounds each, and each keeps its better round. The do-nothing server replays responses recorded from
Kittiwake, so the client parses the same bytes from it and spends no time waiting on a store.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KITTIWAKE = os.path.join(ROOT, "target", "release", "kittiwake")
NULL_SERVER = os.path.join(ROOT, "target", "release", "null-server")
# A command every server starts under; `--pin` sets it to `taskset -c 0`.
SERVER_PREFIX = []
MLFLOW = os.path.join(os.path.dirname(sys.executable), "mlflow")
# The search workload: 300 runs, each with a metric `acc` and a param `opt` (see seed_search_runs).
SEARCH_FILTER = "metrics.acc > 0.5 AND params.opt = 'adam'"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url, started, timeout=120):
    while time.time() - started < timeout:
        try:
            urllib.request.urlopen(url + "/health", timeout=1).read()
            return time.time() - started
        except OSError:
            time.sleep(0.005)
    raise RuntimeError("%s never became healthy" % url)


def tree_rss_mb(pid):
    """Resident memory of a process and all its descendants, in MB."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        stack.extend(children.get(p, []))
        try:
            with open("/proc/%d/status" % p) as f:
                total += int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        except (OSError, AttributeError):
            pass
    return total / 1024


class Target:
    def __init__(self, name, url, proc, token="unused", startup=None):
        self.name, self.url, self.proc, self.token, self.startup = name, url, proc, token, startup

    def stop(self):
        """Ends the server and every process of its group, and waits until they are all gone, so
        that nothing of one target still runs while the next is measured."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.time() + 30
        while time.time() < deadline:
            self.proc.poll()
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def start_kittiwake(folder):
    started = time.time()
    proc = subprocess.Popen([*SERVER_PREFIX, KITTIWAKE, "server", "--port", "0"], cwd=folder,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    url = re.search(r"http://[\d.:]+", proc.stdout.readline()).group(0)
    startup = wait_healthy(url, started)
    token = open(os.path.join(folder, ".kittiwake", "admin.token")).read().strip()
    return Target("kittiwake", url, proc, token, startup)


def start_mlflow(folder):
    port = free_port()
    started = time.time()
    proc = subprocess.Popen([*SERVER_PREFIX, MLFLOW, "server", "--host", "127.0.0.1", "--port", str(port)], cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = "http://127.0.0.1:%d" % port
    return Target("mlflow", url, proc, startup=wait_healthy(url, started))


def start_null(responses_file):
    proc = subprocess.Popen([*SERVER_PREFIX, NULL_SERVER, responses_file], stdout=subprocess.PIPE, text=True, start_new_session=True)
    url = re.search(r"http://[\d.:]+", proc.stdout.readline()).group(0)
    return Target("do-nothing", url, proc)


def client_for(target):
    os.environ["MLFLOW_TRACKING_TOKEN"] = target.token
    from mlflow import MlflowClient
    return MlflowClient(tracking_uri=target.url)


def rate(fn, count, budget):
    """Calls fn(i) up to `count` times or for `budget` seconds; returns calls per second."""
    start = time.perf_counter()
    done = 0
    while done < count and (done == 0 or time.perf_counter() - start < budget):
        fn(done)
        done += 1
    return done / (time.perf_counter() - start)


def workloads(client, budget):
    from mlflow.entities import Metric
    exp = client.create_experiment("bench-%d" % time.time_ns())
    run = client.create_run(exp).info.run_id
    out = {}
    out["log_metric calls/s"] = rate(lambda i: client.log_metric(run, "m", float(i), step=i), 3000, budget)
    batch = [Metric("b", float(i), 1, i) for i in range(1000)]
    out["log_batch points/s (1,000 per call)"] = 1000 * rate(lambda i: client.log_batch(run, metrics=batch), 300, budget)
    hist_run = client.create_run(exp).info.run_id
    for start in range(0, 5000, 1000):
        client.log_batch(hist_run, metrics=[Metric("h", float(i), 1, i) for i in range(start, start + 1000)])
    assert len(client.get_metric_history(hist_run, "h")) == 5000
    out["get_metric_history of 5,000 points (ms)"] = 1000 / rate(lambda i: client.get_metric_history(hist_run, "h"), 200, budget)

    def create_log_terminate(i):
        r = client.create_run(exp).info.run_id
        client.log_metric(r, "x", 1.0)
        client.set_terminated(r)
    out["create+log+terminate runs/s"] = rate(create_log_terminate, 1000, budget)

    search_exp = client.create_experiment("bench-search-%d" % time.time_ns())
    seed_search_runs(client, search_exp)
    query = dict(experiment_ids=[search_exp], filter_string=SEARCH_FILTER, order_by=["metrics.acc DESC"])
    expected = sum(1 for i in range(300) if (i % 100) / 100 > 0.5 and i % 2)
    assert len(client.search_runs(**query)) == expected
    out["search of 300 runs, metric+param filter, order (ms)"] = 1000 / rate(lambda i: client.search_runs(**query), 200, budget)
    return out, {"run": run, "hist_run": hist_run, "exp": exp, "search_exp": search_exp}


def seed_search_runs(client, experiment_id):
    """Fills an experiment with the search workload's 300 runs."""
    from mlflow.entities import Metric, Param
    for i in range(300):
        run = client.create_run(experiment_id).info.run_id
        client.log_batch(run, metrics=[Metric("acc", (i % 100) / 100, 1, 0)],
                         params=[Param("opt", "adam" if i % 2 else "sgd")])


def best(runs):
    """Per workload, the best of several rounds: the highest rate, or the lowest time in ms."""
    return {name: (min if name.endswith("(ms)") else max)(r[name] for r in runs) for name in runs[0]}


def quietly(fn, *args):
    """Runs fn with stdout discarded: the client prints a line per terminated run."""
    import contextlib
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        return fn(*args)


def record(target, ids):
    """Kittiwake's answers to each call the workloads make, for the do-nothing server to replay."""
    def call(method, path, payload=None, query=None):
        url = target.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": "Bearer " + target.token, "Content-Type": "application/json"})
        return urllib.request.urlopen(req).read().decode()
    import urllib.parse
    m = "/api/2.0/mlflow"
    created = call("POST", m + "/runs/create", {"experiment_id": ids["exp"]})
    run_id = json.loads(created)["run"]["info"]["run_id"]
    return {
        "POST %s/runs/create" % m: created,
        "POST %s/runs/update" % m: call("POST", m + "/runs/update", {"run_id": run_id, "status": "FINISHED"}),
        "GET %s/runs/get" % m: call("GET", m + "/runs/get", query={"run_id": run_id}),
        "GET %s/metrics/get-history" % m: call("GET", m + "/metrics/get-history",
                                              query={"run_id": ids["hist_run"], "metric_key": "h", "max_results": 25000}),
        "POST %s/runs/search" % m: call("POST", m + "/runs/search", {
            "experiment_ids": [ids["search_exp"]], "filter": SEARCH_FILTER,
            "order_by": ["metrics.acc DESC"], "max_results": 1000}),
        "POST %s/experiments/create" % m: call("POST", m + "/experiments/create", {"name": "rec-%d" % time.time_ns()}),
    }


def native_sdk(target):
    script = """
import time
from kittiwake import Workspace, Experiment
ws = Workspace(url=%r, token=%r)
run = Experiment(ws, "native-bench").start_logging()
start = time.perf_counter()
log = run.log
for i in range(1_000_000):
    log("loss", i * 0.001)
run.flush()
elapsed = time.perf_counter() - start
assert len(run.get_metrics()["loss"]) == 1_000_000
print(elapsed)
""" % (target.url, target.token)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per workload at most")
    parser.add_argument("--pin", action="store_true",
                        help="run every server on CPU 0 and the client on CPU 1, instead of sharing both")
    args = parser.parse_args()
    if args.pin:
        SERVER_PREFIX[:] = ["taskset", "-c", "0"]
        os.sched_setaffinity(0, {1})
    tmp = tempfile.mkdtemp(prefix="kittiwake-bench-")
    results, extra = {}, {}
    try:
        os.makedirs(os.path.join(tmp, "mlflow"))
        ml = start_mlflow(os.path.join(tmp, "mlflow"))
        time.sleep(3)
        extra["mlflow idle RSS (MB, all processes)"] = tree_rss_mb(ml.proc.pid)
        extra["mlflow start to healthy (s)"] = ml.startup
        results["mlflow"], _ = quietly(workloads, client_for(ml), args.budget)
        ml.stop()
        os.sync()
        time.sleep(2)

        os.makedirs(os.path.join(tmp, "kittiwake"))
        kw = start_kittiwake(os.path.join(tmp, "kittiwake"))
        time.sleep(1)
        extra["kittiwake idle RSS (MB)"] = tree_rss_mb(kw.proc.pid)
        extra["kittiwake start to healthy (s)"] = kw.startup
        first, ids = quietly(workloads, client_for(kw), args.budget)
        responses = os.path.join(tmp, "responses.json")
        with open(responses, "w") as f:
            json.dump(record(kw, ids), f)
        null = start_null(responses)
        # Kittiwake and the do-nothing server take turns, twice each, so that neither is measured
        # only while the machine is busier; each keeps its better round.
        kittiwake_rounds, null_rounds = [first], []
        null_rounds.append(quietly(workloads, client_for(null), args.budget)[0])
        kittiwake_rounds.append(quietly(workloads, client_for(kw), args.budget)[0])
        null_rounds.append(quietly(workloads, client_for(null), args.budget)[0])
        results["kittiwake"], results["do-nothing"] = best(kittiwake_rounds), best(null_rounds)
        null.stop()
        extra["native SDK: 1,000,000 run.log + flush (s)"] = native_sdk(kw)
        extra["kittiwake RSS after the runs (MB)"] = tree_rss_mb(kw.proc.pid)
        kw.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print("| workload (mlflow client %s) | mlflow server | kittiwake | do-nothing | kittiwake ÷ mlflow | kittiwake ÷ do-nothing |"
          % __import__("mlflow").__version__)
    print("|---|---:|---:|---:|---:|---:|")
    for name in results["kittiwake"]:
        m, k, n = (results[t][name] for t in ("mlflow", "kittiwake", "do-nothing"))
        lower_is_better = name.endswith("(ms)")
        vs_mlflow = m / k if lower_is_better else k / m
        vs_null = n / k if lower_is_better else k / n
        print("| %s | %.1f | %.1f | %.1f | %.1f× | %.2f |" % (name, m, k, n, vs_mlflow, vs_null))
    print()
    for name, value in extra.items():
        print("- %s: %.3f" % (name, value))


if __name__ == "__main__":
    main()

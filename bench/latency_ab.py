"""Server time of the two slowest mlflow-client workloads, for comparing builds side by side.

    .venv/bin/python bench/latency_ab.py target/release/kittiwake /path/to/other/kittiwake

For each binary in turn (two rounds, alternating), starts a fresh server, fills an experiment with
the 300 runs of `client_bench.py`'s search workload, and prints the median latency over 400 calls
from a plain `http.client` loop on one keep-alive connection: the four requests the mlflow
client makes for create+log+terminate (create, log-metric, and `set_terminated`'s get and update)
and the filtered, ordered search. Without the
mlflow client's own cost in the loop, differences between builds show up clearly on a busy
2-core machine where the whole client benchmark moves by 10-20% between runs.
"""

import contextlib
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import client_bench  # noqa: E402

API = "/api/2.0/mlflow/"
SEARCH = {"filter": client_bench.SEARCH_FILTER, "max_results": 1000, "order_by": ["metrics.acc DESC"]}


@contextlib.contextmanager
def timed_server(binary):
    """A fresh server (started under `client_bench.SERVER_PREFIX`) with an experiment for new runs
    and one holding the search workload's runs; `call(method, path, body=None)` sends a request
    on one keep-alive connection and returns the answer's bytes."""
    client_bench.KITTIWAKE = binary
    folder = tempfile.mkdtemp(prefix="kittiwake-timed-")
    server = client_bench.start_kittiwake(folder)
    try:
        client = client_bench.client_for(server)
        runs_experiment = client.create_experiment("runs")
        search_experiment = client.create_experiment("search")
        client_bench.seed_search_runs(client, search_experiment)
        host, port = server.url.split("//")[1].split(":")
        conn = http.client.HTTPConnection(host, int(port))
        headers = {"Authorization": "Bearer " + server.token, "Content-Type": "application/json"}

        def call(method, path, body=None):
            conn.request(method, path, json.dumps(body) if body is not None else None, headers)
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200, data
            return data

        yield types.SimpleNamespace(call=call, pid=server.proc.pid, runs_experiment=runs_experiment,
                                    search_experiment=search_experiment)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def measure(binary, calls=400):
    with timed_server(binary) as s:
        def create_log_terminate():
            created = s.call("POST", API + "runs/create", {"experiment_id": s.runs_experiment, "start_time": 1})
            run = json.loads(created)["run"]["info"]["run_id"]
            s.call("POST", API + "runs/log-metric", {"run_id": run, "key": "x", "value": 1.0, "timestamp": 1, "step": 0})
            s.call("GET", API + "runs/get?run_id=" + run)
            s.call("POST", API + "runs/update", {"run_id": run, "status": "FINISHED", "end_time": 2})

        search = dict(SEARCH, experiment_ids=[s.search_experiment])
        out = {}
        for name, fn in (("create+log+terminate", create_log_terminate),
                         ("search", lambda: s.call("POST", API + "runs/search", search))):
            times = []
            for _ in range(calls):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            out[name] = statistics.median(times) * 1000
        return out


def main():
    binaries = [os.path.abspath(b) for b in sys.argv[1:]] or [client_bench.KITTIWAKE]
    print("| round | binary | create+log+terminate (ms) | search of 300 runs (ms) |")
    print("|---|---|---:|---:|")
    for round_ in (1, 2):
        for binary in binaries:
            r = measure(binary)
            print("| %d | %s | %.2f | %.2f |" % (round_, binary, r["create+log+terminate"], r["search"]), flush=True)


if __name__ == "__main__":
    main()

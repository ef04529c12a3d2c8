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

import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import client_bench  # noqa: E402

SEARCH_FILTER = "metrics.acc > 0.5 AND params.opt = 'adam'"


def measure(binary, calls=400):
    from mlflow.entities import Metric, Param
    client_bench.KITTIWAKE = binary
    tmp = tempfile.mkdtemp(prefix="kittiwake-ab-")
    server = client_bench.start_kittiwake(tmp)
    try:
        client = client_bench.client_for(server)
        exp = client.create_experiment("runs")
        search_exp = client.create_experiment("search")
        for i in range(300):
            run = client.create_run(search_exp).info.run_id
            client.log_batch(run, metrics=[Metric("acc", (i % 100) / 100, 1, 0)],
                             params=[Param("opt", "adam" if i % 2 else "sgd")])
        host, port = server.url.split("//")[1].split(":")
        conn = http.client.HTTPConnection(host, int(port))
        headers = {"Authorization": "Bearer " + server.token, "Content-Type": "application/json"}

        def call(path, body):
            conn.request("POST", "/api/2.0/mlflow/" + path, json.dumps(body), headers)
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200, data
            return json.loads(data)

        def create_log_terminate():
            run = call("runs/create", {"experiment_id": exp, "start_time": 1})["run"]["info"]["run_id"]
            call("runs/log-metric", {"run_id": run, "key": "x", "value": 1.0, "timestamp": 1, "step": 0})
            conn.request("GET", "/api/2.0/mlflow/runs/get?run_id=" + run, headers=headers)
            resp = conn.getresponse()
            assert resp.status == 200, resp.read()
            resp.read()
            call("runs/update", {"run_id": run, "status": "FINISHED", "end_time": 2})

        search = {"experiment_ids": [search_exp], "filter": SEARCH_FILTER, "max_results": 1000,
                  "order_by": ["metrics.acc DESC"]}
        out = {}
        for name, fn in (("create+log+terminate", create_log_terminate),
                         ("search", lambda: call("runs/search", search))):
            times = []
            for _ in range(calls):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            out[name] = statistics.median(times) * 1000
        return out
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


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

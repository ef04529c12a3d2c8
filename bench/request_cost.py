"""What each request of the client benchmark costs the server, and where that time goes.

    .venv/bin/python bench/request_cost.py [target/release/kittiwake]

For one release binary, prints the median latency of each request the mlflow client makes in the
create+log+terminate and search workloads (plus `/health`, which touches no database, as the
floor), from a plain `http.client` loop on one keep-alive connection, beside the number of times
the server's threads gave up the CPU per request (from /proc). It does so twice: with the server
and the client free to run on any CPU, as in `client_bench.py`, and with the server held to CPU 0
and this client to CPU 1. The second layout shows what the thread hand-offs inside the server cost
when every wake-up of a sleeping thread is not also a wake-up of a sleeping CPU.
"""

import glob
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import client_bench  # noqa: E402
from latency_ab import API, SEARCH, timed_server  # noqa: E402

CALLS = 300


def thread_switches(pid):
    """Voluntary context switches summed over the process's threads."""
    total = 0
    for status in glob.glob("/proc/%d/task/*/status" % pid):
        try:
            with open(status) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def measure(binary, pinned):
    client_bench.SERVER_PREFIX[:] = ["taskset", "-c", "0"] if pinned else []
    own_cpus = os.sched_getaffinity(0)
    if pinned:
        os.sched_setaffinity(0, {1})
    try:
        with timed_server(binary) as s:
            created = s.call("POST", API + "runs/create", {"experiment_id": s.runs_experiment})
            run = json.loads(created)["run"]["info"]["run_id"]
            mlflow_tags = [{"key": "mlflow.user", "value": "bench"},
                           {"key": "mlflow.source.name", "value": "train.py"},
                           {"key": "mlflow.source.type", "value": "LOCAL"}]
            search = dict(SEARCH, experiment_ids=[s.search_experiment])
            requests = [
                ("GET /health (no database)", lambda: s.call("GET", "/health")),
                ("runs/create with 3 tags", lambda: s.call("POST", API + "runs/create", {
                    "experiment_id": s.runs_experiment, "start_time": 1, "tags": mlflow_tags})),
                ("runs/log-metric", lambda: s.call("POST", API + "runs/log-metric", {
                    "run_id": run, "key": "x", "value": 1.0, "timestamp": 1, "step": 0})),
                ("runs/get", lambda: s.call("GET", API + "runs/get?run_id=" + run)),
                ("runs/update", lambda: s.call("POST", API + "runs/update", {"run_id": run, "status": "RUNNING"})),
                ("runs/search of 300 runs", lambda: s.call("POST", API + "runs/search", search)),
            ]
            out = []
            for name, fn in requests:
                fn()
                before = thread_switches(s.pid)
                times = []
                for _ in range(CALLS):
                    start = time.perf_counter()
                    fn()
                    times.append(time.perf_counter() - start)
                switches = (thread_switches(s.pid) - before) / CALLS
                out.append((name, statistics.median(times) * 1000, switches))
            return out
    finally:
        os.sched_setaffinity(0, own_cpus)


def main():
    binary = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else client_bench.KITTIWAKE
    shared, pinned = measure(binary, pinned=False), measure(binary, pinned=True)
    print("| request | shared CPUs (ms) | server switches | server on CPU 0, client on CPU 1 (ms) "
          "| server switches |")
    print("|---|---:|---:|---:|---:|")
    for (name, ms, sw), (_, pinned_ms, pinned_sw) in zip(shared, pinned):
        print("| %s | %.3f | %.1f | %.3f | %.1f |" % (name, ms, sw, pinned_ms, pinned_sw))


if __name__ == "__main__":
    main()

"""Data: moving files through datastores, profiling a CSV, registering a big dataset.

Run from the repository root after `cargo build --release -p kittiwake` and `bash scripts/test-all`:

    .venv/bin/python bench/data_bench.py [--mb 1024] [--files 1000] [--dataset-files 100000]

Figures, each beside its anchor, in one run:
  1. upload and download of MB megabytes in FILES files through the local default datastore
     (`kittiwake datastore upload|download`) against `cp -r`: as users run them (the CLI copies
     files itself when it sees the server's folder) and forced through the server's HTTP API
     (`--via-server`, what a client on another machine gets);
  2. the same through an S3 datastore on moto's S3 server against `aws s3 cp --recursive` to the
     same server;
  3. a server-side profile of an MB-megabyte CSV against pandas `read_csv` + `describe`;
  4. registering a dataset of DATASET_FILES small files (a glob over a local datastore).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))

import conftest  # noqa: E402
import s3server  # noqa: E402


def timed(fn):
    # Each figure starts with nothing left to write back from the step before, so no side pays
    # for another's writes.
    os.sync()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(folder) for n in names)


def run(*args, env=None):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, env=env)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--dataset-files", type=int, default=100000)
    parser.add_argument("--parts", default="local,s3,profile,register",
                        help="which figures to take, comma-separated")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    kittiwake = os.environ.get("KITTIWAKE_BIN", os.path.join(ROOT, "target", "release", "kittiwake"))
    conftest.BIN = kittiwake
    from kittiwake import Dataset, Datastore, Workspace

    tmp = tempfile.mkdtemp(prefix="kittiwake-data-bench-")
    results = []
    folder = os.path.join(tmp, "ws")
    os.makedirs(folder)
    server = conftest.Server(folder)
    moto = None
    try:
        ws = Workspace(url=server.url, token=server.token)
        env = dict(os.environ, KITTIWAKE_URL=server.url, KITTIWAKE_TOKEN=server.token)

        src = os.path.join(tmp, "src")
        os.makedirs(src)
        per_file = args.mb * 1024 * 1024 // args.files
        block = os.urandom(per_file)
        for i in range(args.files):
            with open(os.path.join(src, "part-%05d.bin" % i), "wb") as f:
                f.write(block[i % 251:] + block[:i % 251])
        label = "%d MB in %d files" % (args.mb, args.files)

        def local_datastore():
            fresh = iter(range(100))

            def upload(*extra):
                # Into a new folder each time, as cp -r does: replacing files frees their blocks,
                # which this disk (mounted with discard) makes slow.
                return lambda: run(kittiwake, "datastore", "upload", "workspaceblobstore", src,
                                   "--target", "bench/%d" % next(fresh), *extra, env=env)

            def download(*extra):
                return lambda: run(kittiwake, "datastore", "download", "workspaceblobstore", "--prefix", "bench/0",
                                   "--to", os.path.join(tmp, "down"), *extra, env=env)
            figures = {
                "up": upload(),
                "up_served": upload("--via-server"),
                "cp_up": lambda: run("cp", "-r", src, os.path.join(tmp, "cp-copy")),
                "down": download(),
                "down_served": download("--via-server"),
                "cp_down": lambda: run("cp", "-r", os.path.join(tmp, "cp-copy"), os.path.join(tmp, "cp-copy-2")),
            }
            # The disk's own state (writeback, its cache) moves single figures by 2x here, so each
            # is the median of three rounds whose order turns, the anchor first every other time.
            times = {k: [] for k in figures}
            for round_ in range(3):
                order = ["cp_up", "up", "up_served", "cp_down", "down", "down_served"]
                if round_ % 2:
                    order = ["up", "up_served", "cp_up", "down", "down_served", "cp_down"]
                for key in order:
                    times[key].append(timed(figures[key]))
                    if key in ("down", "down_served"):
                        assert folder_bytes(os.path.join(tmp, "down")) == args.files * per_file, key
                    for d in {"down": ["down"], "down_served": ["down"], "cp_down": ["cp-copy-2"]}.get(key, []):
                        shutil.rmtree(os.path.join(tmp, d))
                shutil.rmtree(os.path.join(tmp, "cp-copy"))
            t = {k: sorted(v)[1] for k, v in times.items()}
            results.append(("upload %s, local datastore vs cp -r" % label, t["up"], t["cp_up"]))
            results.append(("  … the same through the server (--via-server)", t["up_served"], t["cp_up"]))
            results.append(("download %s, local datastore vs cp -r" % label, t["down"], t["cp_down"]))
            results.append(("  … the same through the server (--via-server)", t["down_served"], t["cp_down"]))

        if "local" in parts:
            local_datastore()

        if "s3" in parts:
            moto, s3 = s3server.start(buckets=["kw-bench", "aws-bench"])
            Datastore.register_s3(ws, "bench-s3", "kw-bench", endpoint=s3, access_key_id="bench",
                                  secret_access_key="bench-secret")
            aws_env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret",
                           AWS_DEFAULT_REGION="us-east-1")
            up = timed(lambda: run(kittiwake, "datastore", "upload", "bench-s3", src, "--target", "bench", env=env))
            aws_up = timed(lambda: run("aws", "--endpoint-url", s3, "s3", "cp", "--recursive", "--quiet", src,
                                       "s3://aws-bench/bench", env=aws_env))
            down = timed(lambda: run(kittiwake, "datastore", "download", "bench-s3", "--prefix", "bench",
                                     "--to", os.path.join(tmp, "s3-down"), env=env))
            aws_down = timed(lambda: run("aws", "--endpoint-url", s3, "s3", "cp", "--recursive", "--quiet",
                                         "s3://aws-bench/bench", os.path.join(tmp, "aws-down"), env=aws_env))
            results.append(("upload %s, S3 datastore (moto) vs aws s3 cp --recursive" % label, up, aws_up))
            results.append(("download %s, S3 datastore (moto) vs aws s3 cp --recursive" % label, down, aws_down))
            moto.kill()
            moto.wait()
            moto = None
            for d in ("s3-down", "aws-down"):
                shutil.rmtree(os.path.join(tmp, d))

        shutil.rmtree(src)

        if "profile" in parts:
            csv_dir = os.path.join(tmp, "csv")
            os.makedirs(csv_dir)
            csv_path = os.path.join(csv_dir, "big.csv")
            with open(csv_path, "w") as f:
                f.write("id,score,ratio,city,flag\n")
                row = 0
                target = args.mb * 1024 * 1024
                cities = ["oslo", "lima", "pune", "cork", "nice", "kobe", "graz", "tula"]
                while f.tell() < target:
                    lines = []
                    for _ in range(10000):
                        lines.append("%d,%d,%.4f,%s,%s\n" % (row, row % 997, (row % 1000) / 7.0,
                                                             cities[row % 8], "true" if row % 3 else "false"))
                        row += 1
                    f.write("".join(lines))
            size_mb = os.path.getsize(csv_path) / 1024 / 1024
            store = Datastore.register_local(ws, "bench-csv", csv_dir)
            table = Dataset.Tabular.from_delimited_files(path=[(store, "big.csv")])
            profile = {}
            profile_s = timed(lambda: profile.update(table.profile()))
            assert profile["row_count"] == row

            def pandas_describe():
                import pandas as pd
                pd.read_csv(csv_path).describe(include="all")
            pandas_s = timed(pandas_describe)
            results.append(("profile of a %.0f MB CSV (%d rows): server vs pandas read_csv + describe"
                            % (size_mb, row), profile_s, pandas_s))
            results.append(("  … profile throughput (MB/s)", size_mb / profile_s, size_mb / pandas_s))
            os.remove(csv_path)

        if "register" in parts:
            many = os.path.join(tmp, "many")
            for i in range(args.dataset_files):
                sub = os.path.join(many, "d%03d" % (i % 100))
                if i < 100:
                    os.makedirs(sub)
                with open(os.path.join(sub, "f%06d.txt" % i), "w") as f:
                    f.write("x")
            store = Datastore.register_local(ws, "bench-many", many)
            registered = {}
            reg_s = timed(lambda: registered.update(
                d=Dataset.File.from_files(path=[(store, "**/*.txt")], validate=False).register(ws, "bench-many")))
            assert len(registered["d"]._doc["files"]) == args.dataset_files
            results.append(("register a dataset of %d files (glob over a local datastore)" % args.dataset_files,
                            reg_s, None))
    finally:
        if moto is not None:
            moto.kill()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print("| figure | kittiwake | anchor | kittiwake ÷ anchor |")
    print("|---|---:|---:|---:|")
    for name, ours, anchor in results:
        if anchor is None:
            print("| %s | %.2f s | | |" % (name, ours))
        elif "MB/s" in name:
            print("| %s | %.0f MB/s | %.0f MB/s | %.2f |" % (name, ours, anchor, ours / anchor))
        else:
            print("| %s | %.2f s | %.2f s | %.2f |" % (name, ours, anchor, ours / anchor))


if __name__ == "__main__":
    main()

"""Starts real Kittiwake servers for the Python suites."""

import os
import re
import subprocess
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("KITTIWAKE_BIN", os.path.join(ROOT, "target", "debug", "kittiwake"))


class Server:
    """A `kittiwake server` process in its own folder."""

    def __init__(self, folder, port=0, args=(), env=None, stderr=None):
        self.folder = str(folder)
        self.proc = subprocess.Popen([BIN, "server", "--port", str(port), *args], cwd=self.folder,
                                     stdout=subprocess.PIPE, stderr=stderr, env=env, text=True)
        first = self.proc.stdout.readline()
        match = re.search(r"http://[\d.]+:(\d+)", first)
        if not match:
            self.proc.kill()
            raise RuntimeError("kittiwake server did not start: %r" % first)
        self.url = match.group(0)
        self.port = int(match.group(1))
        with open(os.path.join(self.folder, ".kittiwake", "admin.token")) as f:
            self.token = f.read().strip()
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.url + "/health", timeout=1).read()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("kittiwake server never became healthy")

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("workspace"))
    yield s
    s.stop()


@pytest.fixture
def ws(server):
    from kittiwake import Workspace
    return Workspace(url=server.url, token=server.token)


@pytest.fixture
def mlflow_server(server, monkeypatch):
    """Points the mlflow client at the module's server."""
    import mlflow
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(server.url)
    yield server
    if mlflow.active_run():
        mlflow.end_run()

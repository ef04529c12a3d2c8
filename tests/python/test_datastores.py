"""Datastores end to end: the default one, a local folder and an S3 bucket on a real S3 server
(moto), credentials sealed and never shown, and the key rotated."""

import os
import sqlite3
import subprocess
import time
import urllib.request

import pytest

from files import write_tree

import s3server
from conftest import BIN, Server

SECRET = "kw-secret-key-do-not-leak-1234567890"


@pytest.fixture(scope="module")
def s3():
    proc, url = s3server.start(buckets=["kw-bucket"])
    yield url
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def azure():
    proc, endpoint = s3server.start_azurite(containers=["kw-container"])
    yield endpoint
    proc.kill()
    proc.wait()


def test_azure_blob_datastore_against_azurite(ws, azure, tmp_path):
    from kittiwake import Datastore, UserErrorException
    ds = Datastore.register_azure_blob_container(
        ws, "blobs", "kw-container", s3server.AZURITE_ACCOUNT, account_key=s3server.AZURITE_KEY,
        endpoint=azure)
    assert ds.datastore_type == "AzureBlob" and ds.has_credentials
    src = write_tree(tmp_path / "data", {"x/1.txt": "one", "x/2.txt": "two"})
    ds.upload(src, target_path="in", show_progress=False)
    assert sorted(ds.list("in")) == [("in/x/1.txt", 3), ("in/x/2.txt", 3)]
    assert ds.download(str(tmp_path / "back"), prefix="in", show_progress=False) == 2
    assert open(tmp_path / "back" / "in" / "x" / "2.txt").read() == "two"
    wrong = s3server.AZURITE_KEY[:-8] + "AAAAAAA="
    with pytest.raises(UserErrorException, match="cannot be read"):
        Datastore.register_azure_blob_container(ws, "wrong-key", "kw-container", s3server.AZURITE_ACCOUNT,
                                                account_key=wrong, endpoint=azure)


def test_default_datastore_uploads_lists_and_downloads(ws, tmp_path):
    from azureml.core import Datastore
    ds = ws.get_default_datastore()
    assert ds.name == "workspaceblobstore" and ds.datastore_type == "WorkspaceBlob"
    assert "workspaceblobstore" in ws.datastores
    src = write_tree(tmp_path / "data", {"a.csv": "x,y\n1,2\n", "sub/b.csv": "x,y\n3,4\n"})
    ref = ds.upload(src, target_path="train", show_progress=False)
    assert ref.path_on_datastore == "train"
    assert sorted(ds.list("train")) == [("train/a.csv", 8), ("train/sub/b.csv", 8)]
    write_tree(tmp_path / "data", {"a.csv": "changed\n"})
    ds.upload(src, target_path="train", show_progress=False)
    assert dict(ds.list("train"))["train/a.csv"] == 8, "overwrite=False must keep the existing file"
    ds.upload(src, target_path="train", overwrite=True, show_progress=False)
    assert dict(ds.list("train"))["train/a.csv"] == 8 - 8 + len("changed\n")
    assert ds.download(str(tmp_path / "copy"), prefix="train", show_progress=False) == 2
    assert open(tmp_path / "copy" / "train" / "sub" / "b.csv").read() == "x,y\n3,4\n"
    assert Datastore.get(ws, "workspaceblobstore").name == "workspaceblobstore"


def test_local_folder_datastore_and_paths_that_escape(ws, tmp_path):
    from kittiwake import Datastore, UserErrorException
    folder = tmp_path / "shared"
    folder.mkdir()
    ds = Datastore.register_local(ws, "shared-folder", str(folder))
    src = write_tree(tmp_path / "src", {"one.txt": "1"})
    ds.upload(src, target_path="in", show_progress=False)
    assert (folder / "in" / "one.txt").read_text() == "1"
    with pytest.raises(UserErrorException, match="not an existing folder"):
        Datastore.register_local(ws, "missing-folder", str(tmp_path / "nope"))
    with pytest.raises(UserErrorException, match="absolute"):
        Datastore.register_local(ws, "relative-folder", "relative/path")
    with pytest.raises(UserErrorException, match="exists"):
        Datastore.register_local(ws, "shared-folder", str(folder))
    with pytest.raises(UserErrorException, match="Invalid path"):
        ds.upload(src, target_path="../outside", show_progress=False)
    assert not (tmp_path / "outside").exists()
    with pytest.raises(UserErrorException, match="not registered"):
        Datastore.get(ws, "no-such-datastore")


def test_s3_datastore_against_a_real_s3_server(ws, s3, tmp_path):
    from kittiwake import Datastore, UserErrorException
    ds = Datastore.register_s3(ws, "bucket", "kw-bucket", endpoint=s3, region="us-east-1",
                               access_key_id="AKIAKITTIWAKE", secret_access_key=SECRET)
    assert ds.datastore_type == "S3" and ds.has_credentials and ds.bucket == "kw-bucket"
    src = write_tree(tmp_path / "data", {"part-0.csv": "a\n1\n", "part-1.csv": "a\n2\n"})
    ds.upload(src, target_path="raw", show_progress=False)
    listing = urllib.request.urlopen(s3 + "/kw-bucket?list-type=2").read().decode()
    assert "raw/part-0.csv" in listing and "raw/part-1.csv" in listing
    assert ds.download(str(tmp_path / "back"), prefix="raw", show_progress=False) == 2
    assert open(tmp_path / "back" / "raw" / "part-1.csv").read() == "a\n2\n"
    with pytest.raises(UserErrorException, match="cannot be read"):
        Datastore.register_s3(ws, "no-bucket", "kw-missing-bucket", endpoint=s3,
                              access_key_id="AKIAKITTIWAKE", secret_access_key=SECRET)
    started = time.time()
    with pytest.raises(UserErrorException, match="'unreachable'"):
        Datastore.register_s3(ws, "unreachable", "kw-bucket", endpoint="http://127.0.0.1:%d" % s3server.free_port(),
                              access_key_id="AKIAKITTIWAKE", secret_access_key=SECRET)
    assert time.time() - started < 30
    assert "bucket" in ws.datastores


def test_credentials_are_sealed_never_shown_and_survive_a_key_rotation(s3, tmp_path):
    from kittiwake import Datastore, Workspace
    folder = tmp_path / "ws"
    folder.mkdir()
    log_path = tmp_path / "server.log"
    env = dict(os.environ, KITTIWAKE_LOG="debug")
    with open(log_path, "w") as log:
        server = Server(folder, env=env, stderr=log)
        try:
            ws = Workspace(url=server.url, token=server.token)
            Datastore.register_s3(ws, "sealed", "kw-bucket", endpoint=s3, access_key_id="AKIAKITTIWAKE",
                                  secret_access_key=SECRET)
            answers = [
                ws._session.call("GET", "/api/kittiwake/v1/datastores"),
                ws._session.call("GET", "/api/kittiwake/v1/datastores/sealed"),
            ]
            assert all(SECRET not in str(a) for a in answers)
            assert answers[1]["has_credentials"] is True
        finally:
            server.stop()
        db = folder / ".kittiwake" / "metadata.sqlite"
        raw = open(db, "rb").read() + b"".join(
            open(str(db) + suffix, "rb").read() for suffix in ("-wal",) if os.path.exists(str(db) + suffix))
        assert SECRET.encode() not in raw, "the credentials are stored in clear"
        sealed_before = sqlite3.connect(db).execute(
            "SELECT sealed_secrets FROM datastores WHERE name = 'sealed'").fetchone()[0]

        out = subprocess.run([BIN, "secrets", "rotate", "--data-dir", str(folder / ".kittiwake")],
                             capture_output=True, text=True, check=True)
        assert "1 datastore" in out.stdout
        sealed_after = sqlite3.connect(db).execute(
            "SELECT sealed_secrets FROM datastores WHERE name = 'sealed'").fetchone()[0]
        assert sealed_after != sealed_before

        server = Server(folder, env=env, stderr=log)
        try:
            ws = Workspace(url=server.url, token=server.token)
            src = write_tree(tmp_path / "src", {"f.txt": "after rotation"})
            Datastore.get(ws, "sealed").upload(src, target_path="rotated", show_progress=False)
            assert "rotated/f.txt" in urllib.request.urlopen(s3 + "/kw-bucket?list-type=2").read().decode()
        finally:
            server.stop()
    assert SECRET not in open(log_path).read(), "a credential reached the server's log"

"""Datastores: where a workspace's data lives.

Every workspace has ``workspaceblobstore``; more datastores name a folder on the server's machine,
an S3-compatible bucket or an Azure Blob container. Credentials go to the server once, are kept
encrypted, and are never sent back."""

import os
import shutil
import tempfile
import urllib.parse

from ._errors import UserErrorException
from ._http import decode

_V1 = "/api/kittiwake/v1/datastores"


def _quote_path(path):
    return "/".join(urllib.parse.quote(part, safe="") for part in path.split("/"))


class DataPath:
    """A path inside a datastore, as ``upload`` returns it."""

    def __init__(self, datastore, path_on_datastore):
        self.datastore = datastore
        self.path_on_datastore = path_on_datastore

    def __repr__(self):
        return "DataPath(%s:/%s)" % (self.datastore.name, self.path_on_datastore)


class Datastore:
    """A datastore of a workspace.

    Example::

        ds = ws.get_default_datastore()
        ds.upload("data", target_path="train", overwrite=True)
        ds.download("local-copy", prefix="train")
    """

    def __init__(self, workspace, name=None, _doc=None):
        self.workspace = workspace
        if _doc is None:
            name = name or "workspaceblobstore"
            _doc = workspace._session.call("GET", _V1 + "/" + urllib.parse.quote(name, safe=""))
        self._doc = _doc
        self.name = _doc["name"]
        self.datastore_type = _doc["datastore_type"]
        self.settings = dict(_doc.get("settings") or {})
        self.has_credentials = bool(_doc.get("has_credentials"))

    def __getattr__(self, key):
        settings = self.__dict__.get("settings", {})
        if key in settings:
            return settings[key]
        raise AttributeError(key)

    # the registry -----------------------------------------------------------------------------

    @staticmethod
    def get(workspace, datastore_name):
        return Datastore(workspace, datastore_name)

    @staticmethod
    def get_default(workspace):
        return Datastore(workspace, "workspaceblobstore")

    @staticmethod
    def _all(workspace):
        docs = workspace._session.call("GET", _V1)["datastores"]
        return [Datastore(workspace, d["name"], _doc=d) for d in docs]

    @staticmethod
    def _register(workspace, body):
        return Datastore(workspace, body["name"], _doc=workspace._session.call("POST", _V1, body))

    @staticmethod
    def register_local(workspace, datastore_name, path, overwrite=False):
        """A folder on the server's machine (give its absolute path there)."""
        return Datastore._register(workspace, {"name": datastore_name, "datastore_type": "LocalFolder",
                                               "path": path, "overwrite": overwrite})

    @staticmethod
    def register_s3(workspace, datastore_name, bucket, endpoint=None, region=None, access_key_id=None,
                    secret_access_key=None, overwrite=False):
        """An S3-compatible bucket; ``endpoint`` for servers other than AWS."""
        return Datastore._register(workspace, {
            "name": datastore_name, "datastore_type": "S3", "bucket": bucket, "endpoint": endpoint,
            "region": region, "access_key_id": access_key_id, "secret_access_key": secret_access_key,
            "overwrite": overwrite})

    @staticmethod
    def register_azure_blob_container(workspace, datastore_name, container_name, account_name,
                                      sas_token=None, account_key=None, protocol=None, endpoint=None,
                                      overwrite=False, create_if_not_exists=False, **kwargs):
        """An Azure Blob container, opened with an account key or a SAS token."""
        return Datastore._register(workspace, {
            "name": datastore_name, "datastore_type": "AzureBlob", "container_name": container_name,
            "account_name": account_name, "sas_token": sas_token, "account_key": account_key,
            "endpoint": endpoint, "overwrite": overwrite})

    # files ------------------------------------------------------------------------------------

    def _file_url(self, path):
        return "%s/%s/files/%s" % (_V1, urllib.parse.quote(self.name, safe=""), _quote_path(path))

    def _shared_folder(self, method):
        """The datastore's folder when the server keeps its files on a disk this machine sees
        too (same device and inode): files are then copied directly instead of crossing HTTP.
        ``POST`` asks in order to write, ``GET`` to read."""
        doc = self.workspace._session.call(
            method, "%s/%s/local-folder" % (_V1, urllib.parse.quote(self.name, safe="")))
        folder = doc.get("local_folder")
        if not folder:
            return None
        try:
            st = os.stat(folder["path"])
        except OSError:
            return None
        if (st.st_dev, st.st_ino) != (folder["device"], folder["inode"]):
            return None
        # The server may run as another user: where this one may not write (or read), the bytes
        # go through the server instead.
        return folder["path"] if os.access(folder["path"], os.W_OK if method == "POST" else os.R_OK) else None

    def _put(self, local_path, target, overwrite, folder=None):
        if folder is not None:
            return _copy_into(local_path, folder, target, overwrite)
        size = os.path.getsize(local_path)
        with open(local_path, "rb") as f:
            resp = self.workspace._session.raw(
                "PUT", self._file_url(target), query={"overwrite": "true" if overwrite else "false"},
                body=f, headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})
            return not decode(resp.status, resp.read()).get("skipped")

    def upload_files(self, files, relative_root=None, target_path=None, overwrite=False, show_progress=True):
        """Uploads files; each lands at its path relative to ``relative_root`` (default: the
        files' common folder) below ``target_path``. Existing files are kept unless ``overwrite``."""
        files = [os.path.abspath(f) for f in files]
        for f in files:
            if not os.path.isfile(f):
                raise UserErrorException("%s is not a file" % f)
        if not files:
            return DataPath(self, target_path or "")
        root = os.path.abspath(relative_root) if relative_root else os.path.commonpath(
            [os.path.dirname(f) for f in files])
        prefix = (target_path or "").strip("/")
        if show_progress:
            print("Uploading an estimated of %d files" % len(files))
        folder = self._shared_folder("POST")
        done = skipped = 0
        for f in files:
            rel = os.path.relpath(f, root).replace(os.sep, "/")
            if rel.startswith("../"):
                raise UserErrorException("%s is not below relative_root %s" % (f, root))
            target = prefix + "/" + rel if prefix else rel
            if self._put(f, target, overwrite, folder):
                done += 1
            else:
                skipped += 1
            if show_progress:
                print("Uploaded %s, %d files out of an estimated total of %d" % (rel, done + skipped, len(files)))
        if show_progress:
            print("Uploaded %d files%s" % (done, ", kept %d existing (overwrite=False)" % skipped if skipped else ""))
        return DataPath(self, prefix)

    def upload(self, src_dir, target_path=None, overwrite=False, show_progress=True):
        """Uploads every file below ``src_dir`` to ``target_path``."""
        if not os.path.isdir(src_dir):
            raise UserErrorException("%s is not a directory" % src_dir)
        files = [os.path.join(folder, name) for folder, _, names in os.walk(src_dir) for name in sorted(names)]
        return self.upload_files(files, relative_root=src_dir, target_path=target_path,
                                 overwrite=overwrite, show_progress=show_progress)

    def list(self, prefix=""):
        """``(path, size)`` of every file below ``prefix``."""
        doc = self.workspace._session.call("GET", "%s/%s/list" % (_V1, urllib.parse.quote(self.name, safe="")),
                                           query={"prefix": prefix})
        return [(f["path"], f["size"]) for f in doc["files"]]

    def download(self, target_path, prefix=None, overwrite=False, show_progress=True):
        """Downloads the files below ``prefix`` into ``target_path``; returns how many."""
        files = self.list(prefix or "")
        folder = self._shared_folder("GET")
        count = 0
        for path, _ in files:
            local = os.path.join(target_path, *path.split("/"))
            if os.path.exists(local) and not overwrite:
                continue
            if folder is not None:
                os.makedirs(os.path.dirname(local), exist_ok=True)
                shutil.copyfile(os.path.join(folder, *path.split("/")), local)
            else:
                self.workspace._session.download(self._file_url(path), local)
            count += 1
            if show_progress:
                print("Downloaded %s, %d files out of an estimated total of %d" % (path, count, len(files)))
        return count

    def path(self, path="", data_reference_name=None):
        return DataPath(self, path)

    def __repr__(self):
        return "Datastore(Name: %s, Type: %s, %s)" % (self.name, self.datastore_type, self.settings)


def _copy_into(source, folder, name, overwrite):
    """Copies a file into a datastore's folder as the server would write it: never through a
    symbolic link, and whole or not at all. ``False`` when it exists and is kept."""
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or "\0" in name or any(p in ("", ".", "..") for p in parts):
        raise UserErrorException("Invalid path '%s': expected a relative path inside the datastore, "
                                 "with '/' separators and no '..'" % name)
    current = folder
    for part in parts:
        current = os.path.join(current, part)
        if os.path.islink(current):
            raise UserErrorException("%s: the path passes through a symbolic link in the datastore" % name)
    target = os.path.join(folder, *name.split("/"))
    if not overwrite and os.path.exists(target):
        return False
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, staged = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".upload-")
    os.close(fd)
    try:
        shutil.copy(source, staged)
        if overwrite:
            os.replace(staged, target)
            return True
        try:
            os.link(staged, target)
        except FileExistsError:
            return False
        return True
    finally:
        if os.path.exists(staged):
            os.unlink(staged)

"""Datasets: named, versioned references to files in datastores.

Each registered version records the fingerprint of the files it matched (paths, sizes, ETags). Reading
a version whose files changed since warns (``on_change="warn"``, the default) or raises
(``on_change="fail"``) instead of silently returning other data."""

import copy
import os
import tempfile
import urllib.parse
import warnings

from ._errors import UserErrorException
from .datastore import DataPath, Datastore

_V1 = "/api/kittiwake/v1/datasets"


class DatasetChangedWarning(UserWarning):
    """The files under a dataset version are not the ones it was registered with."""


class DatasetChangedError(UserErrorException):
    """Raised instead of the warning when a dataset was fetched with ``on_change="fail"``."""


def _path_specs(path):
    items = path if isinstance(path, list) else [path]
    specs = []
    for item in items:
        if isinstance(item, DataPath):
            specs.append({"datastore": item.datastore.name, "path": item.path_on_datastore})
        elif isinstance(item, tuple) and len(item) == 2:
            store, p = item
            specs.append({"datastore": getattr(store, "name", store), "path": p})
        else:
            raise UserErrorException("Dataset paths are (datastore, path) tuples or DataPath objects, got %r"
                                     % (item,))
    return specs


class _Dataset:
    def __init__(self, workspace, definition, _doc=None, on_change="warn"):
        self._workspace = workspace
        self._definition = definition
        self._doc = _doc
        self._on_change = on_change
        self._skip = 0
        self._take = None

    # identity ---------------------------------------------------------------------------------

    @property
    def name(self):
        return self._doc["name"] if self._doc else None

    @property
    def version(self):
        return self._doc["version"] if self._doc else None

    @property
    def description(self):
        return self._doc["description"] if self._doc else None

    @property
    def tags(self):
        return dict(self._doc["tags"]) if self._doc else {}

    @property
    def id(self):
        return "%s:%s" % (self.name, self.version) if self._doc else None

    def __repr__(self):
        return "%s(Name: %s, Version: %s, Paths: %s)" % (
            type(self).__name__, self.name, self.version,
            ", ".join("%s:/%s" % (p["datastore"], p["path"]) for p in self._definition["paths"]))

    # registry ---------------------------------------------------------------------------------

    def register(self, workspace, name, description=None, tags=None, create_new_version=False):
        """Registers this definition as a version of ``name``; returns the registered dataset."""
        doc = workspace._session.call("POST", _V1, {
            "name": name, "definition": self._definition, "description": description or "",
            "tags": {str(k): str(v) for k, v in (tags or {}).items()},
            "create_new_version": bool(create_new_version)})
        return _from_doc(workspace, doc, self._on_change)

    # files ------------------------------------------------------------------------------------

    def _files(self):
        """The files to read: a registered version's recorded ones (after checking them), or what
        the definition matches now."""
        session = self._workspace._session
        if self._doc is None:
            files = session.call("POST", _V1 + "/resolve", {"definition": self._definition})["files"]
        else:
            changes = session.call("GET", "%s/%s/versions/%s/changes" % (
                _V1, urllib.parse.quote(self.name, safe=""), self.version))["changes"]
            if changes:
                message = "Dataset %s version %s changed since it was registered: %s" % (
                    self.name, self.version, "; ".join(changes[:10]))
                if self._on_change == "fail":
                    raise DatasetChangedError(message)
                warnings.warn(message, DatasetChangedWarning, stacklevel=3)
            files = self._doc["files"]
        end = None if self._take is None else self._skip + self._take
        return files if isinstance(self, TabularDataset) else files[self._skip:end]

    @staticmethod
    def _common_root(files):
        folders = [f["path"].rsplit("/", 1)[0] if "/" in f["path"] else "" for f in files]
        return os.path.commonpath(folders) if folders and all(folders) else ""

    def to_path(self):
        """The dataset's file paths, relative to their common folder (each starting with '/')."""
        files = self._files()
        root = self._common_root(files)
        return ["/" + f["path"][len(root):].lstrip("/") for f in files]

    def download(self, target_path=None, overwrite=False):
        """Downloads the dataset's files below ``target_path``; returns the local paths."""
        files = self._files()
        target_path = target_path or tempfile.mkdtemp(prefix="dataset-")
        root = self._common_root(files)
        out = []
        for f in files:
            local = os.path.join(target_path, *f["path"][len(root):].lstrip("/").split("/"))
            if os.path.exists(local) and not overwrite:
                raise UserErrorException("%s exists; pass overwrite=True to replace it" % local)
            store = Datastore(self._workspace, f["datastore"])
            self._workspace._session.download(store._file_url(f["path"]), local)
            out.append(local)
        return out

    def mount(self, mount_point=None):
        """Kittiwake has no FUSE mounts: this downloads into ``mount_point`` (default: a temporary
        folder) and returns that folder; the files are read-only copies."""
        folder = mount_point or tempfile.mkdtemp(prefix="dataset-mount-")
        for path in self.download(folder, overwrite=True):
            os.chmod(path, 0o444)
        return folder

    def _copy(self):
        return copy.copy(self)

    def take(self, count):
        """The first ``count`` files (File) or rows (Tabular)."""
        ds = self._copy()
        ds._take = count if ds._take is None else min(count, ds._take)
        return ds

    def skip(self, count):
        """Everything after the first ``count`` files (File) or rows (Tabular)."""
        ds = self._copy()
        ds._skip += count
        if ds._take is not None:
            ds._take = max(0, ds._take - count)
        return ds

    def as_named_input(self, name):
        """This dataset as input ``name`` of a run (see ``DatasetConsumptionConfig``)."""
        return DatasetConsumptionConfig(name, self)

    def runs(self):
        """The runs that read or wrote this version: ``[{"run_id", "direction", "name"}]``."""
        if self._doc is None:
            raise UserErrorException("Only a registered dataset has lineage; register it first")
        doc = self._workspace._session.call("GET", "%s/%s/versions/%s/runs" % (
            _V1, urllib.parse.quote(self.name, safe=""), self.version))
        return [{"run_id": r["run_id"], "direction": r["direction"], "name": r["name"]} for r in doc["runs"]]


class FileDataset(_Dataset):
    """Files in datastores, read as files."""


class TabularDataset(_Dataset):
    """Delimited, Parquet or JSON-lines files read as one table."""

    def _read_frames(self):
        import pandas as pd
        fmt = self._definition["format"]
        frames = []
        for f in self._files():
            store = Datastore(self._workspace, f["datastore"])
            with tempfile.NamedTemporaryFile() as tmp:
                self._workspace._session.download(store._file_url(f["path"]), tmp.name)
                if fmt["kind"] == "delimited":
                    frames.append(pd.read_csv(tmp.name, sep=fmt.get("separator", ","),
                                              header=0 if fmt.get("header", True) else None,
                                              encoding=fmt.get("encoding", "utf-8")))
                elif fmt["kind"] == "parquet":
                    frames.append(pd.read_parquet(tmp.name))
                else:
                    frames.append(pd.read_json(tmp.name, lines=True))
        return frames

    def profile(self):
        """The server's profile of the table: row count, and per column its type, nulls, min,
        max, mean and a distinct-count estimate, with a preview of the first rows. A ragged row
        or a file in another encoding is an error naming the file and line."""
        session = self._workspace._session
        if self._doc is None:
            return session.call("POST", _V1 + "/profile", {"definition": self._definition})
        return session.call("GET", "%s/%s/versions/%s/profile" % (
            _V1, urllib.parse.quote(self.name, safe=""), self.version))

    def to_pandas_dataframe(self):
        """The table as a pandas DataFrame (needs pandas; nothing else in the SDK does)."""
        import pandas as pd
        frames = self._read_frames()
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        end = None if self._take is None else self._skip + self._take
        return df.iloc[self._skip:end].reset_index(drop=True)


class DatasetConsumptionConfig:
    """How a run receives a dataset: ``as_download()`` (the default) or ``as_mount()`` — both give
    the run a local, read-only folder of the files."""

    def __init__(self, name, dataset, mode="download", path_on_compute=None):
        self.name = name
        self.dataset = dataset
        self.mode = mode
        self.path_on_compute = path_on_compute

    def as_download(self, path_on_compute=None):
        return DatasetConsumptionConfig(self.name, self.dataset, "download", path_on_compute)

    def as_mount(self, path_on_compute=None):
        return DatasetConsumptionConfig(self.name, self.dataset, "mount", path_on_compute)

    def _spec(self):
        spec = {"name": self.name, "mode": self.mode, "path_on_compute": self.path_on_compute,
                "fail_on_change": self.dataset._on_change == "fail"}
        if self.dataset._doc is not None:
            spec["dataset"] = {"name": self.dataset.name, "version": self.dataset.version}
        else:
            spec["definition"] = self.dataset._definition
        return spec

    def _placeholder(self):
        return "DatasetConsumptionConfig:" + self.name

    def __repr__(self):
        return "DatasetConsumptionConfig(%s, %r, mode=%s)" % (self.name, self.dataset, self.mode)


class OutputFileDatasetConfig:
    """A folder a run writes, uploaded when the run ends to ``destination`` — a ``(datastore,
    path)`` tuple, by default ``(workspaceblobstore, "dataset/{run-id}/{output-name}")`` — and, with
    ``register_on_complete``, registered as a new version of a dataset.

    Example::

        prepared = OutputFileDatasetConfig("prepared").register_on_complete("prepared-data")
        config = ScriptRunConfig(source_directory=".", script="prep.py", arguments=["--out", prepared])
    """

    def __init__(self, name=None, destination=None, source=None, partition_format=None):
        import uuid
        self.name = name or "output_" + uuid.uuid4().hex[:8]
        self.destination = destination
        self.register_as = None

    def register_on_complete(self, name, description=None, tags=None):
        out = copy.copy(self)
        out.register_as = name
        return out

    def as_upload(self, overwrite=False, source_globs=None):
        return self

    def as_mount(self):
        return self

    def _spec(self):
        store, path = self.destination or ("workspaceblobstore", "dataset/{run-id}/{output-name}")
        return {"name": self.name, "datastore": getattr(store, "name", store), "destination": path,
                "register_as": self.register_as}

    def _placeholder(self):
        return "DatasetOutputConfig:" + self.name

    def __repr__(self):
        return "OutputFileDatasetConfig(%s)" % self.name


def _from_doc(workspace, doc, on_change="warn"):
    cls = TabularDataset if doc["dataset_type"] == "Tabular" else FileDataset
    return cls(workspace, doc["definition"], _doc=doc, on_change=on_change)


def _workspace_of(specs_source):
    for item in specs_source if isinstance(specs_source, list) else [specs_source]:
        store = item.datastore if isinstance(item, DataPath) else item[0] if isinstance(item, tuple) else None
        if isinstance(store, Datastore):
            return store.workspace
    raise UserErrorException("Give paths as (Datastore, path) tuples so the dataset knows its workspace")


class _FileFactory:
    @staticmethod
    def from_files(path, validate=True, partition_format=None, is_file=False):
        """A file dataset of ``path``: (datastore, path-or-glob) tuples, e.g.
        ``[(ds, 'folder/**/*.csv')]``. With ``validate``, a path matching nothing fails now."""
        ws = _workspace_of(path)
        ds = FileDataset(ws, {"dataset_type": "File", "paths": _path_specs(path), "format": None})
        if validate:
            ds._files()
        return ds


class _TabularFactory:
    @staticmethod
    def _make(path, fmt, validate):
        ws = _workspace_of(path)
        ds = TabularDataset(ws, {"dataset_type": "Tabular", "paths": _path_specs(path), "format": fmt})
        if validate:
            ds._files()
        return ds

    @staticmethod
    def from_delimited_files(path, validate=True, include_path=False, infer_column_types=True,
                             set_column_types=None, separator=",", header=True, partition_format=None,
                             support_multi_line=False, empty_as_string=False, encoding="utf8"):
        return _TabularFactory._make(path, {"kind": "delimited", "separator": separator,
                                            "header": bool(header), "encoding": encoding}, validate)

    @staticmethod
    def from_parquet_files(path, validate=True, include_path=False, set_column_types=None,
                           partition_format=None):
        return _TabularFactory._make(path, {"kind": "parquet"}, validate)

    @staticmethod
    def from_json_lines_files(path, validate=True, include_path=False, set_column_types=None,
                              partition_format=None, invalid_lines="error", encoding="utf8"):
        return _TabularFactory._make(path, {"kind": "json_lines", "encoding": encoding}, validate)


class Dataset:
    """The way in to datasets.

    Example::

        ds = ws.get_default_datastore()
        files = Dataset.File.from_files(path=[(ds, "images/**/*.png")])
        files = files.register(ws, "images", create_new_version=True)
        table = Dataset.Tabular.from_delimited_files(path=[(ds, "train/*.csv")])
        df = Dataset.get_by_name(ws, "images", version="latest")
    """

    File = _FileFactory
    Tabular = _TabularFactory

    @staticmethod
    def get_by_name(workspace, name, version="latest", on_change="warn"):
        """A registered dataset; ``on_change="fail"`` makes reading it raise if its files changed."""
        if on_change not in ("warn", "fail"):
            raise UserErrorException("on_change must be 'warn' or 'fail', got %r" % (on_change,))
        query = {"version": str(version)} if version not in (None, "latest") else None
        doc = workspace._session.call("GET", _V1 + "/" + urllib.parse.quote(name, safe=""), query=query)
        return _from_doc(workspace, doc, on_change)

    @staticmethod
    def get_all(workspace):
        """The latest version of every registered dataset, by name."""
        docs = workspace._session.call("GET", _V1)["datasets"]
        return {d["name"]: _from_doc(workspace, d) for d in docs}


__all__ = ["Dataset", "DatasetChangedError", "DatasetChangedWarning", "DatasetConsumptionConfig",
           "FileDataset", "OutputFileDatasetConfig", "TabularDataset"]

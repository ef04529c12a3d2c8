"""Runs: one execution of training code, with its metrics, files, tags and properties."""

import io
import json
import mimetypes
import os
import sys
import time
import urllib.parse
import uuid

from ._batcher import Batcher
from ._errors import ActivityFailedException, KittiwakeError, UserErrorException
from ._http import decode

_MLFLOW = "/api/2.0/mlflow"
_ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
_PARENT_TAG = "mlflow.parentRunId"
_STATUS = {"RUNNING": "Running", "SCHEDULED": "Queued", "FINISHED": "Completed",
           "FAILED": "Failed", "KILLED": "Canceled"}
_V1 = "/api/kittiwake/v1"
_TERMINAL = ("Completed", "Failed", "Canceled")


def _now_ms():
    return int(time.time() * 1000)


def _utc(ms):
    if ms is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + ".%03dZ" % (ms % 1000)


def _check_scalar(name, value):
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    raise TypeError("run.log(%r, ...) takes a number, got %s; use log_list for sequences "
                    "or tag() for text" % (name, type(value).__name__))


class Run:
    """A run in a workspace.

    Example::

        with exp.start_logging() as run:
            run.log("loss", 0.3)
            run.upload_file("outputs/model.pkl", "model.pkl")
    """

    def __init__(self, experiment, run_id, _info=None, **kwargs):
        self.experiment = experiment
        self.id = run_id
        self._session = experiment.workspace._session
        self._info = _info
        self._batcher = None
        self._steps = {}
        self._job = None
        if self._info is None:
            self._refresh()

    # construction -------------------------------------------------------------------------

    @classmethod
    def _create(cls, experiment, display_name=None, parent=None):
        tags = [{"key": "mlflow.source.type", "value": "LOCAL"},
                {"key": "mlflow.user", "value": os.environ.get("USER", "unknown")}]
        if parent is not None:
            tags.append({"key": _PARENT_TAG, "value": parent.id})
        body = {"experiment_id": experiment.id, "start_time": _now_ms(), "tags": tags,
                "user_id": os.environ.get("USER", "unknown")}
        if display_name:
            body["run_name"] = display_name
        doc = experiment.workspace._session.call("POST", _MLFLOW + "/runs/create", body)["run"]
        return cls(experiment, doc["info"]["run_id"], _info=doc)

    @classmethod
    def _fetch(cls, workspace, run_id):
        from .experiment import Experiment
        doc = workspace._session.call("GET", _MLFLOW + "/runs/get", query={"run_id": run_id})["run"]
        exp_doc = workspace._session.call("GET", _MLFLOW + "/experiments/get",
                                          query={"experiment_id": doc["info"]["experiment_id"]})["experiment"]
        return cls(Experiment(workspace, exp_doc["name"], _id=exp_doc["experiment_id"]), run_id, _info=doc)

    @classmethod
    def _search(cls, workspace, experiment_ids, filter_string="", properties=None):
        from .experiment import Experiment
        experiments = {}
        token = None
        while True:
            body = {"experiment_ids": experiment_ids, "filter": filter_string, "max_results": 1000}
            if token:
                body["page_token"] = token
            page = workspace._session.call("POST", _MLFLOW + "/runs/search", body)
            for doc in page.get("runs", []):
                exp_id = doc["info"]["experiment_id"]
                if exp_id not in experiments:
                    e = workspace._session.call("GET", _MLFLOW + "/experiments/get",
                                                query={"experiment_id": exp_id})["experiment"]
                    experiments[exp_id] = Experiment(workspace, e["name"], _id=exp_id)
                run = cls(experiments[exp_id], doc["info"]["run_id"], _info=doc)
                if properties and any(run.get_properties().get(k) != v for k, v in properties.items()):
                    continue
                yield run
            token = page.get("next_page_token")
            if not token:
                return

    @staticmethod
    def get_context(allow_offline=True, used_for_context_manager=False, **kwargs):
        """The run this code executes in: the submitted job's run when launched by Kittiwake,
        otherwise (with ``allow_offline``) an offline run that prints what it would log."""
        run_id = os.environ.get("AZUREML_RUN_ID")
        url = os.environ.get("AZUREML_SERVICE_ENDPOINT") or os.environ.get("KITTIWAKE_URL")
        token = os.environ.get("AZUREML_RUN_TOKEN") or os.environ.get("KITTIWAKE_TOKEN")
        if run_id and url and token:
            from .workspace import Workspace
            ws = Workspace(os.environ.get("AZUREML_ARM_SUBSCRIPTION", "local"),
                           os.environ.get("AZUREML_ARM_RESOURCEGROUP", "kittiwake"),
                           os.environ.get("AZUREML_ARM_WORKSPACE_NAME"), url=url, token=token)
            return Run._fetch(ws, run_id)
        if not allow_offline:
            raise UserErrorException("Run.get_context() found no run: AZUREML_RUN_ID, "
                                     "AZUREML_SERVICE_ENDPOINT and AZUREML_RUN_TOKEN are not set")
        return _OfflineRun()

    @staticmethod
    def get(workspace, run_id):
        return Run._fetch(workspace, run_id)

    # state --------------------------------------------------------------------------------

    def _refresh(self):
        self._info = self._session.call("GET", _MLFLOW + "/runs/get", query={"run_id": self.id})["run"]
        self._job = None

    def _is_job(self):
        return self._tag_dict().get("mlflow.source.type") == "JOB"

    def _job_doc(self):
        """The job behind a submitted run (None for an interactive run)."""
        if not self._is_job():
            return None
        self._job = self._session.call("GET", _V1 + "/jobs/" + self.id)
        return self._job

    @property
    def name(self):
        return self._info["info"].get("run_name")

    @property
    def display_name(self):
        return self._info["info"].get("run_name")

    @display_name.setter
    def display_name(self, value):
        doc = self._session.call("POST", _MLFLOW + "/runs/update", {"run_id": self.id, "run_name": value})
        self._info["info"] = doc["run_info"]

    @property
    def status(self):
        if self._job is not None:
            return self._job["status"]
        return _STATUS.get(self._info["info"]["status"], self._info["info"]["status"])

    @property
    def parent(self):
        parent_id = self.get_tags().get(_PARENT_TAG)
        return Run._fetch(self.experiment.workspace, parent_id) if parent_id else None

    @property
    def tags(self):
        return self.get_tags()

    @property
    def properties(self):
        return self.get_properties()

    def get_status(self):
        """AzureML's status: Queued, Preparing, Starting, Running, Finalizing, Completed, Failed
        or Canceled."""
        self._refresh()
        self._job_doc()
        return self.status

    def get_details(self):
        """AzureML's run details: id, status, times, tags, properties."""
        doc = self._session.call("GET", "/api/kittiwake/v1/runs/" + self.id)
        self._info = doc["run"]
        info = self._info["info"]
        details = {
            "runId": self.id,
            "displayName": info.get("run_name"),
            "experimentName": self.experiment.name,
            "target": "local",
            "status": _STATUS.get(info["status"], info["status"]),
            "startTimeUtc": _utc(info.get("start_time")),
            "endTimeUtc": _utc(info.get("end_time")),
            "properties": doc.get("properties", {}),
            "tags": self._tag_dict(),
            "submittedBy": info.get("user_id"),
            "inputDatasets": [],
            "outputDatasets": [],
            "logFiles": {},
        }
        for edge in self._lineage():
            entry = {"dataset": {"name": edge["dataset_name"], "version": edge["dataset_version"]},
                     "name": edge["name"]}
            details["inputDatasets" if edge["direction"] == "input" else "outputDatasets"].append(entry)
        job = self._job_doc()
        if job is not None:
            details.update({
                "target": job["compute_target"],
                "status": job["status"],
                "startTimeUtc": _utc(job.get("started_at")),
                "endTimeUtc": _utc(job.get("ended_at")),
                "runDefinition": {
                    "script": job["script"],
                    "arguments": job["arguments"],
                    "target": job["compute_target"],
                    "environment": job["environment"],
                    "environmentVariables": job["environment_variables"],
                    "maxRunDurationSeconds": job["max_run_duration_seconds"],
                    "gpuCount": job["gpu_count"],
                    "snapshotId": job["snapshot_id"],
                },
                "statusHistory": [{"status": h["status"], "timeUtc": _utc(h["time"])}
                                  for h in job["status_history"]],
                "exitCode": job.get("exit_code"),
                "logFiles": {"user_logs/std_log.txt": _V1 + "/jobs/%s/logs" % self.id},
            })
            if job.get("failure_reason") and job["status"] != "Completed":
                details["error"] = {"error": {"message": job["failure_reason"]}}
        return details

    # datasets ------------------------------------------------------------------------------

    def _own_variable(self, name):
        # Only the run a script was started for has its inputs on this machine.
        if os.environ.get("AZUREML_RUN_ID") != self.id:
            return {}
        return json.loads(os.environ.get(name) or "{}")

    @property
    def input_datasets(self):
        """Inside a submitted script: each input's name and the local folder holding its files."""
        return self._own_variable("KITTIWAKE_INPUT_DATASETS")

    @property
    def output_datasets(self):
        """Inside a submitted script: each output's name and the folder to write it into."""
        return self._own_variable("KITTIWAKE_OUTPUT_DATASETS")

    def _lineage(self):
        doc = self._session.call("GET", "/api/kittiwake/v1/runs/%s/datasets" % self.id)
        return doc["datasets"]

    # submitted runs -----------------------------------------------------------------------

    def _read_log(self, offset, wait_ms):
        resp = self._session.raw("GET", _V1 + "/jobs/%s/logs" % self.id,
                                 query={"offset": offset, "wait_ms": wait_ms})
        data = resp.read()
        if resp.status != 200:
            decode(resp.status, data)
        return data, int(resp.getheader("x-kittiwake-next-offset")), resp.getheader("x-kittiwake-job-status")

    def get_all_logs(self, destination=None):
        """Writes the run's log to ``destination`` (default ``user_logs``); returns the file paths."""
        destination = destination or "user_logs"
        os.makedirs(destination, exist_ok=True)
        path = os.path.join(destination, "std_log.txt")
        offset = 0
        with open(path, "wb") as f:
            while True:
                data, offset, _ = self._read_log(offset, 0)
                if not data:
                    break
                f.write(data)
        return [path]

    def wait_for_completion(self, show_output=False, wait_post_processing=False, raise_on_error=True):
        """Waits until a submitted run ends; with ``show_output``, prints its log as it comes.
        Raises ``ActivityFailedException`` for a failed run unless ``raise_on_error`` is False."""
        if not self._is_job():
            raise UserErrorException("wait_for_completion is for submitted runs; run %s was started "
                                     "interactively" % self.id)
        out = sys.stdout
        if show_output:
            out.write("RunId: %s\n\nStreaming user_logs/std_log.txt\n%s\n\n" % (self.id, "=" * 30))
            out.flush()
        offset = 0
        while True:
            try:
                data, offset, status = self._read_log(offset, 10000)
            except KittiwakeError as e:
                if e.status is not None:
                    raise
                time.sleep(1)  # The server is restarting; the run goes on.
                continue
            if data and show_output:
                out.write(data.decode("utf-8", errors="replace"))
                out.flush()
            if not data and status in _TERMINAL:
                break
        details = self.get_details()
        if show_output:
            out.write("\nExecution Summary\n=================\nRunId: %s\nStatus: %s\n" % (self.id, details["status"]))
            if "error" in details:
                out.write("Error: %s\n" % details["error"]["error"]["message"])
            out.flush()
        if details["status"] == "Failed" and raise_on_error:
            raise ActivityFailedException("Run %s failed: %s" % (
                self.id, details.get("error", {}).get("error", {}).get("message", "no reason given")), details)
        return details

    def get_snapshot_id(self):
        job = self._job_doc()
        return job["snapshot_id"] if job else None

    def restore_snapshot(self, snapshot_id=None, path=None):
        """Writes the run's source snapshot into ``path`` (default ``./snapshot_<run id>``)."""
        from . import _snapshot
        snapshot_id = snapshot_id or self.get_snapshot_id()
        if not snapshot_id:
            raise UserErrorException("Run %s has no snapshot: it was not submitted" % self.id)
        return _snapshot.restore(self._session, snapshot_id, path or "snapshot_" + self.id)

    def _tag_dict(self):
        return {t["key"]: t["value"] for t in self._info.get("data", {}).get("tags", [])}

    # metrics ------------------------------------------------------------------------------

    def _metrics(self):
        if self._batcher is None:
            self._batcher = Batcher(self._session, self.id)
        return self._batcher

    def log(self, name, value, description="", step=None):
        """Logs a number; repeated calls build a series (also an MLflow metric)."""
        value = _check_scalar(name, value)
        if step is None:
            step = self._steps.get(name, 0)
        self._steps[name] = step + 1
        self._metrics().scalar(name, value, step, _now_ms())

    def log_list(self, name, value, description=""):
        """Logs a list of numbers as one metric."""
        self._metrics().rich(name, "list", list(value), description, _now_ms())

    def log_row(self, name, description=None, **kwargs):
        """Appends one row (columns as keyword arguments) to a table metric."""
        self._metrics().rich(name, "row", dict(kwargs), description, _now_ms())

    def log_table(self, name, value, description=""):
        """Logs a table given as ``{column: [cells]}``."""
        if not isinstance(value, dict):
            raise TypeError("log_table(%r, ...) takes a dict of column name to list of values" % name)
        self._metrics().rich(name, "table", {k: list(v) for k, v in value.items()}, description, _now_ms())

    def log_image(self, name, path=None, plot=None, description=""):
        """Logs an image from a file or a matplotlib figure; the image becomes an artifact."""
        if (path is None) == (plot is None):
            raise UserErrorException("log_image needs exactly one of path= or plot=")
        artifact = "images/%s.png" % name
        if plot is not None:
            buffer = io.BytesIO()
            plot.savefig(buffer, format="png")
            self.upload_file(artifact, io.BytesIO(buffer.getvalue()))
        else:
            artifact = "images/%s%s" % (name, os.path.splitext(path)[1] or ".png")
            self.upload_file(artifact, path)
        self._metrics().rich(name, "image", {"path": artifact}, description, _now_ms())

    def flush(self, timeout_seconds=300):
        """Sends everything logged so far; raises if it cannot be delivered."""
        if self._batcher is not None:
            self._batcher.flush()

    def get_metrics(self, name=None, recursive=False, run_type=None, populate=False):
        """Logged metrics by name: a number for a single value, a list for a series, a dict of
        columns for a table. With ``recursive``, ``{run_id: metrics}`` for this run and its children."""
        self.flush()
        if recursive:
            out = {self.id: self.get_metrics(name)}
            for child in self.get_children(recursive=True):
                out[child.id] = child.get_metrics(name)
            return out
        doc = self._session.call("GET", "/api/kittiwake/v1/runs/%s/metrics" % self.id,
                                 query={"name": name} if name is not None else None)
        out = {}
        for series in doc["scalars"]:
            values = [float(v) for v in series["values"]]
            out[series["name"]] = values[0] if len(values) == 1 else values
        for m in doc["rich"]:
            kind, value = m["kind"], m["value"]
            if kind == "row":
                table = out.setdefault(m["name"], {})
                for col, cell in value.items():
                    table.setdefault(col, []).append(cell)
            elif kind == "image":
                out[m["name"]] = value.get("path")
            else:
                out[m["name"]] = value
        return out

    # tags and properties ------------------------------------------------------------------

    def tag(self, key, value=None):
        self.set_tags({key: value})

    def set_tags(self, tags):
        items = [{"key": k, "value": "" if v is None else str(v)} for k, v in tags.items()]
        for start in range(0, len(items), 100):
            self._session.call("POST", _MLFLOW + "/runs/log-batch", {"run_id": self.id, "tags": items[start:start + 100]})
        self._refresh()

    def remove_tags(self, tags):
        for key in tags:
            self._session.call("POST", _MLFLOW + "/runs/delete-tag", {"run_id": self.id, "key": key})
        self._refresh()

    def get_tags(self):
        self._refresh()
        return self._tag_dict()

    def add_properties(self, properties):
        """Adds properties; unlike tags, a property can never change once set."""
        self._session.call("POST", "/api/kittiwake/v1/runs/%s/properties" % self.id,
                           {"properties": {k: str(v) for k, v in properties.items()}})

    def get_properties(self):
        return self._session.call("GET", "/api/kittiwake/v1/runs/" + self.id).get("properties", {})

    # files --------------------------------------------------------------------------------

    def _artifact_root(self):
        uri = self._info["info"]["artifact_uri"]
        if not uri.startswith("mlflow-artifacts:/"):
            raise UserErrorException("This run's artifacts live at %s, outside the workspace server" % uri)
        return uri[len("mlflow-artifacts:/"):].strip("/")

    def _artifact_url(self, name):
        name = name.replace(os.sep, "/").lstrip("/")
        return "%s/%s/%s" % (_ARTIFACTS, self._artifact_root(), urllib.parse.quote(name))

    def upload_file(self, name, path_or_stream, datastore_name=None):
        """Uploads a file (a path or a binary stream) as artifact ``name``, e.g. 'outputs/model.pkl'."""
        if hasattr(path_or_stream, "read"):
            data = path_or_stream.read()
            if isinstance(data, str):
                data = data.encode()
            body, size, f = data, len(data), None
        else:
            size = os.path.getsize(path_or_stream)
            f = open(path_or_stream, "rb")
            body = f
        try:
            mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
            resp = self._session.raw("PUT", self._artifact_url(name), body=body,
                                     headers={"Content-Type": mime, "Content-Length": str(size)})
            decode(resp.status, resp.read())
        finally:
            if f is not None:
                f.close()

    def upload_files(self, names, paths, return_artifacts=False, timeout_seconds=None, datastore_name=None):
        for name, path in zip(names, paths):
            self.upload_file(name, path)

    def upload_folder(self, name, path, datastore_name=None):
        """Uploads every file below folder ``path`` under artifact prefix ``name``."""
        for root, _dirs, files in os.walk(path):
            for file_name in files:
                full = os.path.join(root, file_name)
                relative = os.path.relpath(full, path).replace(os.sep, "/")
                self.upload_file("%s/%s" % (name.rstrip("/"), relative), full)

    def get_file_names(self):
        """Every artifact path of the run."""
        root = self._artifact_root()
        out, pending = [], [""]
        while pending:
            folder = pending.pop()
            listing = self._session.call("GET", _ARTIFACTS, query={"path": root + ("/" + folder if folder else "")})
            for entry in listing.get("files", []):
                rel = folder + "/" + entry["path"] if folder else entry["path"]
                (pending if entry.get("is_dir") else out).append(rel)
        return sorted(out)

    def download_file(self, name, output_file_path=None, _validate_checksum=False):
        """Downloads artifact ``name`` to ``output_file_path`` (a file or a folder; default: here)."""
        target = output_file_path or os.path.basename(name)
        if os.path.isdir(target):
            target = os.path.join(target, os.path.basename(name))
        return self._session.download(self._artifact_url(name), target)

    def download_files(self, prefix=None, output_directory=None, output_paths=None, batch_size=100,
                       append_prefix=True, timeout_seconds=None):
        """Downloads every artifact under ``prefix`` into ``output_directory`` (default: here)."""
        names = [n for n in self.get_file_names() if not prefix or n.startswith(prefix)]
        out_dir = output_directory or "."
        written = []
        for n in names:
            rel = n if append_prefix or not prefix else n[len(prefix):].lstrip("/")
            written.append(self.download_file(n, os.path.join(out_dir, rel)))
        return written

    # lifecycle ----------------------------------------------------------------------------

    def child_run(self, name=None, run_id=None, outputs=None):
        """Starts a run under this one; use it as a context manager."""
        return Run._create(self.experiment, display_name=name, parent=self)

    def get_children(self, recursive=False, tags=None, properties=None, type=None, status=None):
        children = list(Run._search(self.experiment.workspace, [self.experiment.id],
                                    "tags.`%s` = '%s'" % (_PARENT_TAG, self.id), properties=properties))
        for child in list(children) if recursive else []:
            children.extend(child.get_children(recursive=True))
        return children

    def _finish(self, status):
        self.flush()
        doc = self._session.call("POST", _MLFLOW + "/runs/update",
                                 {"run_id": self.id, "status": status, "end_time": _now_ms()})
        self._info["info"] = doc["run_info"]

    def complete(self, _set_status=True):
        """Sends everything logged and marks the run Completed."""
        self._finish("FINISHED")

    def fail(self, error_details=None, error_code=None, _set_status=True):
        if error_details is not None:
            self.tag("error", str(error_details))
        self._finish("FAILED")

    def cancel(self):
        """Cancels the run; a submitted one's processes are stopped."""
        if self._is_job():
            self._job = self._session.call("POST", _V1 + "/jobs/%s/cancel" % self.id)
            return
        self._finish("KILLED")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.complete()
        else:
            self.fail(error_details=exc)
        return False

    def __repr__(self):
        return "Run(Experiment: %s, Id: %s, Type: None, Status: %s)" % (self.experiment.name, self.id, self.status)


class _OfflineRun:
    """Stands in for a run outside a submitted job: it prints what it would log."""

    def __init__(self):
        self.id = "OfflineRun_%s" % uuid.uuid4()
        self.display_name = self.id
        self.experiment = None
        self.status = "Running"
        self.parent = None

    def _say(self, what, *args):
        print("Attempted to %s %s" % (what, ", ".join(repr(a) for a in args)), file=sys.stdout)

    def log(self, name, value, description="", step=None):
        self._say("log scalar metric", name, value)

    def log_list(self, name, value, description=""):
        self._say("log list metric", name, value)

    def log_row(self, name, description=None, **kwargs):
        self._say("log row metric", name, kwargs)

    def log_table(self, name, value, description=""):
        self._say("log table metric", name, value)

    def log_image(self, name, path=None, plot=None, description=""):
        self._say("log image metric", name, path)

    def tag(self, key, value=None):
        self._say("set tag", key, value)

    def set_tags(self, tags):
        self._say("set tags", tags)

    def add_properties(self, properties):
        self._say("add properties", properties)

    def upload_file(self, name, path_or_stream, datastore_name=None):
        self._say("upload file", name)

    def upload_folder(self, name, path, datastore_name=None):
        self._say("upload folder", name)

    def get_metrics(self, *args, **kwargs):
        return {}

    def flush(self, timeout_seconds=300):
        pass

    def complete(self, _set_status=True):
        self.status = "Completed"

    def fail(self, error_details=None, error_code=None, _set_status=True):
        self.status = "Failed"

    def cancel(self):
        self.status = "Canceled"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.complete()
        return False

    def __repr__(self):
        return "Run(Id: %s, Status: %s, offline)" % (self.id, self.status)

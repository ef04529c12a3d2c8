"""Experiments: named groups of runs."""

from .run import Run

_MLFLOW = "/api/2.0/mlflow"


class Experiment:
    """An experiment, created on first use.

    Example::

        exp = Experiment(ws, "test_experiment")
        with exp.start_logging() as run:
            run.log("accuracy", 0.9)
    """

    def __init__(self, workspace, name, _id=None, **kwargs):
        self.workspace = workspace
        self.name = name
        if _id is None:
            doc = workspace._session.call(
                "POST", "/api/kittiwake/v1/experiments/get-or-create", {"name": name})["experiment"]
            _id = doc["experiment_id"]
            self.tags = {t["key"]: t["value"] for t in doc.get("tags", [])}
        else:
            self.tags = kwargs.get("_tags", {})
        self.id = _id

    def start_logging(self, *args, display_name=None, outputs=None, snapshot_directory=None, **kwargs):
        """Starts an interactive run; use it as a context manager to complete it."""
        return Run._create(self, display_name=display_name)

    def submit(self, config, tags=None, **kwargs):
        """Submits a ``ScriptRunConfig``; returns its run, queued to start.

        Example::

            run = exp.submit(ScriptRunConfig(source_directory="scripts", script="train.py"))
            run.wait_for_completion(show_output=True)
        """
        submit = getattr(config, "_submit", None)
        if submit is None:
            raise TypeError("Experiment.submit takes a ScriptRunConfig, got %s" % type(config).__name__)
        return submit(self, tags=tags, display_name=kwargs.get("display_name"))

    def get_runs(self, type=None, tags=None, properties=None, include_children=False):
        """Yields the experiment's runs, newest first (top-level runs unless ``include_children``)."""
        clauses = []
        if not include_children:
            clauses.append("tags.`mlflow.parentRunId` IS NULL")
        for key, value in (tags or {}).items():
            clauses.append("tags.`%s` = '%s'" % (key, str(value).replace("'", "''")))
        yield from Run._search(self.workspace, [self.id], " AND ".join(clauses), properties=properties)

    def tag(self, key, value=None):
        self.set_tags({key: value})

    def set_tags(self, tags):
        for key, value in tags.items():
            self.workspace._session.call("POST", _MLFLOW + "/experiments/set-experiment-tag",
                                         {"experiment_id": self.id, "key": key, "value": "" if value is None else str(value)})
            self.tags[key] = value

    def archive(self):
        self.workspace._session.call("POST", _MLFLOW + "/experiments/delete", {"experiment_id": self.id})

    def reactivate(self, new_name=None):
        session = self.workspace._session
        session.call("POST", _MLFLOW + "/experiments/restore", {"experiment_id": self.id})
        if new_name:
            session.call("POST", _MLFLOW + "/experiments/update", {"experiment_id": self.id, "new_name": new_name})
            self.name = new_name

    @staticmethod
    def list(workspace, experiment_name=None, view_type="ActiveOnly", tags=None):
        """All experiments of a workspace (optionally only the one named ``experiment_name``)."""
        views = {"ActiveOnly": "ACTIVE_ONLY", "ArchivedOnly": "DELETED_ONLY", "All": "ALL"}
        out, token = [], None
        while True:
            body = {"max_results": 1000, "view_type": views.get(view_type, "ACTIVE_ONLY")}
            if experiment_name:
                body["filter"] = "name = '%s'" % experiment_name.replace("'", "''")
            if token:
                body["page_token"] = token
            page = workspace._session.call("POST", _MLFLOW + "/experiments/search", body)
            for doc in page.get("experiments", []):
                e = Experiment(workspace, doc["name"], _id=doc["experiment_id"],
                               _tags={t["key"]: t["value"] for t in doc.get("tags", [])})
                if not tags or all(e.tags.get(k) == v for k, v in tags.items()):
                    out.append(e)
            token = page.get("next_page_token")
            if not token:
                return out

    def __repr__(self):
        return "Experiment(Name: %s, Workspace: %s)" % (self.name, self.workspace.name)

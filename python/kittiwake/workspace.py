"""The workspace: where the server is, who you are, and the way in to experiments and runs."""

import json
import os

from ._errors import UserErrorException
from ._http import Session

_CONFIG_DIRS = (".azureml", "aml_config", "")
_CONFIG_FILES = ("config.json", "project.json")


def _find_config(path=None, file_name=None):
    """AzureML's search: ``path`` if it is a file, else in it and each parent, ``.azureml/``, then
    ``aml_config/``, then the folder itself, for ``config.json`` (or ``file_name``)."""
    start = os.path.abspath(path or os.getcwd())
    if os.path.isfile(start):
        return start
    names = (file_name,) if file_name else _CONFIG_FILES
    folder = start
    while True:
        for sub in _CONFIG_DIRS:
            for name in names:
                candidate = os.path.join(folder, sub, name)
                if os.path.isfile(candidate):
                    return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _read_token(config):
    token = os.environ.get("KITTIWAKE_TOKEN") or config.get("token")
    if token:
        return token.strip()
    token_file = config.get("token_file")
    if token_file:
        try:
            with open(token_file) as f:
                return f.read().strip()
        except OSError as e:
            raise UserErrorException("Cannot read the API token from %s: %s" % (token_file, e)) from e
    raise UserErrorException("No API token: set KITTIWAKE_TOKEN or add token_file to the workspace config")


class Workspace:
    """A Kittiwake workspace.

    Example::

        ws = Workspace.from_config()
        print(ws.experiments)
    """

    def __init__(self, subscription_id="local", resource_group="kittiwake", workspace_name=None,
                 auth=None, url=None, token=None, **_azure_only):
        config = {}
        if url is None:
            url = os.environ.get("KITTIWAKE_URL")
        if url is None or (token is None and not os.environ.get("KITTIWAKE_TOKEN")):
            found = _find_config()
            if found:
                config = _load(found)
                url = url or config.get("kittiwake_url")
        if not url:
            raise UserErrorException(
                "Cannot find the workspace: pass url=, set KITTIWAKE_URL, or run where .azureml/config.json exists")
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self._session = Session(url, token or _read_token(config))
        info = self._session.call("GET", "/api/kittiwake/v1/workspace")
        self.name = info["name"]
        self._workspace_id = info["workspace_id"]
        if workspace_name and workspace_name != self.name:
            raise UserErrorException(
                "The server at %s hosts workspace %r, not %r" % (url, self.name, workspace_name))

    @staticmethod
    def from_config(path=None, auth=None, _logger=None, _file_name=None):
        """Connects to the workspace named in the nearest config file (see AzureML's rules)."""
        found = _find_config(path, _file_name)
        if found is None:
            raise UserErrorException(
                "config.json could not be found in %s or its parent directories; "
                "start `kittiwake server` there or call Workspace.write_config()" % os.path.abspath(path or "."))
        config = _load(found)
        url = os.environ.get("KITTIWAKE_URL") or config.get("kittiwake_url")
        if not url:
            raise UserErrorException("%s names no kittiwake_url; set KITTIWAKE_URL" % found)
        return Workspace(config.get("subscription_id", "local"), config.get("resource_group", "kittiwake"),
                         config.get("workspace_name"), url=url, token=_read_token(config))

    @staticmethod
    def get(name, auth=None, subscription_id=None, resource_group=None, url=None, token=None, **_azure_only):
        """Connects to the workspace called ``name`` at ``url`` (default: KITTIWAKE_URL or the config)."""
        return Workspace(subscription_id or "local", resource_group or "kittiwake", name, url=url, token=token)

    def write_config(self, path=None, file_name=None):
        """Writes ``.azureml/config.json`` under ``path`` (default: the current folder)."""
        folder = os.path.join(os.path.abspath(path or "."), ".azureml")
        os.makedirs(folder, exist_ok=True)
        target = os.path.join(folder, file_name or "config.json")
        config = {
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "workspace_name": self.name,
            "kittiwake_url": self._session.url,
        }
        token_file = os.path.join(folder, "kittiwake.token")
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self._session.token)
        config["token_file"] = token_file
        with open(target, "w") as f:
            json.dump(config, f, indent=2)
        return target

    @property
    def experiments(self):
        """All active experiments, by name."""
        from .experiment import Experiment
        return {e.name: e for e in Experiment.list(self)}

    @property
    def datastores(self):
        """Every datastore of the workspace, by name."""
        from .datastore import Datastore
        return {d.name: d for d in Datastore._all(self)}

    def get_default_datastore(self):
        """``workspaceblobstore``, the datastore inside the workspace's own storage."""
        from .datastore import Datastore
        return Datastore.get_default(self)

    def get_run(self, run_id):
        from .run import Run
        return Run._fetch(self, run_id)

    def get_mlflow_tracking_uri(self, _with_auth=False):
        """The URI to give mlflow (with MLFLOW_TRACKING_TOKEN set to this workspace's token)."""
        return self._session.url

    def get_details(self):
        return {"name": self.name, "id": self._workspace_id, "url": self._session.url,
                "subscriptionId": self.subscription_id, "resourceGroup": self.resource_group}

    def __repr__(self):
        return "Workspace.create(name=%r, subscription_id=%r, resource_group=%r)" % (
            self.name, self.subscription_id, self.resource_group)


def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise UserErrorException("Cannot read workspace config %s: %s" % (path, e)) from e

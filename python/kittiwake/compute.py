"""Compute targets: where submitted runs execute, and how many at a time.

Every workspace has ``local``: the server's own machine, with a slot per core and its GPUs."""

import urllib.parse

from ._errors import KittiwakeError, UserErrorException

_V1 = "/api/kittiwake/v1"


class ComputeTargetException(UserErrorException):
    """A compute target does not exist or cannot be created."""


class ComputeTarget:
    """A compute target of a workspace.

    Example::

        target = ComputeTarget(ws, "local")
        print(target.slots, target.gpus)
        ComputeTarget.create(ws, "two-at-a-time", LocalCompute.provisioning_configuration(slots=2))
    """

    def __init__(self, workspace, name, _doc=None):
        self.workspace = workspace
        if _doc is None:
            try:
                _doc = workspace._session.call("GET", _V1 + "/computes/" + urllib.parse.quote(name, safe=""))
            except KittiwakeError as e:
                if e.status == 404:
                    raise ComputeTargetException(e.message, status=e.status, code=e.code) from e
                raise
        self._doc = _doc
        self.name = _doc["name"]
        self.type = _doc["kind"]
        self.slots = _doc["slots"]
        self.gpus = list(_doc.get("gpus", []))

    @staticmethod
    def list(workspace):
        docs = workspace._session.call("GET", _V1 + "/computes")["computes"]
        return [ComputeTarget(workspace, d["name"], _doc=d) for d in docs]

    @staticmethod
    def create(workspace, name, provisioning_configuration):
        """Creates a target (or resizes the one of that name) from a provisioning configuration."""
        body = dict(provisioning_configuration)
        body["name"] = name
        try:
            doc = workspace._session.call("POST", _V1 + "/computes", body)
        except UserErrorException as e:
            raise ComputeTargetException(e.message, status=e.status, code=e.code) from e
        return ComputeTarget(workspace, name, _doc=doc)

    def wait_for_completion(self, show_output=False, **kwargs):
        """A local target is ready as soon as it is created."""
        if show_output:
            print("Compute target %s is ready (%d slots)" % (self.name, self.slots))

    def get_status(self):
        return "Succeeded"

    def serialize(self):
        return dict(self._doc)

    def __repr__(self):
        return "ComputeTarget(Name: %s, Type: %s, Slots: %d, GPUs: %s)" % (
            self.name, self.type, self.slots, self.gpus)


class LocalCompute:
    """Targets on the server's own machine."""

    @staticmethod
    def provisioning_configuration(slots=1, gpus=None):
        """``slots`` runs at a time, handing out the listed GPU indices one run each."""
        return {"kind": "local", "slots": int(slots), "gpus": list(gpus or [])}

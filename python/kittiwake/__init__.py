"""Kittiwake's Python SDK: the AzureML SDK v1 shape, backed by a Kittiwake workspace server.

Example::

    from kittiwake import Workspace, Experiment

    ws = Workspace.from_config()
    with Experiment(ws, "demo").start_logging() as run:
        run.log("loss", 0.25)
"""

from ._errors import KittiwakeError, LoggingError, UserErrorException
from .experiment import Experiment
from .run import Run
from .workspace import Workspace

__all__ = [
    "Experiment",
    "KittiwakeError",
    "LoggingError",
    "Run",
    "UserErrorException",
    "Workspace",
]
__version__ = "0.1.0"

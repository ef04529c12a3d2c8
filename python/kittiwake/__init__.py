"""Kittiwake's Python SDK: the AzureML SDK v1 shape, backed by a Kittiwake workspace server.

Example::

    from kittiwake import Workspace, Experiment, ScriptRunConfig

    ws = Workspace.from_config()
    with Experiment(ws, "demo").start_logging() as run:
        run.log("loss", 0.25)
    run = Experiment(ws, "demo").submit(ScriptRunConfig(source_directory=".", script="train.py"))
    run.wait_for_completion(show_output=True)
"""

from ._errors import (
    ActivityFailedException,
    KittiwakeError,
    LoggingError,
    UserErrorException,
)
from .compute import ComputeTarget, ComputeTargetException, LocalCompute
from .conda_dependencies import CondaDependencies
from .dataset import Dataset, DatasetChangedError, DatasetChangedWarning, OutputFileDatasetConfig
from .datastore import Datastore
from .environment import Environment
from .experiment import Experiment
from .run import Run
from .script_run_config import RunConfiguration, ScriptRunConfig
from .workspace import Workspace

__all__ = [
    "ActivityFailedException",
    "ComputeTarget",
    "ComputeTargetException",
    "CondaDependencies",
    "Dataset",
    "DatasetChangedError",
    "DatasetChangedWarning",
    "Datastore",
    "Environment",
    "Experiment",
    "KittiwakeError",
    "LocalCompute",
    "LoggingError",
    "OutputFileDatasetConfig",
    "Run",
    "RunConfiguration",
    "ScriptRunConfig",
    "UserErrorException",
    "Workspace",
]
__version__ = "0.1.0"

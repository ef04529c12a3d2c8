"""``azureml.core`` for Kittiwake: the same names, backed by a Kittiwake workspace.

Example::

    from azureml.core import Workspace, Experiment, ScriptRunConfig

    ws = Workspace.from_config()
    run = Experiment(ws, "test_experiment").submit(
        ScriptRunConfig(source_directory="scripts", script="train.py"))
"""

from kittiwake import (
    ComputeTarget,
    Dataset,
    Datastore,
    Environment,
    Experiment,
    Run,
    RunConfiguration,
    ScriptRunConfig,
    Workspace,
)
from kittiwake._errors import UserErrorException

__all__ = [
    "ComputeTarget",
    "Dataset",
    "Datastore",
    "Environment",
    "Experiment",
    "Run",
    "RunConfiguration",
    "ScriptRunConfig",
    "UserErrorException",
    "Workspace",
]

"""``azureml.core`` for Kittiwake: the same names, backed by a Kittiwake workspace.

Example::

    from azureml.core import Workspace, Experiment

    ws = Workspace.from_config()
    with Experiment(ws, "test_experiment").start_logging() as run:
        run.log("Sample size", 100)
"""

from kittiwake import Experiment, Run, Workspace
from kittiwake._errors import UserErrorException

__all__ = ["Experiment", "Run", "UserErrorException", "Workspace"]

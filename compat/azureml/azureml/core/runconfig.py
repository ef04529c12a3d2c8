"""``azureml.core.runconfig``."""

from kittiwake.script_run_config import RunConfiguration

__all__ = ["RunConfiguration"]

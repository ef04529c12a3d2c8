"""``azureml.core.script_run_config``."""

from kittiwake.script_run_config import ScriptRunConfig

__all__ = ["ScriptRunConfig"]

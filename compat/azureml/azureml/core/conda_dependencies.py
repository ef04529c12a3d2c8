"""``azureml.core.conda_dependencies``."""

from kittiwake.conda_dependencies import CondaDependencies

__all__ = ["CondaDependencies"]

"""``azureml.core.compute_target``."""

from kittiwake.compute import ComputeTargetException

__all__ = ["ComputeTargetException"]

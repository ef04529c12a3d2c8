"""``azureml.core.compute``: compute targets (Kittiwake's run on the server's machine)."""

from kittiwake.compute import ComputeTarget, LocalCompute

__all__ = ["ComputeTarget", "LocalCompute"]

"""``azureml.core.dataset``."""

from kittiwake.dataset import Dataset

__all__ = ["Dataset"]

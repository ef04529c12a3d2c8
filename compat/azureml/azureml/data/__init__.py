"""``azureml.data``: dataset classes."""

from kittiwake.dataset import FileDataset, TabularDataset

__all__ = ["FileDataset", "TabularDataset"]

"""``azureml.data``: dataset classes."""

from kittiwake.dataset import FileDataset, OutputFileDatasetConfig, TabularDataset

__all__ = ["FileDataset", "OutputFileDatasetConfig", "TabularDataset"]

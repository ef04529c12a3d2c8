"""``azureml.data.dataset_consumption_config``."""

from kittiwake.dataset import DatasetConsumptionConfig

__all__ = ["DatasetConsumptionConfig"]

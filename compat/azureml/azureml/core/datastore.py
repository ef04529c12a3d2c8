"""``azureml.core.datastore``."""

from kittiwake.datastore import Datastore

__all__ = ["Datastore"]

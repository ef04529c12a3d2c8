"""``azureml.exceptions``: the exceptions AzureML code catches."""

from kittiwake._errors import ActivityFailedException, UserErrorException
from kittiwake.compute import ComputeTargetException

__all__ = ["ActivityFailedException", "ComputeTargetException", "UserErrorException"]

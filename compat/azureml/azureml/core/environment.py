"""``azureml.core.environment``."""

from kittiwake.environment import DockerSection, Environment, PythonSection

__all__ = ["DockerSection", "Environment", "PythonSection"]

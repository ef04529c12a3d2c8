"""``Environment``: what a submitted run's Python has installed, and where it comes from.

An environment either names packages (``python.conda_dependencies``), which Kittiwake installs into a
virtualenv built with uv and cached by the hash of what was asked for, or uses an interpreter as it
is (``python.user_managed_dependencies = True``). The ``docker`` section is kept, but running in a
container needs a Docker engine, so a run whose environment sets an image fails at submit."""

import copy
import json
import os
import shutil
import subprocess
import urllib.parse

from ._errors import UserErrorException
from .conda_dependencies import CondaDependencies

_V1 = "/api/kittiwake/v1"
_DEFINITION_FILE = "azureml_environment.json"
_CONDA_FILE = "conda_dependencies.yml"


class PythonSection:
    """``env.python``: the packages, or an interpreter to use as it is."""

    def __init__(self):
        self.user_managed_dependencies = False
        self.interpreter_path = "python"
        self.conda_dependencies = CondaDependencies()
        self.base_conda_environment = None

    def __repr__(self):
        if self.user_managed_dependencies:
            return "PythonSection(user-managed: %s)" % self.interpreter_path
        return "PythonSection(%r)" % (self.conda_dependencies,)


class DockerSection:
    """``env.docker``: kept with the environment; setting an image makes runs need Docker."""

    def __init__(self):
        self._base_image = None
        self._base_dockerfile = None
        self.enabled = False
        self.shm_size = "2g"
        self.arguments = []

    @property
    def base_image(self):
        return self._base_image

    @base_image.setter
    def base_image(self, value):
        self._base_image = value
        if value:
            self._base_dockerfile = None

    @property
    def base_dockerfile(self):
        return self._base_dockerfile

    @base_dockerfile.setter
    def base_dockerfile(self, value):
        if value and os.path.isfile(str(value)):
            with open(value) as f:
                value = f.read()
        self._base_dockerfile = value
        if value:
            self._base_image = None

    def __repr__(self):
        return "DockerSection(base_image=%r, base_dockerfile=%s)" % (
            self.base_image, "set" if self.base_dockerfile else None)


class Environment:
    """A named, versioned Python environment for submitted runs.

    Example::

        env = Environment("train-env")
        env.python.conda_dependencies.add_pip_package("tiny-pkg==1.0")
        env.register(ws)            # version 1; registering it unchanged keeps version 1
        env = Environment.get(ws, "train-env")
    """

    def __init__(self, name, **kwargs):
        if not name or not isinstance(name, str):
            raise UserErrorException("An environment needs a name")
        self.name = name
        self.version = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.environment_variables = {}
        self.inferencing_stack_version = None

    # serialisation (AzureML's azureml_environment.json) ----------------------------------------

    def _serialize(self):
        if not isinstance(self.python.conda_dependencies, CondaDependencies):
            raise UserErrorException("env.python.conda_dependencies must be a CondaDependencies, got %s"
                                     % type(self.python.conda_dependencies).__name__)
        variables = {}
        for key, value in (self.environment_variables or {}).items():
            if not isinstance(value, (str, int, float, bool)):
                raise UserErrorException("Environment variable %s must be a string, got %s"
                                         % (key, type(value).__name__))
            variables[str(key)] = str(value)
        return {
            "name": self.name,
            "version": self.version,
            "environmentVariables": variables,
            "python": {
                "userManagedDependencies": bool(self.python.user_managed_dependencies),
                "interpreterPath": self.python.interpreter_path,
                "condaDependencies": self.python.conda_dependencies.as_dict(),
                "baseCondaEnvironment": self.python.base_conda_environment,
            },
            "docker": {
                "enabled": bool(self.docker.enabled),
                "baseImage": self.docker.base_image,
                "baseDockerfile": self.docker.base_dockerfile,
                "shmSize": self.docker.shm_size,
                "arguments": list(self.docker.arguments or []),
            },
            "inferencingStackVersion": self.inferencing_stack_version,
        }

    @classmethod
    def _deserialize(cls, doc):
        env = cls(doc.get("name") or "unnamed")
        env.version = doc.get("version")
        env.environment_variables = dict(doc.get("environmentVariables") or {})
        python = doc.get("python") or {}
        env.python.user_managed_dependencies = bool(python.get("userManagedDependencies"))
        env.python.interpreter_path = python.get("interpreterPath") or "python"
        env.python.conda_dependencies = CondaDependencies(
            _underlying_structure=python.get("condaDependencies") or {"dependencies": []})
        env.python.base_conda_environment = python.get("baseCondaEnvironment")
        docker = doc.get("docker") or {}
        env.docker.enabled = bool(docker.get("enabled"))
        if docker.get("baseImage"):
            env.docker.base_image = docker["baseImage"]
        if docker.get("baseDockerfile"):
            env.docker._base_dockerfile = docker["baseDockerfile"]
        env.inferencing_stack_version = doc.get("inferencingStackVersion")
        return env

    # the registry -----------------------------------------------------------------------------

    def register(self, workspace):
        """Registers this definition; an unchanged one keeps its version. Returns the registered
        environment."""
        doc = workspace._session.call("POST", _V1 + "/environments", self._serialize())
        registered = Environment._deserialize(doc)
        self.version = registered.version
        return registered

    @staticmethod
    def get(workspace, name, version=None, label=None):
        """A registered environment: ``version``, or the latest."""
        query = {"version": str(version)} if version is not None else None
        doc = workspace._session.call("GET", _V1 + "/environments/" + urllib.parse.quote(name, safe=""),
                                      query=query)
        return Environment._deserialize(doc)

    @staticmethod
    def list(workspace):
        """The latest version of every registered environment, by name."""
        docs = workspace._session.call("GET", _V1 + "/environments")["environments"]
        return {d["name"]: Environment._deserialize(d) for d in docs}

    # constructors -----------------------------------------------------------------------------

    @staticmethod
    def from_conda_specification(name, file_path):
        """An environment from a conda ``environment.yml``."""
        env = Environment(name)
        env.python.conda_dependencies = CondaDependencies(conda_dependencies_file_path=file_path)
        return env

    @staticmethod
    def from_pip_requirements(name, file_path, pip_version=None):
        """An environment from a pip ``requirements.txt``."""
        try:
            with open(file_path) as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise UserErrorException("Cannot read requirements file %s: %s" % (file_path, e)) from e
        env = Environment(name)
        deps = env.python.conda_dependencies
        for line in lines:
            line = line.split(" #")[0].strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("-"):
                deps.set_pip_option(line)
            else:
                deps.add_pip_package(line)
        if pip_version:
            deps.add_conda_package("pip==%s" % pip_version)
        return env

    @staticmethod
    def from_existing_conda_environment(name, conda_environment_name):
        """An environment with the packages of a conda environment on this machine
        (read with ``conda env export``)."""
        conda = shutil.which("conda")
        if conda is None:
            raise UserErrorException("from_existing_conda_environment needs conda, which is not on PATH")
        try:
            out = subprocess.run([conda, "env", "export", "--name", conda_environment_name, "--json"],
                                 capture_output=True, text=True, check=True).stdout
        except subprocess.CalledProcessError as e:
            raise UserErrorException("conda cannot export environment %r: %s"
                                     % (conda_environment_name, e.stderr.strip())) from e
        spec = json.loads(out)
        spec.pop("prefix", None)
        env = Environment(name)
        env.python.conda_dependencies = CondaDependencies(_underlying_structure=spec)
        return env

    @staticmethod
    def add_private_pip_wheel(workspace, file_path, exist_ok=False):
        """Stores a wheel in the workspace and returns the URL to give ``add_pip_package``."""
        name = os.path.basename(file_path)
        if not name.endswith(".whl"):
            raise UserErrorException("%s is not a wheel (.whl) file" % file_path)
        try:
            size = os.path.getsize(file_path)
            f = open(file_path, "rb")
        except OSError as e:
            raise UserErrorException("Cannot read wheel %s: %s" % (file_path, e)) from e
        from ._http import decode
        with f:
            resp = workspace._session.raw(
                "PUT", _V1 + "/environments/wheels/" + urllib.parse.quote(name),
                query={"exist_ok": "true" if exist_ok else "false"}, body=f,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})
            path = decode(resp.status, resp.read())["path"]
        return workspace._session.url + path

    # copies and files -------------------------------------------------------------------------

    def clone(self, new_name):
        env = copy.deepcopy(self)
        env.name = new_name
        env.version = None
        return env

    def save_to_directory(self, path, overwrite=False):
        """Writes ``azureml_environment.json`` and ``conda_dependencies.yml`` into ``path``."""
        os.makedirs(path, exist_ok=True)
        target = os.path.join(path, _DEFINITION_FILE)
        if os.path.exists(target) and not overwrite:
            raise UserErrorException("%s exists; pass overwrite=True to replace it" % target)
        doc = self._serialize()
        conda = doc["python"].pop("condaDependencies")
        with open(target, "w") as f:
            json.dump(doc, f, indent=2)
        with open(os.path.join(path, _CONDA_FILE), "w") as f:
            f.write(CondaDependencies(_underlying_structure=conda).serialize_to_string())

    @staticmethod
    def load_from_directory(path):
        try:
            with open(os.path.join(path, _DEFINITION_FILE)) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            raise UserErrorException("Cannot read an environment from %s: %s" % (path, e)) from e
        env = Environment._deserialize(doc)
        conda_file = os.path.join(path, _CONDA_FILE)
        if os.path.isfile(conda_file):
            env.python.conda_dependencies = CondaDependencies(conda_dependencies_file_path=conda_file)
        return env

    def __repr__(self):
        return "Environment(Name: %s, Version: %s, %r)" % (self.name, self.version, self.python)

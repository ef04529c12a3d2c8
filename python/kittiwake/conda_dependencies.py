"""``CondaDependencies``: the packages of an environment, kept as a conda ``environment.yml``.

Conda channels cannot be reached from a Kittiwake workspace, so the packages named here are
installed from PyPI when the environment is built (conda names that differ are mapped, and the
run's log says so)."""

import copy
import os

from . import _yaml
from ._errors import UserErrorException

_PIP = "pip"


class CondaDependencies:
    """An environment's conda and pip packages and its Python version.

    Example::

        deps = CondaDependencies()
        deps.set_python_version("3.11")
        deps.add_conda_package("scikit-learn>=1.4")
        deps.add_pip_package("tiny-pkg==1.0")
    """

    def __init__(self, conda_dependencies_file_path=None, _underlying_structure=None):
        if _underlying_structure is not None:
            self._conda = copy.deepcopy(_underlying_structure)
        elif conda_dependencies_file_path is not None:
            try:
                with open(conda_dependencies_file_path) as f:
                    text = f.read()
            except OSError as e:
                raise UserErrorException("Cannot read conda file %s: %s" % (conda_dependencies_file_path, e)) from e
            self._conda = _yaml.loads(text, source=conda_dependencies_file_path) or {}
            if not isinstance(self._conda, dict):
                raise UserErrorException("%s is not a conda environment file (expected a mapping)"
                                         % conda_dependencies_file_path)
        else:
            self._conda = {"name": "project_environment", "dependencies": []}
        self._conda.setdefault("dependencies", [])
        if self._conda["dependencies"] is None:
            self._conda["dependencies"] = []
        allowed = {"name", "channels", "dependencies", "prefix", "variables"}
        unknown = set(self._conda) - allowed
        if unknown:
            raise UserErrorException("Unknown conda file section(s): %s (allowed: %s)"
                                     % (", ".join(sorted(unknown)), ", ".join(sorted(allowed))))

    @staticmethod
    def create(pip_indexurl=None, pip_packages=None, conda_packages=None, python_version=None,
               pin_sdk_version=True):
        """A new set of dependencies with the given packages."""
        cd = CondaDependencies()
        if python_version:
            cd.set_python_version(python_version)
        for p in conda_packages or []:
            cd.add_conda_package(p)
        for p in pip_packages or []:
            cd.add_pip_package(p)
        if pip_indexurl:
            cd.set_pip_index_url(pip_indexurl)
        return cd

    # the structure ---------------------------------------------------------------------------

    def _deps(self):
        return self._conda["dependencies"]

    def _pip_list(self, create=False):
        for item in self._deps():
            if isinstance(item, dict) and _PIP in item:
                if item[_PIP] is None:
                    item[_PIP] = []
                return item[_PIP]
        if not create:
            return []
        entry = {_PIP: []}
        self._deps().append(entry)
        return entry[_PIP]

    @staticmethod
    def _name(spec):
        for i, ch in enumerate(spec):
            if ch in "=<>!~ [;@":
                return spec[:i].strip().lower()
        return spec.strip().lower()

    # conda packages ---------------------------------------------------------------------------

    @property
    def conda_packages(self):
        return [d for d in self._deps() if isinstance(d, str) and self._name(d) != "python"]

    def add_conda_package(self, conda_package):
        self.remove_conda_package(conda_package)
        self._deps().insert(len(self.conda_packages) + (1 if self.get_python_version() else 0), conda_package)

    def remove_conda_package(self, conda_package):
        name = self._name(conda_package)
        self._conda["dependencies"] = [d for d in self._deps()
                                       if not (isinstance(d, str) and self._name(d) == name)]

    @property
    def conda_channels(self):
        return list(self._conda.get("channels") or [])

    def add_channel(self, channel):
        channels = self._conda.setdefault("channels", []) or []
        if channel not in channels:
            channels.append(channel)
        self._conda["channels"] = channels

    def remove_channel(self, channel):
        self._conda["channels"] = [c for c in self.conda_channels if c != channel]

    # python -------------------------------------------------------------------------------------

    def set_python_version(self, version):
        self._conda["dependencies"] = [d for d in self._deps()
                                       if not (isinstance(d, str) and self._name(d) == "python")]
        self._deps().insert(0, "python=%s" % version)

    def get_python_version(self):
        for d in self._deps():
            if isinstance(d, str) and self._name(d) == "python":
                version = d.strip()[len("python"):].lstrip("=<>~ ")
                return version or None
        return None

    # pip ----------------------------------------------------------------------------------------

    @property
    def pip_packages(self):
        return [p for p in self._pip_list() if not str(p).startswith("-")]

    @property
    def pip_options(self):
        return [p for p in self._pip_list() if str(p).startswith("-")]

    def add_pip_package(self, pip_package):
        self.remove_pip_package(pip_package)
        self._pip_list(create=True).append(pip_package)

    def remove_pip_package(self, pip_package):
        name = self._name(pip_package)
        pip = self._pip_list()
        pip[:] = [p for p in pip if str(p).startswith("-") or self._name(str(p)) != name]

    def set_pip_requirements(self, pip_requirements):
        pip = self._pip_list(create=True)
        pip[:] = [p for p in pip if str(p).startswith("-")] + list(pip_requirements)

    def set_pip_option(self, pip_option):
        flag = pip_option.split()[0]
        pip = self._pip_list(create=True)
        pip[:] = [p for p in pip if str(p).split()[0] != flag] + [pip_option]

    def remove_pip_option(self, pip_option):
        flag = pip_option.split()[0]
        pip = self._pip_list()
        pip[:] = [p for p in pip if str(p).split()[0] != flag]

    def set_pip_index_url(self, index_url):
        self.set_pip_option("--index-url %s" % index_url)

    # output -------------------------------------------------------------------------------------

    def as_dict(self):
        return copy.deepcopy(self._conda)

    def serialize_to_string(self):
        return _yaml.dumps(self._conda) + "\n"

    def save(self, path=None):
        path = path or "conda_dependencies.yml"
        with open(path, "w") as f:
            f.write(self.serialize_to_string())
        return os.path.abspath(path)

    save_to_file = save

    def __repr__(self):
        return "CondaDependencies(python=%s, conda=%s, pip=%s)" % (
            self.get_python_version(), self.conda_packages, self.pip_packages)

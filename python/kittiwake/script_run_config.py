"""``ScriptRunConfig``: a training script to submit, with its folder, arguments, environment and
compute target."""

import os

from . import _snapshot
from ._errors import UserErrorException
from .environment import Environment

_V1 = "/api/kittiwake/v1"


class RunConfiguration:
    """The settings of a run, for code that builds one explicitly (AzureML's ``RunConfiguration``)."""

    def __init__(self, script=None, arguments=None, framework=None, communicator=None,
                 conda_dependencies=None, _history_enabled=None, _path=None, _name=None, command=None):
        self.script = script
        self.arguments = list(arguments or [])
        self.command = command
        self.target = "local"
        self.environment = Environment("default-environment")
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
        self.environment_variables = {}
        self.data = {}
        self.max_run_duration_seconds = ScriptRunConfig.MAX_DURATION_SECONDS_DEFAULT
        self.node_count = 1

    def __repr__(self):
        return "RunConfiguration(script=%r, target=%r, environment=%r)" % (
            self.script, self.target, self.environment.name)


def _argument(value, index):
    # AzureML passes numbers and booleans on as their text; anything else has no command-line form.
    if isinstance(value, str):
        return value
    if hasattr(value, "_placeholder"):
        return value._placeholder()
    if isinstance(value, (bool, int, float)):
        return str(value)
    raise UserErrorException("Argument %d is a %s (%r); arguments must be strings or numbers"
                             % (index, type(value).__name__, value))


class ScriptRunConfig:
    """A script in a source directory, to run with ``Experiment.submit``.

    Example::

        config = ScriptRunConfig(source_directory="scripts", script="train.py",
                                 arguments=["--epochs", 3], environment=env)
        run = Experiment(ws, "demo").submit(config)
        run.wait_for_completion(show_output=True)

    ``gpu_count`` (a Kittiwake addition) asks the compute target for that many GPUs of its own.
    """

    MAX_DURATION_SECONDS_DEFAULT = 2592000

    def __init__(self, source_directory, script=None, arguments=None, run_config=None,
                 _telemetry_values=None, compute_target=None, environment=None,
                 distributed_job_config=None, resume_from=None,
                 max_run_duration_seconds=MAX_DURATION_SECONDS_DEFAULT, command=None,
                 docker_runtime_config=None, gpu_count=0):
        self.source_directory = source_directory
        self.run_config = run_config or RunConfiguration()
        if run_config is None:
            self.run_config.target = compute_target if compute_target is not None else "local"
            if environment is not None:
                self.run_config.environment = environment
            self.run_config.max_run_duration_seconds = max_run_duration_seconds
        self._default_environment = run_config is None and environment is None
        self.script = script if script is not None else self.run_config.script
        self.arguments = list(arguments) if arguments is not None else list(self.run_config.arguments)
        self.command = command if command is not None else self.run_config.command
        if self.command is not None and self.script is not None:
            raise UserErrorException("Give either script (with arguments) or command, not both")
        if distributed_job_config is not None:
            raise UserErrorException("Distributed jobs (distributed_job_config) need a cluster compute "
                                     "target, which this workspace does not have yet")
        if not isinstance(gpu_count, int) or gpu_count < 0:
            raise UserErrorException("gpu_count must be a whole number of GPUs, got %r" % (gpu_count,))
        self.gpu_count = gpu_count

    def _script_and_arguments(self):
        if self.command is not None:
            parts = self.command.split() if isinstance(self.command, str) else list(self.command)
            if len(parts) < 2 or os.path.basename(str(parts[0])) not in ("python", "python3"):
                raise UserErrorException("command must be 'python <script> [arguments…]', got %r"
                                         % (self.command,))
            script, args = parts[1], parts[2:]
        else:
            script, args = self.script, self.arguments
        if not script:
            raise UserErrorException("ScriptRunConfig needs a script (or a command)")
        root = os.path.abspath(self.source_directory)
        full = os.path.abspath(os.path.join(root, script))
        if os.path.commonpath([root, full]) != root:
            raise UserErrorException("The script %r is outside source_directory %r; give its path "
                                     "relative to source_directory" % (script, self.source_directory))
        if not os.path.isfile(full):
            raise UserErrorException("The script %r was not found in source_directory %r"
                                     % (script, self.source_directory))
        rel = os.path.relpath(full, root).replace(os.sep, "/")
        return rel, [_argument(a, i) for i, a in enumerate(args)]

    def _inputs_and_outputs(self):
        """The dataset inputs and outputs named in the arguments (and ``run_config.data``)."""
        from .dataset import DatasetConsumptionConfig, OutputFileDatasetConfig
        inputs, outputs = {}, {}
        items = list(self.arguments) + list(getattr(self.run_config, "data", {}).values())
        for item in items:
            if isinstance(item, DatasetConsumptionConfig):
                inputs[item.name] = item._spec()
            elif isinstance(item, OutputFileDatasetConfig):
                outputs[item.name] = item._spec()
        return list(inputs.values()), list(outputs.values())

    def _submit(self, experiment, tags=None, display_name=None):
        from .run import Run
        session = experiment.workspace._session
        script, arguments = self._script_and_arguments()
        target = self.run_config.target
        target = getattr(target, "name", target) or "local"
        env = None if self._default_environment else self.run_config.environment._serialize()
        variables = {str(k): str(v) for k, v in (self.run_config.environment_variables or {}).items()}
        inputs, outputs = self._inputs_and_outputs()
        snapshot_id = _snapshot.take(session, self.source_directory)
        body = {
            "experiment_name": experiment.name,
            "snapshot_id": snapshot_id,
            "script": script,
            "arguments": arguments,
            "compute_target": target,
            "environment": env,
            "environment_variables": variables,
            "max_run_duration_seconds": int(self.run_config.max_run_duration_seconds),
            "gpu_count": self.gpu_count,
            "inputs": inputs,
            "outputs": outputs,
            "tags": {str(k): "" if v is None else str(v) for k, v in (tags or {}).items()},
        }
        if display_name:
            body["display_name"] = display_name
        doc = session.call("POST", _V1 + "/jobs", body)
        return Run(experiment, doc["run"]["info"]["run_id"], _info=doc["run"])

    def __repr__(self):
        return "ScriptRunConfig(source_directory=%r, script=%r, arguments=%r, compute_target=%r)" % (
            self.source_directory, self.script, self.arguments, self.run_config.target)

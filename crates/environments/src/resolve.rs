use std::collections::BTreeMap;

use kittiwake_domain::{Error, Result};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Conda channels whose packages Kittiwake installs from PyPI instead (conda channels cannot be
/// reached from the machines it runs on).
pub const KNOWN_CHANNELS: [&str; 6] = [
    "defaults",
    "anaconda",
    "conda-forge",
    "main",
    "pytorch",
    "nvidia",
];

/// Conda package names whose PyPI name differs.
const CONDA_TO_PYPI: [(&str, &str); 10] = [
    ("pytorch", "torch"),
    ("pytorch-cpu", "torch"),
    ("py-xgboost", "xgboost"),
    ("py-lightgbm", "lightgbm"),
    ("tensorflow-gpu", "tensorflow"),
    ("pytables", "tables"),
    ("msgpack-python", "msgpack"),
    ("pyyaml", "PyYAML"),
    ("opencv", "opencv-python"),
    ("matplotlib-base", "matplotlib"),
];

/// Conda packages that are part of the interpreter or of conda itself, not Python packages.
const CONDA_ONLY: [&str; 5] = ["python", "pip", "setuptools", "wheel", "cudatoolkit"];

/// Which interpreter a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interpreter {
    /// `user_managed_dependencies`: this program as it is, found on `PATH` if it has no `/`.
    UserManaged(String),
    /// A virtualenv built from the plan.
    Managed(BuildPlan),
}

/// What resolving a definition gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub interpreter: Interpreter,
    /// Variables the run's process gets (the definition's `environmentVariables`).
    pub variables: BTreeMap<String, String>,
    /// Lines for the run's log saying what was changed on the way (conda names mapped, packages
    /// the SDK provides left out).
    pub notes: Vec<String>,
}

/// A virtualenv to build: the inputs of the build and nothing else, so equal plans share one env.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildPlan {
    /// A version prefix such as "3.11"; `None` takes the compute target's default `python3`.
    pub python: Option<String>,
    /// pip requirement strings, in the order given.
    pub requirements: Vec<String>,
    /// pip options from the definition, such as `--index-url URL`.
    pub pip_options: Vec<String>,
}

impl BuildPlan {
    /// The SHA-256 of the plan's canonical JSON: the name of its cached environment.
    pub fn hash(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&canonical))
    }
}

fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

fn text(v: &Value, key: &str, what: &str) -> Result<Option<String>> {
    match field(v, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::invalid(format!(
            "Environment field {what} must be a string, got {other}"
        ))),
    }
}

/// Resolves an environment definition. `Value::Null` (no environment given) means the compute
/// target's `python3` as it is, like running the script by hand.
pub fn resolve(definition: &Value) -> Result<Resolved> {
    if definition.is_null() {
        return Ok(Resolved {
            interpreter: Interpreter::UserManaged("python3".into()),
            variables: BTreeMap::new(),
            notes: Vec::new(),
        });
    }
    if !definition.is_object() {
        return Err(Error::invalid(
            "An environment definition must be a JSON object",
        ));
    }
    let name = text(definition, "name", "name")?.unwrap_or_default();
    if let Some(docker) = field(definition, "docker") {
        for key in ["baseImage", "baseDockerfile"] {
            if text(docker, key, &format!("docker.{key}"))?.is_some_and(|s| !s.is_empty()) {
                return Err(Error::invalid(format!(
                    "Environment '{name}' sets docker.{key}, which needs a Docker engine to run in a container; \
                     this workspace has none. Remove the docker section to run in a virtualenv built from its packages"
                )));
            }
        }
    }
    let mut variables = BTreeMap::new();
    if let Some(vars) = field(definition, "environmentVariables") {
        let map = vars.as_object().ok_or_else(|| {
            Error::invalid("Environment field environmentVariables must be an object")
        })?;
        for (k, v) in map {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    return Err(Error::invalid(format!(
                        "Environment variable {k} must be a string, got {other}"
                    )));
                }
            };
            variables.insert(k.clone(), value);
        }
    }
    let python = field(definition, "python").cloned().unwrap_or(Value::Null);
    let user_managed = field(&python, "userManagedDependencies")
        .map(|v| {
            v.as_bool().ok_or_else(|| {
                Error::invalid(
                    "Environment field python.userManagedDependencies must be true or false",
                )
            })
        })
        .transpose()?
        .unwrap_or(false);
    if user_managed {
        let interpreter = text(&python, "interpreterPath", "python.interpreterPath")?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "python".into());
        return Ok(Resolved {
            interpreter: Interpreter::UserManaged(interpreter),
            variables,
            notes: Vec::new(),
        });
    }
    let mut notes = Vec::new();
    let plan = match field(&python, "condaDependencies") {
        Some(conda) => plan_from_conda(conda, &mut notes)?,
        None => BuildPlan {
            python: None,
            requirements: Vec::new(),
            pip_options: Vec::new(),
        },
    };
    Ok(Resolved {
        interpreter: Interpreter::Managed(plan),
        variables,
        notes,
    })
}

/// Turns a conda environment (the parsed `environment.yml`) into a build plan.
fn plan_from_conda(conda: &Value, notes: &mut Vec<String>) -> Result<BuildPlan> {
    let strings = |v: &Value, what: &str| -> Result<Vec<String>> {
        match v {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.trim().to_string()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(Error::invalid(format!(
                        "Conda {what} must be strings, got {other}"
                    ))),
                })
                .collect(),
            other => Err(Error::invalid(format!(
                "Conda {what} must be a list, got {other}"
            ))),
        }
    };
    let channels = strings(conda.get("channels").unwrap_or(&Value::Null), "channels")?;
    for channel in &channels {
        let bare = channel
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(channel);
        if !KNOWN_CHANNELS.contains(&bare) {
            return Err(Error::invalid(format!(
                "Conda channel '{channel}' cannot be used: conda channels are not reachable from this workspace, \
                 so conda packages are installed from PyPI, which stands in for the channels {}. \
                 Remove the channel, or name the package as a pip dependency",
                KNOWN_CHANNELS.join(", ")
            )));
        }
    }
    let mut plan = BuildPlan {
        python: None,
        requirements: Vec::new(),
        pip_options: Vec::new(),
    };
    let deps = match conda.get("dependencies") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(other) => {
            return Err(Error::invalid(format!(
                "Conda dependencies must be a list, got {other}"
            )));
        }
    };
    let mut pip = Vec::new();
    for dep in deps {
        match dep {
            Value::String(spec) => {
                let (name, version) = split_conda_spec(&spec);
                if name.eq_ignore_ascii_case("python") {
                    plan.python = version.map(|v| v.trim_start_matches('=').to_string());
                    continue;
                }
                if CONDA_ONLY.contains(&name.to_ascii_lowercase().as_str()) {
                    continue;
                }
                let pypi = CONDA_TO_PYPI
                    .iter()
                    .find(|(conda, _)| conda.eq_ignore_ascii_case(name))
                    .map_or(name, |(_, pypi)| pypi);
                let requirement = format!("{pypi}{}", conda_version_to_pip(version));
                notes.push(format!(
                    "conda package '{spec}' is installed from PyPI as '{requirement}'"
                ));
                plan.requirements.push(requirement);
            }
            Value::Object(map) => {
                for (key, value) in map {
                    if key != "pip" {
                        return Err(Error::invalid(format!(
                            "Unknown entry '{key}' in conda dependencies: expected package names and a 'pip' list"
                        )));
                    }
                    pip.extend(strings(&value, "pip dependencies")?);
                }
            }
            other => {
                return Err(Error::invalid(format!(
                    "Conda dependencies must be package names or a 'pip' list, got {other}"
                )));
            }
        }
    }
    for item in pip {
        if item.starts_with('-') {
            plan.pip_options
                .extend(item.split_whitespace().map(str::to_string));
        } else if is_azureml_sdk_package(&item) {
            notes.push(format!(
                "pip package '{item}' is not installed: Kittiwake puts its own azureml SDK on the run's import path"
            ));
        } else if !item.is_empty() {
            plan.requirements.push(item);
        }
    }
    Ok(plan)
}

fn is_azureml_sdk_package(requirement: &str) -> bool {
    let name: String = requirement
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect::<String>()
        .to_ascii_lowercase()
        .replace('_', "-");
    name.starts_with("azureml-") && !requirement.contains("://")
}

/// Splits `numpy=1.21=py38_0`, `scikit-learn>=0.24` or `numpy 1.21` into name and version part.
fn split_conda_spec(spec: &str) -> (&str, Option<&str>) {
    let spec = spec.trim();
    let spec = spec.rsplit("::").next().unwrap_or(spec);
    match spec.find(['=', '<', '>', '!', '~', ' ']) {
        Some(i) => (&spec[..i], Some(spec[i..].trim())),
        None => (spec, None),
    }
}

/// conda's `=1.21` means "1.21 or any 1.21.x", a build string may follow a second `=`, and a bare
/// `1.21` after a space means the same as `=1.21`.
fn conda_version_to_pip(version: Option<&str>) -> String {
    let Some(version) = version.map(str::trim).filter(|v| !v.is_empty()) else {
        return String::new();
    };
    if let Some(rest) = version.strip_prefix("==") {
        return format!("=={}", rest.split('=').next().unwrap_or(rest));
    }
    if let Some(rest) = version.strip_prefix('=') {
        let v = rest.split('=').next().unwrap_or(rest);
        return if v.ends_with('*') {
            format!("=={v}")
        } else {
            format!("=={v}.*")
        };
    }
    if version.starts_with(|c: char| c.is_ascii_digit()) {
        return format!("=={version}.*");
    }
    version.replace(' ', "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn managed(v: Value) -> (BuildPlan, Vec<String>) {
        let r = resolve(&v).unwrap();
        match r.interpreter {
            Interpreter::Managed(plan) => (plan, r.notes),
            other => panic!("not managed: {other:?}"),
        }
    }

    #[test]
    fn conda_packages_become_pypi_requirements() {
        let (plan, notes) = managed(json!({
            "name": "test_environment",
            "python": {"condaDependencies": {
                "channels": ["conda-forge", "defaults"],
                "dependencies": [
                    "python=3.8", "scikit-learn>=0.24", "pytorch=2.1", "py-xgboost", "numpy=1.21=py38_0",
                    "pip", {"pip": ["azureml-defaults", "tiny-pkg==1.0", "--extra-index-url http://x/simple"]}
                ]
            }}
        }));
        assert_eq!(plan.python.as_deref(), Some("3.8"));
        assert_eq!(
            plan.requirements,
            [
                "scikit-learn>=0.24",
                "torch==2.1.*",
                "xgboost",
                "numpy==1.21.*",
                "tiny-pkg==1.0"
            ]
        );
        assert_eq!(plan.pip_options, ["--extra-index-url", "http://x/simple"]);
        assert!(
            notes
                .iter()
                .any(|n| n.contains("'pytorch=2.1'") && n.contains("'torch==2.1.*'"))
        );
        assert!(notes.iter().any(|n| n.contains("azureml-defaults")));
    }

    #[test]
    fn equal_plans_share_a_hash_and_different_ones_do_not() {
        let def = |pkg: &str| json!({"python": {"condaDependencies": {"dependencies": [{"pip": [pkg]}]}}});
        let (a, _) = managed(def("a==1"));
        let (b, _) = managed(def("a==1"));
        let (c, _) = managed(def("a==2"));
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), c.hash());
        assert_eq!(a.hash().len(), 64);
    }

    #[test]
    fn what_cannot_run_here_is_refused_with_the_reason() {
        let err =
            resolve(&json!({"name": "e", "docker": {"baseImage": "ubuntu:22.04"}})).unwrap_err();
        assert!(err.message.contains("Docker engine"), "{}", err.message);
        let err = resolve(&json!({"python": {"condaDependencies": {"channels": ["bioconda"]}}}))
            .unwrap_err();
        assert!(err.message.contains("'bioconda'"), "{}", err.message);
        assert!(resolve(&json!({"python": {"userManagedDependencies": "yes"}})).is_err());
        assert!(resolve(&json!({"environmentVariables": {"A": [1]}})).is_err());
    }

    #[test]
    fn user_managed_and_default_use_an_interpreter_as_it_is() {
        let r = resolve(&json!({"python": {"userManagedDependencies": true, "interpreterPath": "/opt/py/bin/python"},
                                "environmentVariables": {"A": "1"}})).unwrap();
        assert_eq!(
            r.interpreter,
            Interpreter::UserManaged("/opt/py/bin/python".into())
        );
        assert_eq!(r.variables.get("A").map(String::as_str), Some("1"));
        assert_eq!(
            resolve(&Value::Null).unwrap().interpreter,
            Interpreter::UserManaged("python3".into())
        );
    }
}

//! Environment definitions from the files people keep them in: a conda `environment.yml`, a pip
//! `requirements.txt`, or AzureML's `azureml_environment.json`.

use kittiwake_domain::{Error, Result};
use serde_json::{Map, Value, json};
use yaml_rust2::{Yaml, YamlLoader};

fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::String(i.to_string()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) | Yaml::Real(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        other => format!("{other:?}"),
                    };
                    (key, to_json(v))
                })
                .collect::<Map<_, _>>(),
        ),
        _ => Value::Null,
    }
}

/// A definition whose packages are those of a conda environment file.
pub fn from_conda_yaml(name: &str, text: &str) -> Result<Value> {
    let docs = YamlLoader::load_from_str(text)
        .map_err(|e| Error::invalid(format!("The conda file is not valid YAML: {e}")))?;
    let conda = docs.first().map(to_json).unwrap_or(Value::Null);
    if !conda.is_object() {
        return Err(Error::invalid(
            "The conda file must be a mapping with 'dependencies' (and optionally 'name' and 'channels')",
        ));
    }
    Ok(
        json!({"name": name, "python": {"userManagedDependencies": false, "condaDependencies": conda}}),
    )
}

/// A definition whose pip packages are the lines of a requirements file (`-` lines are options).
pub fn from_pip_requirements(name: &str, text: &str) -> Value {
    let pip: Vec<Value> = text
        .lines()
        .map(|l| l.split(" #").next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| Value::String(l.to_string()))
        .collect();
    json!({"name": name, "python": {"userManagedDependencies": false,
        "condaDependencies": {"dependencies": [{"pip": pip}]}}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Interpreter, resolve};

    #[test]
    fn a_conda_file_resolves_like_the_sdk_sends_it() {
        let text = "name: x\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.11\n  - numpy=1.26\n  - pip:\n    - tiny==1.0\n";
        let def = from_conda_yaml("env", text).unwrap();
        let Interpreter::Managed(plan) = resolve(&def).unwrap().interpreter else {
            panic!("not managed")
        };
        assert_eq!(plan.python.as_deref(), Some("3.11"));
        assert_eq!(plan.requirements, ["numpy==1.26.*", "tiny==1.0"]);
        assert!(from_conda_yaml("env", "- a\n- b").is_err());
        assert!(from_conda_yaml("env", "a: [").is_err());
    }

    #[test]
    fn requirements_lines_become_pip_packages_and_options() {
        let def = from_pip_requirements("env", "# c\nalpha==1  # pinned\n--no-index\n\nbeta\n");
        let Interpreter::Managed(plan) = resolve(&def).unwrap().interpreter else {
            panic!("not managed")
        };
        assert_eq!(plan.requirements, ["alpha==1", "beta"]);
        assert_eq!(plan.pip_options, ["--no-index"]);
    }
}

//! Python environments for submitted runs.
//!
//! [`resolve`] turns an environment definition (AzureML's `azureml_environment.json` shape) into
//! either an interpreter to use as it is or a [`BuildPlan`]: a Python version and a list of pip
//! requirements, named by the SHA-256 of its canonical form. [`build::Builder`] materialises a plan
//! as a virtualenv made by uv in a cache folder, once per hash, shared by every run that asks for
//! the same thing. Resolution does no IO; only `build` touches the disk and runs programs.

pub mod build;
mod files;
mod resolve;

pub use files::{from_conda_yaml, from_pip_requirements};
pub use resolve::{BuildPlan, Interpreter, KNOWN_CHANNELS, Resolved, resolve};

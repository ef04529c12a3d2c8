//! The workspace config file (`.azureml/config.json`) that `Workspace.from_config()` and this CLI
//! find: AzureML's keys, plus where the Kittiwake server is and where its token lives.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkspaceConfig {
    pub subscription_id: String,
    pub resource_group: String,
    pub workspace_name: String,
    pub kittiwake_url: Option<String>,
    pub token_file: Option<PathBuf>,
}

/// AzureML's search: in `start` and each parent, `.azureml/`, then `aml_config/`, then the folder
/// itself, each for `config.json`.
pub fn find(start: &Path) -> Option<PathBuf> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        for candidate in [
            d.join(".azureml/config.json"),
            d.join("aml_config/config.json"),
            d.join("config.json"),
        ] {
            if candidate.is_file() {
                return Some(candidate);
            }
        }
        dir = d.parent();
    }
    None
}

pub fn read(path: &Path) -> Result<WorkspaceConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a workspace config", path.display()))
}

/// Writes `<dir>/.azureml/config.json`, unless a config that is not Kittiwake's is already there.
pub fn write(dir: &Path, config: &WorkspaceConfig) -> Result<PathBuf> {
    let path = dir.join(".azureml").join("config.json");
    if path.exists() {
        let ours = read(&path)
            .map(|c| c.kittiwake_url.is_some())
            .unwrap_or(false);
        if !ours {
            bail!(
                "{} exists and is not a Kittiwake workspace config; move it away or start the server with --config-dir",
                path.display()
            );
        }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(config)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

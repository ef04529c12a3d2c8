//! The environment registry (named, versioned definitions) and private wheels.

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use kittiwake_blob::ArtifactPath;
use kittiwake_domain::jobs::is_sha256;
use kittiwake_domain::{Error, Result};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{Hashed, Jobs, storage};

/// Environments every workspace has, registered at start as version 1.
pub const CURATED: [(&str, &str); 3] = [
    (
        "AzureML-Minimal",
        "A virtualenv of the compute target's python3 with no packages (the SDK is always importable)",
    ),
    (
        "AzureML-sklearn-1.5",
        "scikit-learn 1.5 with pandas, from PyPI",
    ),
    (
        "Kittiwake-system-python",
        "The compute target's python3 and its packages as they are (user-managed)",
    ),
];

fn curated_definition(name: &str) -> Value {
    let python = match name {
        "AzureML-Minimal" => {
            json!({"userManagedDependencies": false, "condaDependencies": {"dependencies": []}})
        }
        "AzureML-sklearn-1.5" => json!({"userManagedDependencies": false, "condaDependencies": {
            "dependencies": [{"pip": ["scikit-learn==1.5.*", "pandas"]}]}}),
        _ => json!({"userManagedDependencies": true, "interpreterPath": "python3"}),
    };
    json!({"name": name, "python": python})
}

const WHEEL_PREFIX: &str = "/api/kittiwake/v1/environments/wheels/";

/// If `requirement` is the URL of a private wheel of this workspace, its hash and file name.
pub fn wheel_sha_and_name(requirement: &str) -> Option<(&str, &str)> {
    let rest = &requirement[requirement.find(WHEEL_PREFIX)? + WHEEL_PREFIX.len()..];
    let (sha, name) = rest.split_once('/')?;
    (is_sha256(sha) && is_wheel_name(name)).then_some((sha, name))
}

fn is_wheel_name(name: &str) -> bool {
    name.ends_with(".whl")
        && !name.contains('/')
        && !name.contains('\\')
        && !name.starts_with('.')
        && name.len() <= 255
}

fn wheel_path(sha: &str, name: &str) -> Result<ArtifactPath> {
    ArtifactPath::parse(&format!("environments/wheels/{sha}/{name}"))
        .map_err(|e| Error::invalid(e.to_string()))
}

impl Jobs {
    /// Registers the curated environments a workspace starts with.
    pub async fn register_curated(&self) -> Result<()> {
        for (name, _) in CURATED {
            if self
                .inner
                .store
                .get_environment(name, None)
                .await?
                .is_none()
            {
                self.register_environment(curated_definition(name)).await?;
            }
        }
        Ok(())
    }

    /// Registers a definition under its `name`; an unchanged definition keeps its version.
    /// Returns the definition as stored, with its version.
    pub async fn register_environment(&self, mut definition: Value) -> Result<Value> {
        let name = definition
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| Error::invalid("An environment needs a name to be registered"))?
            .to_string();
        kittiwake_domain::validation::check_key("environment name", &name)?;
        kittiwake_environments::resolve(&definition)?;
        if let Some(obj) = definition.as_object_mut() {
            obj.remove("version");
        }
        // serde_json keeps object keys sorted, so equal definitions encode to equal text.
        let text = serde_json::to_string(&definition)
            .map_err(|e| Error::internal(format!("encoding an environment: {e}")))?;
        let hash = hex::encode(Sha256::digest(text.as_bytes()));
        let version = self
            .inner
            .store
            .register_environment(&name, &text, &hash)
            .await?;
        Ok(with_version(definition, version))
    }

    /// A registered environment: the given version, or the latest.
    pub async fn environment(&self, name: &str, version: Option<i64>) -> Result<Value> {
        let (version, text) = self
            .inner
            .store
            .get_environment(name, version)
            .await?
            .ok_or_else(|| match version {
                Some(v) => Error::not_found(format!("Environment '{name}' has no version {v}")),
                None => Error::not_found(format!("Environment '{name}' is not registered")),
            })?;
        let definition = serde_json::from_str(&text)
            .map_err(|e| Error::internal(format!("corrupt environment definition: {e}")))?;
        Ok(with_version(definition, version))
    }

    /// The latest version of every registered environment.
    pub async fn environments(&self) -> Result<Vec<Value>> {
        self.inner
            .store
            .list_environments()
            .await?
            .into_iter()
            .map(|(_, version, text)| {
                let definition = serde_json::from_str(&text)
                    .map_err(|e| Error::internal(format!("corrupt environment definition: {e}")))?;
                Ok(with_version(definition, version))
            })
            .collect()
    }

    /// Stores a private wheel and returns the path (below the server's URL) that environments
    /// name it by. The path holds the content's hash, so a changed wheel is a new environment.
    /// A different wheel of the same file name is refused unless `exist_ok`.
    pub async fn put_wheel<S, E>(&self, file_name: &str, exist_ok: bool, body: S) -> Result<String>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        if !is_wheel_name(file_name) {
            return Err(Error::invalid(format!(
                "'{file_name}' is not a wheel file name: expected a plain name ending in .whl"
            )));
        }
        let Hashed {
            incoming,
            sha256: sha,
            ..
        } = self.put_hashed("environments", body).await?;
        let key = format!("wheel:{file_name}");
        if let Some(existing) = self.inner.store.setting(&key).await?
            && existing != sha
            && !exist_ok
        {
            let _ = self.inner.blob.delete(&incoming).await;
            return Err(Error::already_exists(format!(
                "A different wheel named '{file_name}' is already stored; pass exist_ok=True to replace it"
            )));
        }
        self.inner
            .blob
            .rename(&incoming, &wheel_path(&sha, file_name)?)
            .await
            .map_err(storage)?;
        self.inner.store.put_setting(&key, &sha).await?;
        Ok(format!("{WHEEL_PREFIX}{sha}/{file_name}"))
    }

    /// A stored private wheel's content.
    pub async fn wheel(
        &self,
        sha: &str,
        name: &str,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        if !is_sha256(sha) || !is_wheel_name(name) {
            return Err(Error::invalid(format!("No wheel '{sha}/{name}'")));
        }
        let (size, stream) = self
            .inner
            .blob
            .get(&wheel_path(sha, name)?)
            .await
            .map_err(storage)?;
        Ok((size, stream.map(|c| c.map_err(storage)).boxed()))
    }
}

fn with_version(mut definition: Value, version: i64) -> Value {
    if let Some(obj) = definition.as_object_mut() {
        obj.insert("version".into(), Value::String(version.to_string()));
    }
    definition
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_urls_are_recognised_by_their_path() {
        let sha = "a".repeat(64);
        let url = format!("http://127.0.0.1:7700{WHEEL_PREFIX}{sha}/pkg-1.0-py3-none-any.whl");
        assert_eq!(
            wheel_sha_and_name(&url),
            Some((sha.as_str(), "pkg-1.0-py3-none-any.whl"))
        );
        assert_eq!(wheel_sha_and_name("numpy==1.2"), None);
        assert_eq!(
            wheel_sha_and_name(&format!("{WHEEL_PREFIX}{sha}/../x.whl")),
            None
        );
        assert_eq!(
            wheel_sha_and_name(&format!("{WHEEL_PREFIX}abc/x.whl")),
            None
        );
    }

    #[test]
    fn curated_environments_resolve() {
        for (name, _) in CURATED {
            kittiwake_environments::resolve(&curated_definition(name)).unwrap();
        }
    }
}

//! The Python SDK and its `azureml` layer, embedded in the binary and unpacked once per version
//! into the cache, so every run can import them without installing anything.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));

/// Unpacks the SDK (if this version is not unpacked yet) and returns the folder to put on
/// `PYTHONPATH`.
pub fn install(cache: &Path) -> std::io::Result<PathBuf> {
    let mut hasher = Sha256::new();
    for (path, content) in SDK_FILES {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(content);
    }
    let version = hex::encode(&hasher.finalize()[..8]);
    let dir = cache.join("sdk").join(&version);
    if dir.join(".ready").is_file() {
        return Ok(dir);
    }
    let staging = cache
        .join("sdk")
        .join(format!("incoming-{}-{version}", std::process::id()));
    for (path, content) in SDK_FILES {
        let target = staging.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(target, content)?;
    }
    std::fs::write(staging.join(".ready"), version.as_bytes())?;
    if std::fs::rename(&staging, &dir).is_err() {
        // Another agent unpacked the same version first.
        std::fs::remove_dir_all(&staging)?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_and_the_azureml_layer_are_embedded() {
        let names: Vec<&str> = SDK_FILES.iter().map(|(p, _)| *p).collect();
        assert!(names.contains(&"kittiwake/__init__.py"), "{names:?}");
        assert!(names.contains(&"azureml/core/__init__.py"), "{names:?}");
        let dir = tempfile::tempdir().unwrap();
        let installed = install(dir.path()).unwrap();
        assert!(installed.join("kittiwake/run.py").is_file());
        assert_eq!(install(dir.path()).unwrap(), installed);
    }
}

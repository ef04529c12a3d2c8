//! The run's working directory: the snapshot's files, copied from a per-node cache of contents
//! that fills from the server once per content hash; and private wheels, fetched the same way.

use std::path::{Path, PathBuf};

use kittiwake_domain::jobs::{SnapshotFile, check_relative_path};
use kittiwake_environments::BuildPlan;
use reqwest::Method;
use sha2::{Digest, Sha256};

use crate::client::Server;

/// Returns the cached copy of the content `sha256`, downloading it from `path` if needed.
async fn cached(
    server: &Server,
    cache_file: &Path,
    sha256: &str,
    path: &str,
) -> Result<(), String> {
    if cache_file.is_file() {
        return Ok(());
    }
    let data = server
        .call(Method::GET, path, None, "")
        .await
        .map_err(|e| format!("downloading {path}: {e}"))?;
    let actual = hex::encode(Sha256::digest(&data));
    if actual != sha256 {
        return Err(format!("{path} arrived with sha256 {actual}, not {sha256}"));
    }
    let dir = cache_file.parent().ok_or("a cache file has no folder")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let staging = dir.join(format!(".incoming-{}-{sha256}", std::process::id()));
    std::fs::write(&staging, &data).map_err(|e| format!("writing {}: {e}", staging.display()))?;
    std::fs::rename(&staging, cache_file)
        .map_err(|e| format!("caching {}: {e}", cache_file.display()))
}

/// Lays the snapshot's files out in `work_dir`.
pub async fn materialise(
    server: &Server,
    files: &[SnapshotFile],
    work_dir: &Path,
    cache: &Path,
) -> Result<(), String> {
    for f in files {
        check_relative_path(&f.path).map_err(|e| e.message)?;
        let blob = cache.join("blobs").join(&f.sha256);
        cached(
            server,
            &blob,
            &f.sha256,
            &format!("/api/kittiwake/v1/snapshots/blobs/{}", f.sha256),
        )
        .await?;
        let target = work_dir.join(&f.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        // A copy, not a link: the script may change its own files, and the cache must not change.
        std::fs::copy(&blob, &target).map_err(|e| format!("writing {}: {e}", target.display()))?;
        if f.executable {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755));
        }
    }
    Ok(())
}

/// The plan's requirements with each private wheel of this workspace replaced by a local copy.
pub async fn local_requirements(
    server: &Server,
    plan: &BuildPlan,
    cache: &Path,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for req in &plan.requirements {
        match kittiwake_jobs::wheel_sha_and_name(req) {
            Some((sha, name)) => {
                let file = cache.join("wheels").join(sha).join(name);
                cached(
                    server,
                    &file,
                    sha,
                    &format!("/api/kittiwake/v1/environments/wheels/{sha}/{name}"),
                )
                .await?;
                out.push(file.display().to_string());
            }
            None => out.push(req.clone()),
        }
    }
    Ok(out)
}

/// Every regular file below `root`, in a stable order.
pub fn files_below(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

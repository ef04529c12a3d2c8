//! Building environments with uv, once per plan hash, in a cache folder on the compute node.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use kittiwake_domain::{Error, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::BuildPlan;

/// Where a finished environment is marked as complete; a folder without it is a failed or
/// interrupted build and is built again.
const READY_MARKER: &str = ".kittiwake-ready";

/// A Python interpreter found on the compute node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundPython {
    pub version: String,
    pub path: PathBuf,
}

/// Builds and caches environments under `<cache>/envs/<plan hash>`.
pub struct Builder {
    cache: PathBuf,
}

/// Receives the build's output, a line at a time.
pub type LogLine<'a> = &'a (dyn Fn(&str) + Sync);

impl Builder {
    pub fn new(cache: &Path) -> Self {
        Self {
            cache: cache.to_path_buf(),
        }
    }

    /// The environment's folder if it is already built, without taking any lock.
    pub fn cached(&self, plan: &BuildPlan) -> Option<PathBuf> {
        let dir = self.cache.join("envs").join(plan.hash());
        dir.join(READY_MARKER).is_file().then_some(dir)
    }

    /// Returns the interpreter of the plan's environment, building it first if needed.
    /// `install` is the requirement list handed to uv (the plan's, with private wheels replaced by
    /// local files); the plan alone names the environment.
    pub async fn python_for(
        &self,
        plan: &BuildPlan,
        install: &[String],
        log: LogLine<'_>,
    ) -> Result<PathBuf> {
        if let Some(dir) = self.cached(plan) {
            return Ok(python_in(&dir));
        }
        let envs = self.cache.join("envs");
        std::fs::create_dir_all(&envs).map_err(io("creating", &envs))?;
        let hash = plan.hash();
        let lock_path = envs.join(format!("{hash}.lock"));
        let lock = std::fs::File::create(&lock_path).map_err(io("creating", &lock_path))?;
        // Another run may be building the same environment; wait for it rather than build twice.
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|_| lock))
            .await
            .map_err(|e| Error::internal(format!("waiting for the environment lock: {e}")))?
            .map_err(io("locking", &lock_path))?;
        let dir = envs.join(&hash);
        if dir.join(READY_MARKER).is_file() {
            return Ok(python_in(&dir));
        }
        let started = Instant::now();
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io("removing", &dir))?;
        }
        let python = choose_python(plan.python.as_deref()).await?;
        log(&format!(
            "Building environment {} with Python {} ({}) and {} package(s)",
            &hash[..12],
            python.version,
            python.path.display(),
            install.len()
        ));
        let uv = self.uv(log).await?;
        let mut venv = Command::new(&uv);
        venv.arg("venv")
            .arg("--quiet")
            .arg("--python")
            .arg(&python.path)
            .arg(&dir);
        self.run_uv(venv, log, "create the virtualenv").await?;
        if !install.is_empty() {
            let mut pip = Command::new(&uv);
            pip.arg("pip")
                .arg("install")
                .arg("--python")
                .arg(python_in(&dir))
                .args(&plan.pip_options)
                .args(install);
            self.run_uv(pip, log, "install the environment's packages")
                .await?;
        }
        std::fs::write(dir.join(READY_MARKER), hash.as_bytes())
            .map_err(io("writing", &dir.join(READY_MARKER)))?;
        drop(lock);
        log(&format!(
            "Environment {} ready in {:.1} s",
            &hash[..12],
            started.elapsed().as_secs_f64()
        ));
        Ok(python_in(&dir))
    }

    async fn run_uv(&self, mut cmd: Command, log: LogLine<'_>, what: &str) -> Result<()> {
        cmd.env("UV_PYTHON_DOWNLOADS", "never")
            .env("UV_CACHE_DIR", self.cache.join("uv-cache"))
            .env("UV_NO_PROGRESS", "1")
            .env_remove("VIRTUAL_ENV");
        let code = run_logged(cmd, log).await?;
        if code == 0 {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "uv could not {what} (exit code {code}); its output is in the run's log above"
            )))
        }
    }

    /// uv: `KITTIWAKE_UV`, else `uv` on `PATH`, else the copy this cache installed from PyPI
    /// before, else install that copy now (`python3 -m pip install --target`).
    async fn uv(&self, log: LogLine<'_>) -> Result<PathBuf> {
        if let Some(path) = std::env::var_os("KITTIWAKE_UV") {
            return Ok(PathBuf::from(path));
        }
        if let Some(path) = find_on_path("uv") {
            return Ok(path);
        }
        let target = self.cache.join("tools").join("uv");
        let installed = target.join("bin").join("uv");
        if installed.is_file() {
            return Ok(installed);
        }
        log("Installing uv from PyPI (once per compute node)");
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "pip", "install", "--quiet", "--target"])
            .arg(&target)
            .arg("uv");
        let code = run_logged(cmd, log).await?;
        if code != 0 || !installed.is_file() {
            return Err(Error::invalid(format!(
                "uv is needed to build environments and could not be installed (pip exit code {code}); \
                 install it (pip install uv) or set KITTIWAKE_UV to its path"
            )));
        }
        Ok(installed)
    }
}

fn python_in(env: &Path) -> PathBuf {
    env.join("bin").join("python")
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::internal(format!("{what} {}: {e}", path.display()))
}

/// Runs a command, sending each line of its stdout and stderr to `log`; returns its exit code.
async fn run_logged(mut cmd: Command, log: LogLine<'_>) -> Result<i32> {
    let program = format!("{:?}", cmd.as_std().get_program());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::invalid(format!("cannot start {program}: {e}")))?;
    let stdout = child.stdout.take().map(|s| BufReader::new(s).lines());
    let stderr = child.stderr.take().map(|s| BufReader::new(s).lines());
    tokio::join!(pump(stdout, log), pump(stderr, log));
    let status = child
        .wait()
        .await
        .map_err(|e| Error::internal(format!("waiting for {program}: {e}")))?;
    Ok(status.code().unwrap_or(-1))
}

async fn pump<R: tokio::io::AsyncRead + Unpin>(
    lines: Option<tokio::io::Lines<BufReader<R>>>,
    log: LogLine<'_>,
) {
    if let Some(mut lines) = lines {
        while let Ok(Some(line)) = lines.next_line().await {
            log(&line);
        }
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Every `python3` and `python3.N` on `PATH`, with its version, each interpreter once.
pub async fn find_interpreters() -> Vec<FoundPython> {
    let mut candidates = Vec::new();
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let versioned = name.strip_prefix("python3.").is_some_and(|minor| {
                !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit())
            });
            if name == "python3" || versioned {
                candidates.push(entry.path());
            }
        }
    }
    let mut found: Vec<FoundPython> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for path in candidates {
        let Ok(real) = std::fs::canonicalize(&path) else {
            continue;
        };
        if !seen.insert(real) {
            continue;
        }
        let out = Command::new(&path)
            .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .await;
        if let Ok(out) = out
            && out.status.success()
        {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
            found.push(FoundPython { version, path });
        }
    }
    found
}

/// Whether `version` (such as 3.11.4) is what `wanted` (such as 3.11 or 3.11.4) asks for.
fn matches_version(version: &str, wanted: &str) -> bool {
    let have: Vec<&str> = version.split('.').collect();
    let want: Vec<&str> = wanted.trim().split('.').filter(|p| !p.is_empty()).collect();
    !want.is_empty() && want.len() <= have.len() && want.iter().zip(&have).all(|(w, h)| w == h)
}

/// The interpreter to build on: the one whose version matches, or `python3` when none is asked.
async fn choose_python(wanted: Option<&str>) -> Result<FoundPython> {
    let found = find_interpreters().await;
    let chosen = match wanted {
        Some(wanted) => found.iter().find(|p| matches_version(&p.version, wanted)),
        None => found
            .iter()
            .find(|p| p.path.file_name().is_some_and(|n| n == "python3"))
            .or(found.first()),
    };
    chosen.cloned().ok_or_else(|| {
        let list: Vec<String> = found
            .iter()
            .map(|p| format!("{} ({})", p.version, p.path.display()))
            .collect();
        Error::invalid(format!(
            "Python {} is not installed on this compute target; found: {}. Ask for one of these versions \
             (CondaDependencies.set_python_version)",
            wanted.unwrap_or("3"),
            if list.is_empty() { "none".to_string() } else { list.join(", ") }
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_match_by_prefix_of_components() {
        assert!(matches_version("3.11.4", "3.11"));
        assert!(matches_version("3.11.4", "3.11.4"));
        assert!(matches_version("3.11.4", "3"));
        assert!(!matches_version("3.1.4", "3.11"));
        assert!(!matches_version("3.11.4", "3.8"));
        assert!(!matches_version("3.11.4", ""));
    }

    #[tokio::test]
    async fn a_missing_python_version_lists_the_ones_found() {
        let err = choose_python(Some("2.1")).await.unwrap_err().message;
        assert!(err.contains("Python 2.1 is not installed"), "{err}");
        let found = find_interpreters().await;
        assert!(!found.is_empty(), "the test machine has a python3");
        assert!(err.contains(&found[0].version), "{err}");
    }
}

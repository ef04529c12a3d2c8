//! Embeds the Python SDK (`python/kittiwake`) and its `azureml` compatibility layer
//! (`compat/azureml/azureml`) so that the agent can put them on a run's import path anywhere.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "__pycache__") {
                collect(root, &path, out);
            }
        } else if path.extension().is_some_and(|e| e == "py") {
            let rel = path
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().replace('\\', "/"));
            if let Ok(rel) = rel {
                out.push((rel, path));
            }
        }
    }
}

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let repo = manifest.join("../..");
    let mut files = Vec::new();
    for (root, package) in [("python", "kittiwake"), ("compat/azureml", "azureml")] {
        let root = repo.join(root);
        let dir = root.join(package);
        println!("cargo:rerun-if-changed={}", dir.display());
        collect(&root, &dir, &mut files);
    }
    let mut code = String::from(
        "/// The SDK's Python files: path below the import root, content.\npub const SDK_FILES: &[(&str, &[u8])] = &[\n",
    );
    for (rel, path) in &files {
        let abs = path
            .canonicalize()
            .expect("an SDK file that was just listed");
        writeln!(
            code,
            "    ({rel:?}, include_bytes!({:?})),",
            abs.display().to_string()
        )
        .expect("writing to a String");
    }
    code.push_str("];\n");
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("sdk_files.rs");
    std::fs::write(out, code).expect("writing sdk_files.rs");
}

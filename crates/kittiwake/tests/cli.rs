//! The CLI against a live server: tables, `--json`, uploads and downloads, one-line errors.

mod common;

use std::process::{Command, Output};

use common::Server;
use serde_json::{Value, json};

fn kittiwake(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kittiwake"))
        .args(args)
        .current_dir(dir)
        .env_remove("KITTIWAKE_URL")
        .env_remove("KITTIWAKE_TOKEN")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[tokio::test]
async fn cli_lists_shows_and_transfers() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.wait_healthy().await;
    let (_, created) = s
        .post("/experiments/create", json!({"name": "cli-demo"}))
        .await;
    let exp_id = created["experiment_id"].as_str().unwrap().to_string();
    let (_, run) = s
        .post(
            "/runs/create",
            json!({"experiment_id": exp_id, "run_name": "first"}),
        )
        .await;
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    let metrics: Vec<Value> = (0..3)
        .map(|i| json!({"key": "loss", "value": 1.0 / (i + 1) as f64, "timestamp": 1, "step": i}))
        .collect();
    s.post(
        "/runs/log-batch",
        json!({"run_id": run_id, "metrics": metrics, "params": [{"key": "lr", "value": "0.01"}]}),
    )
    .await;

    // Sub-folders find the workspace config by walking up, as AzureML does.
    let sub = dir.path().join("nested/deeper");
    std::fs::create_dir_all(&sub).unwrap();
    let experiments: Value =
        serde_json::from_str(&stdout(&kittiwake(&sub, &["experiment", "list", "--json"]))).unwrap();
    let names: Vec<&str> = experiments
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"cli-demo") && names.contains(&"Default"),
        "{names:?}"
    );
    let table = stdout(&kittiwake(dir.path(), &["experiment", "list"]));
    assert!(
        table.contains("cli-demo") && table.contains("NAME"),
        "{table}"
    );

    let runs: Value = serde_json::from_str(&stdout(&kittiwake(
        dir.path(),
        &["run", "list", "-e", "cli-demo", "--json"],
    )))
    .unwrap();
    assert_eq!(runs[0]["info"]["run_id"], run_id.as_str());
    let shown = stdout(&kittiwake(dir.path(), &["run", "show", &run_id]));
    assert!(
        shown.contains("first") && shown.contains("lr") && shown.contains("0.01"),
        "{shown}"
    );
    let history: Value = serde_json::from_str(&stdout(&kittiwake(
        dir.path(),
        &["run", "metrics", &run_id, "--key", "loss", "--json"],
    )))
    .unwrap();
    assert_eq!(history["scalars"][0]["steps"], json!([0, 1, 2]));

    let local = dir.path().join("model.bin");
    std::fs::write(&local, vec![42u8; 3 * 1024 * 1024 + 17]).unwrap();
    stdout(&kittiwake(
        dir.path(),
        &[
            "run",
            "upload",
            &run_id,
            local.to_str().unwrap(),
            "--name",
            "outputs/model.bin",
        ],
    ));
    let listing: Value = serde_json::from_str(&stdout(&kittiwake(
        dir.path(),
        &["run", "artifacts", &run_id, "--json"],
    )))
    .unwrap();
    assert_eq!(listing, json!([{"path": "outputs", "is_dir": true}]));
    let out_dir = dir.path().join("downloaded");
    stdout(&kittiwake(
        dir.path(),
        &[
            "run",
            "download",
            &run_id,
            "outputs",
            "--to",
            out_dir.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        std::fs::read(out_dir.join("outputs/model.bin")).unwrap(),
        std::fs::read(&local).unwrap()
    );

    // Errors are one line and a non-zero exit.
    let missing = kittiwake(
        dir.path(),
        &["run", "show", "0123456789abcdef0123456789abcdef"],
    );
    assert!(!missing.status.success());
    let err = String::from_utf8(missing.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not found"), "{err}");
    let elsewhere = tempfile::tempdir().unwrap();
    let lost = kittiwake(elsewhere.path(), &["experiment", "list"]);
    assert!(!lost.status.success());
    assert!(String::from_utf8_lossy(&lost.stderr).contains("--url"));
}

#[tokio::test]
async fn cli_submits_follows_cancels_and_lists_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.wait_healthy().await;
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("pkg")).unwrap();
    std::fs::write(
        src.join("train.py"),
        "import sys\nfrom pkg import helper\nprint('args', sys.argv[1:], helper.VALUE)\n",
    )
    .unwrap();
    std::fs::write(src.join("pkg/__init__.py"), "").unwrap();
    std::fs::write(src.join("pkg/helper.py"), "VALUE = 7\n").unwrap();
    std::fs::write(src.join(".amlignore"), "*.bin\n").unwrap();
    std::fs::write(src.join("weights.bin"), "big").unwrap();
    std::fs::write(src.join("fail.py"), "raise SystemExit('bad input file')\n").unwrap();
    std::fs::write(src.join("sleep.py"), "import time\ntime.sleep(60)\n").unwrap();
    let src_arg = src.to_str().unwrap();

    let out = kittiwake(
        dir.path(),
        &[
            "job",
            "submit",
            "--source-dir",
            src_arg,
            "--script",
            "train.py",
            "-e",
            "cli-jobs",
            "--follow",
            "--",
            "--lr",
            "0.1",
        ],
    );
    let printed = stdout(&out);
    assert!(printed.contains("args ['--lr', '0.1'] 7"), "{printed}");

    let out = kittiwake(
        dir.path(),
        &[
            "job",
            "submit",
            "--source-dir",
            src_arg,
            "--script",
            "fail.py",
            "--follow",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ended Failed") && err.contains("bad input file"),
        "{err}"
    );

    let run_id = stdout(&kittiwake(
        dir.path(),
        &[
            "job",
            "submit",
            "--source-dir",
            src_arg,
            "--script",
            "sleep.py",
        ],
    ))
    .trim()
    .to_string();
    let mut status = String::new();
    for _ in 0..200 {
        let (_, job) = s
            .call(
                reqwest::Method::GET,
                &format!("/api/kittiwake/v1/jobs/{run_id}"),
                None,
            )
            .await;
        status = job["status"].as_str().unwrap_or_default().to_string();
        if status == "Running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, "Running");
    let canceled = stdout(&kittiwake(dir.path(), &["run", "cancel", &run_id]));
    assert!(canceled.contains(&run_id), "{canceled}");
    let logs = kittiwake(dir.path(), &["run", "logs", "-f", &run_id]);
    assert!(logs.status.success());
    let (_, job) = s
        .call(
            reqwest::Method::GET,
            &format!("/api/kittiwake/v1/jobs/{run_id}"),
            None,
        )
        .await;
    assert_eq!(job["status"], "Canceled");

    let restored = dir.path().join("restored");
    stdout(&kittiwake(
        dir.path(),
        &[
            "run",
            "snapshot",
            &run_id,
            "--to",
            restored.to_str().unwrap(),
        ],
    ));
    assert!(restored.join("pkg/helper.py").is_file());
    assert!(
        !restored.join("weights.bin").exists(),
        ".amlignore was not honoured"
    );

    let computes = stdout(&kittiwake(dir.path(), &["compute", "list"]));
    assert!(
        computes.contains("local") && computes.contains("SLOTS"),
        "{computes}"
    );
    let envs = stdout(&kittiwake(dir.path(), &["env", "list"]));
    assert!(envs.contains("AzureML-Minimal"), "{envs}");
    let shown: Value = serde_json::from_str(&stdout(&kittiwake(
        dir.path(),
        &["env", "show", "Kittiwake-system-python"],
    )))
    .unwrap();
    assert_eq!(shown["python"]["userManagedDependencies"], true);

    let out = kittiwake(
        dir.path(),
        &[
            "job",
            "submit",
            "--source-dir",
            src_arg,
            "--script",
            "nope.py",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("'nope.py' is not in"), "{err}");
    let out = kittiwake(
        dir.path(),
        &[
            "job",
            "submit",
            "--source-dir",
            src_arg,
            "--script",
            "train.py",
            "--compute",
            "gpu-farm",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("'gpu-farm' does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn cli_moves_data_and_shows_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.wait_healthy().await;
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("m")).unwrap();
    std::fs::write(data.join("m/a.csv"), "x,y\n1,2\n3,4\n").unwrap();
    let source = data.to_str().unwrap();
    let upload = |target: &str, extra: &[&str]| {
        let mut args = vec![
            "datastore",
            "upload",
            "workspaceblobstore",
            source,
            "--target",
            target,
        ];
        args.extend(extra);
        kittiwake(dir.path(), &args)
    };
    let uploaded = stdout(&upload("raw", &[]));
    assert!(uploaded.contains("Uploaded 1 file"), "{uploaded}");
    let again = stdout(&upload("raw", &[]));
    assert!(again.contains("kept 1"), "{again}");
    let stores = stdout(&kittiwake(dir.path(), &["datastore", "list"]));
    assert!(
        stores.contains("workspaceblobstore") && stores.contains("WorkspaceBlob"),
        "{stores}"
    );
    // The upload above went straight into the server's folder, which this machine sees; through
    // the server the same commands move the same bytes.
    let (status, folder) = s
        .call(
            reqwest::Method::GET,
            "/api/kittiwake/v1/datastores/workspaceblobstore/local-folder",
            None,
        )
        .await;
    assert_eq!(status, 200, "{folder}");
    let folder = std::path::PathBuf::from(folder["local_folder"]["path"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(folder.join("raw/m/a.csv")).unwrap(),
        "x,y\n1,2\n3,4\n"
    );
    std::fs::write(data.join("m/a.csv"), "x,y\n1,2\n3,4\n5,6\n").unwrap();
    let replaced = stdout(&upload("raw", &["--overwrite", "--via-server"]));
    assert!(replaced.contains("Uploaded 1 file"), "{replaced}");
    for via in [&[][..], &["--via-server"]] {
        let out = upload("../escape", via);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("Invalid path"),
            "{via:?}: {err}"
        );
    }
    assert!(!folder.parent().unwrap().join("escape").exists());
    for (to, via) in [("direct", None), ("served", Some("--via-server"))] {
        let target = dir.path().join(to);
        let mut args = vec![
            "datastore",
            "download",
            "workspaceblobstore",
            "--prefix",
            "raw",
            "--to",
            target.to_str().unwrap(),
        ];
        args.extend(via);
        stdout(&kittiwake(dir.path(), &args));
        assert_eq!(
            std::fs::read_to_string(target.join("raw/m/a.csv")).unwrap(),
            "x,y\n1,2\n3,4\n5,6\n",
            "{to}"
        );
    }

    let (status, body) = s
        .call(
            reqwest::Method::POST,
            "/api/kittiwake/v1/datasets",
            Some(
                json!({"name": "table", "definition": {"dataset_type": "Tabular",
                "paths": [{"datastore": "workspaceblobstore", "path": "raw/**/*.csv"}],
                "format": {"kind": "delimited", "separator": ",", "header": true}}}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let listed = stdout(&kittiwake(dir.path(), &["dataset", "list"]));
    assert!(
        listed.contains("table") && listed.contains("Tabular"),
        "{listed}"
    );
    let shown: Value = serde_json::from_str(&stdout(&kittiwake(
        dir.path(),
        &["dataset", "show", "table"],
    )))
    .unwrap();
    assert_eq!(shown["files"][0]["path"], "raw/m/a.csv");
    let profile = stdout(&kittiwake(dir.path(), &["dataset", "profile", "table"]));
    assert!(
        profile.contains("3 rows") && profile.contains("int"),
        "{profile}"
    );
    let runs = stdout(&kittiwake(
        dir.path(),
        &["dataset", "runs", "table", "--json"],
    ));
    assert_eq!(runs.trim(), "[]");
    let run_id = s.new_run().await;
    let edges = stdout(&kittiwake(
        dir.path(),
        &["run", "datasets", &run_id, "--json"],
    ));
    assert_eq!(edges.trim(), "[]");
    let out = kittiwake(dir.path(), &["dataset", "show", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not registered"));
}

//! Every kind of bad input gets a clear 4xx with MLflow's error body, and changes nothing.

mod common;

use common::Server;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn code(body: &Value) -> &str {
    body["error_code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn bad_requests_get_clear_client_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.wait_healthy().await;
    let run_id = s.new_run().await;
    let url = |p: &str| format!("{}/api/2.0/mlflow{p}", s.url);

    // Malformed JSON and a non-JSON content type.
    let r = s
        .http
        .post(url("/runs/log-metric"))
        .bearer_auth(&s.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(code(&body), "INVALID_PARAMETER_VALUE");
    assert_eq!(
        common::status(
            s.http
                .post(url("/experiments/create"))
                .bearer_auth(&s.token)
                .header("content-type", "text/plain")
                .body("{\"name\":\"x\"}")
        )
        .await,
        400
    );

    // Wrong types and missing fields.
    let (status, body) = s.post("/experiments/create", json!({"name": 5})).await;
    assert_eq!(
        (status, code(&body)),
        (400, "INVALID_PARAMETER_VALUE"),
        "{body}"
    );
    let (status, body) = s
        .post(
            "/runs/log-metric",
            json!({"run_id": run_id, "key": "m", "value": "abc", "timestamp": 1}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = s
        .post(
            "/runs/log-metric",
            json!({"run_id": run_id, "key": "m", "value": 1}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("timestamp"),
        "{body}"
    );
    let (status, _) = s.post("/experiments/create", json!({})).await;
    assert_eq!(status, 400);

    // NaN and infinities are accepted and come back as MLflow writes them.
    for (i, v) in ["NaN", "Infinity", "-Infinity"].iter().enumerate() {
        let (status, body) = s
            .post(
                "/runs/log-metric",
                json!({"run_id": run_id, "key": format!("special{i}"), "value": v, "timestamp": 1}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, run) = s.get(&format!("/runs/get?run_id={run_id}")).await;
    let values: Vec<&Value> = run["run"]["data"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["value"])
        .collect();
    assert_eq!(values, vec!["NaN", "Infinity", "-Infinity"]);

    // Over-long keys are refused; over-long values are truncated as MLflow does.
    let (status, body) = s
        .post(
            "/runs/log-parameter",
            json!({"run_id": run_id, "key": "k".repeat(251), "value": "v"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("250"), "{body}");
    let (status, _) = s
        .post(
            "/runs/log-parameter",
            json!({"run_id": run_id, "key": "long", "value": "v".repeat(6001)}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, run) = s.get(&format!("/runs/get?run_id={run_id}")).await;
    let long = run["run"]["data"]["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["key"] == "long")
        .unwrap();
    assert_eq!(long["value"].as_str().unwrap().len(), 6000);
    let (status, _) = s
        .post(
            "/runs/log-metric",
            json!({"run_id": run_id, "key": "../escape", "value": 1, "timestamp": 1}),
        )
        .await;
    assert_eq!(status, 400);

    // Re-logging a param: same value is fine, another value is refused and changes nothing.
    assert_eq!(
        s.post(
            "/runs/log-parameter",
            json!({"run_id": run_id, "key": "lr", "value": "0.1"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        s.post(
            "/runs/log-parameter",
            json!({"run_id": run_id, "key": "lr", "value": "0.1"})
        )
        .await
        .0,
        200
    );
    let (status, body) = s
        .post(
            "/runs/log-parameter",
            json!({"run_id": run_id, "key": "lr", "value": "0.2"}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "INVALID_PARAMETER_VALUE"));
    let (status, _) = s.post("/runs/log-batch", json!({"run_id": run_id, "params": [{"key": "lr", "value": "0.3"}], "metrics": [{"key": "lost", "value": 1, "timestamp": 1}]})).await;
    assert_eq!(status, 400);
    let (_, run) = s.get(&format!("/runs/get?run_id={run_id}")).await;
    assert!(
        run["run"]["data"]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["key"] != "lost"),
        "a refused batch wrote a metric"
    );

    // Batch limits.
    let metrics: Vec<Value> = (0..1001)
        .map(|i| json!({"key": "m", "value": i, "timestamp": 1}))
        .collect();
    let (status, body) = s
        .post(
            "/runs/log-batch",
            json!({"run_id": run_id, "metrics": metrics}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("1000"), "{body}");

    // Unknown ids.
    let (status, body) = s
        .get("/runs/get?run_id=0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!((status, code(&body)), (404, "RESOURCE_DOES_NOT_EXIST"));
    let (status, body) = s.get("/experiments/get?experiment_id=999").await;
    assert_eq!((status, code(&body)), (404, "RESOURCE_DOES_NOT_EXIST"));
    let (status, _) = s.get("/experiments/get?experiment_id=abc").await;
    assert_eq!(status, 400);
    let (status, body) = s.get("/experiments/get-by-name?experiment_name=nope").await;
    assert_eq!((status, code(&body)), (404, "RESOURCE_DOES_NOT_EXIST"));
    let (status, _) = s
        .call(
            Method::GET,
            "/api/2.0/mlflow/logged-models/m-0123456789abcdef0123456789abcdef",
            None,
        )
        .await;
    assert_eq!(status, 404);

    // Bad search input.
    for filter in [
        "metrics.a > 1 OR metrics.a < 0",
        "params.x = unquoted",
        "bogus.x = 'a'",
    ] {
        let (status, _) = s
            .post(
                "/runs/search",
                json!({"experiment_ids": ["0"], "filter": filter}),
            )
            .await;
        assert_eq!(status, 400, "{filter}");
    }
    let (status, _) = s
        .post(
            "/runs/search",
            json!({"experiment_ids": ["0"], "max_results": 50001}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .post(
            "/runs/search",
            json!({"experiment_ids": ["0"], "page_token": "!!"}),
        )
        .await;
    assert_eq!(status, 400);

    // An unknown route is a JSON 404, not a crash.
    let (status, body) = s.call(Method::GET, "/api/2.0/mlflow/nope", None).await;
    assert_eq!((status, code(&body)), (404, "RESOURCE_DOES_NOT_EXIST"));
}

#[tokio::test]
async fn artifact_paths_cannot_escape_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.wait_healthy().await;
    let run_id = s.new_run().await;
    let root = format!("{}/api/2.0/mlflow-artifacts/artifacts", s.url);
    let put = |path: String| s.http.put(path).bearer_auth(&s.token).body("x").send();

    let ok = put(format!("{root}/0/{run_id}/artifacts/ok.txt"))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    for evil in [
        format!("{root}/0/{run_id}/artifacts/..%2F..%2F..%2Fescape.txt"),
        format!("{root}/0/{run_id}/artifacts/../../../escape.txt"),
        format!("{root}/%2Fetc%2Fescape.txt"),
        format!("{root}//tmp/escape.txt"),
        format!("{root}/0/not-a-run/artifacts/escape.txt"),
        format!("{root}/0/0123456789abcdef0123456789abcdef/artifacts/escape.txt"),
        format!("{root}/escape.txt"),
    ] {
        let r = put(evil.clone()).await.unwrap();
        assert!(r.status().is_client_error(), "{evil} gave {}", r.status());
    }
    // A symbolic link planted inside the run's folder does not carry writes outside.
    let outside = tempfile::tempdir().unwrap();
    let run_dir = dir
        .path()
        .join(format!(".kittiwake/artifacts/0/{run_id}/artifacts"));
    std::os::unix::fs::symlink(outside.path(), run_dir.join("link")).unwrap();
    let r = put(format!("{root}/0/{run_id}/artifacts/link/escape.txt"))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    let escaped: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.ends_with("escape.txt"))
        .collect();
    assert!(escaped.is_empty(), "files written: {escaped:?}");

    // Reads of paths with '..' are refused too.
    assert_eq!(
        common::status(
            s.http
                .get(format!(
                    "{root}/0/{run_id}/artifacts/..%2F..%2Fmetadata.sqlite"
                ))
                .bearer_auth(&s.token)
        )
        .await,
        400
    );
    assert_eq!(
        common::status(
            s.http
                .get(format!("{root}/0/{run_id}/artifacts/missing.txt"))
                .bearer_auth(&s.token)
        )
        .await,
        404
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn tokens_are_required_and_roles_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.wait_healthy().await;
    let url = format!("{}/api/2.0/mlflow/experiments/search", s.url);

    let r = s.http.post(&url).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(code(&body), "UNAUTHENTICATED");
    assert_eq!(
        common::status(s.http.post(&url).bearer_auth("kw_wrong").json(&json!({}))).await,
        401
    );
    assert_eq!(
        s.http
            .get(format!("{}/health", s.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kittiwake"))
        .args(["token", "create", "--name", "viewer", "--role", "reader"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reader = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(
        common::status(s.http.post(&url).bearer_auth(&reader).json(&json!({}))).await,
        200
    );
    assert_eq!(
        common::status(
            s.http
                .post(format!("{}/api/2.0/mlflow/experiments/create", s.url))
                .bearer_auth(&reader)
                .json(&json!({"name": "x"}))
        )
        .await,
        403
    );
    let bad_role = std::process::Command::new(env!("CARGO_BIN_EXE_kittiwake"))
        .args(["token", "create", "--name", "x", "--role", "emperor"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!bad_role.status.success());
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("reader, contributor or owner"));
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.wait_healthy().await;
    let run_id = s.new_run().await;
    // Announce bodies over the limits and send none of them: the server must answer 413 from the
    // headers alone, without waiting for (or buffering) the body.
    let json_limit = 64 * 1024 * 1024 + 1;
    let answer = declare_body(&s, "POST", "/api/2.0/mlflow/runs/log-batch", json_limit).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("REQUEST_LIMIT_EXCEEDED"), "{answer}");
    let artifact_limit = 50 * 1024 * 1024 * 1024u64 + 1;
    let path = format!("/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts/huge.bin");
    let answer = declare_body(&s, "PUT", &path, artifact_limit).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let listing = std::fs::read_dir(dir.path().join(format!(".kittiwake/artifacts/0/{run_id}")));
    assert!(
        listing.is_err() || listing.unwrap().count() == 0,
        "a refused upload left a file"
    );
}

/// Sends request headers declaring `length` body bytes, then reads the answer.
async fn declare_body(s: &Server, method: &str, path: &str, length: u64) -> String {
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n",
        s.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut answer));
    let n = read.await.unwrap().unwrap();
    String::from_utf8_lossy(&answer[..n]).to_string()
}

//! A write the server acknowledged survives `kill -9`, and concurrent writers never see
//! "database is locked".

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::Server;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_points_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path());
    s.wait_healthy().await;
    let mut runs = Vec::new();
    for _ in 0..6 {
        runs.push(s.new_run().await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for run_id in runs.clone() {
        let (url, token, stop) = (s.url.clone(), s.token.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut acked = 0i64;
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let metrics: Vec<Value> = (0..200)
                    .map(|i| json!({"key": "x", "value": (acked + i) as f64, "timestamp": 1, "step": acked + i}))
                    .collect();
                let sent = http
                    .post(format!("{url}/api/2.0/mlflow/runs/log-batch"))
                    .bearer_auth(&token)
                    .json(&json!({"run_id": run_id, "metrics": metrics}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => acked += 200,
                    Ok(r) => errors.push(format!("{}: {}", r.status(), r.text().await.unwrap_or_default())),
                    Err(_) => break,
                }
            }
            (run_id, acked, errors)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.kill();
    stop.store(true, Ordering::Relaxed);
    let mut results = Vec::new();
    for w in writers {
        results.push(w.await.unwrap());
    }
    let s = Server::start(dir.path());
    s.wait_healthy().await;
    let mut total = 0;
    for (run_id, acked, errors) in results {
        assert!(errors.is_empty(), "writers saw errors: {errors:?}");
        assert!(
            acked > 0,
            "a writer got nothing acknowledged before the kill"
        );
        let (status, body) = s
            .get(&format!(
                "/metrics/get-history?run_id={run_id}&metric_key=x"
            ))
            .await;
        assert_eq!(status, 200);
        let steps: Vec<i64> = body["metrics"]
            .as_array()
            .map(|m| m.iter().map(|p| p["step"].as_i64().unwrap()).collect())
            .unwrap_or_default();
        assert!(
            steps.len() as i64 >= acked,
            "run {run_id}: {} points stored, {acked} acknowledged",
            steps.len()
        );
        assert!(
            (0..acked).all(|i| steps.get(i as usize) == Some(&i)),
            "acknowledged points are missing or out of order"
        );
        total += acked;
    }
    assert!(
        total >= 1000,
        "too little was written to make the test meaningful: {total}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_see_locking_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.wait_healthy().await;
    let mut tasks = Vec::new();
    for w in 0..16 {
        let (url, token) = (s.url.clone(), s.token.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut failures = Vec::new();
            for i in 0..25 {
                let created: Value = http
                    .post(format!("{url}/api/2.0/mlflow/runs/create"))
                    .bearer_auth(&token)
                    .json(&json!({"experiment_id": "0", "run_name": format!("w{w}-{i}")}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let run_id = created["run"]["info"]["run_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let r = http
                    .post(format!("{url}/api/2.0/mlflow/runs/log-batch"))
                    .bearer_auth(&token)
                    .json(
                        &json!({"run_id": run_id, "params": [{"key": "w", "value": w.to_string()}],
                                  "metrics": [{"key": "m", "value": i, "timestamp": 1}]}),
                    )
                    .send()
                    .await
                    .unwrap();
                if r.status() != 200 {
                    failures.push(r.text().await.unwrap());
                }
            }
            failures
        }));
    }
    for t in tasks {
        let failures = t.await.unwrap();
        assert!(failures.is_empty(), "{failures:?}");
    }
    let (_, body) = s
        .post(
            "/runs/search",
            json!({"experiment_ids": ["0"], "max_results": 1000}),
        )
        .await;
    assert_eq!(body["runs"].as_array().unwrap().len(), 400);
}

//! Server-side throughput, measured without a Python client in the way:
//! metric ingest (store and HTTP), reading a 1,000,000-point history, and searching 100,000 runs.
//!
//! Usage: `server-bench path/to/kittiwake` (a release build). Prints one line per figure.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kittiwake_domain::{MetricPoint, MetricSeries, Tag, ViewType, search};
use kittiwake_store::{NewRun, RunQuery, Store};
use serde_json::{Value, json};

const POINTS: usize = 1_000_000;
const BATCH: usize = 10_000;
const RUNS: usize = 100_000;

fn series(start: usize) -> Vec<MetricSeries> {
    vec![MetricSeries {
        key: "loss".into(),
        points: (start..start + BATCH)
            .map(|i| MetricPoint {
                step: i as i64,
                timestamp: 1_700_000_000_000 + i as i64,
                value: 1.0 / (i + 1) as f64,
            })
            .collect(),
    }]
}

async fn new_run(store: &Store, id: &str, exp: i64, name: &str) {
    store
        .create_run(NewRun {
            run_id: id,
            experiment_id: exp,
            run_name: name,
            user_id: "bench",
            start_time: 1,
            tags: &[],
            job: None,
        })
        .await
        .expect("create run")
        .expect("the experiment is active");
}

struct Server {
    child: Child,
    url: String,
    token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(bin: &str, dir: &std::path::Path) -> Server {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(bin)
        .args(["server", "--port", "0", "--data-dir", ".kittiwake"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start kittiwake");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("url")
        .to_string();
    let token = std::fs::read_to_string(dir.join(".kittiwake/admin.token"))
        .expect("token")
        .trim()
        .to_string();
    Server { child, url, token }
}

#[tokio::main]
async fn main() {
    let bin = std::env::args()
        .nth(1)
        .expect("usage: server-bench path/to/kittiwake");
    let bin = std::fs::canonicalize(&bin)
        .expect("kittiwake binary")
        .display()
        .to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join(".kittiwake");
    std::fs::create_dir_all(&data).expect("data dir");
    let store = Store::open_sqlite(&data.join("metadata.sqlite"))
        .await
        .expect("open store");
    let exp = store
        .create_experiment("bench", "mlflow-artifacts:/{id}", &[], 1)
        .await
        .expect("experiment");

    // Ingest straight into the store: 1,000,000 points in calls of 10,000.
    let run = format!("{:032x}", 1u128);
    new_run(&store, &run, exp, "ingest").await;
    let batches: Vec<Vec<MetricSeries>> = (0..POINTS / BATCH).map(|b| series(b * BATCH)).collect();
    let start = Instant::now();
    for b in &batches {
        store.log_metrics(&run, b, &[]).await.expect("log");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "store ingest: {:.0} points/s ({POINTS} points in {:.3} s)",
        POINTS as f64 / secs,
        secs
    );

    let start = Instant::now();
    let (points, _) = store
        .metric_history(&run, "loss", 0, None)
        .await
        .expect("history");
    println!(
        "store history of {} points: {:.1} ms",
        points.len(),
        start.elapsed().as_secs_f64() * 1e3
    );

    // 100,000 runs, each with a metric and a param, for search.
    let start = Instant::now();
    for i in 0..RUNS {
        let id = format!("{:032x}", 1_000_000 + i as u128);
        new_run(&store, &id, exp, &format!("run-{i}")).await;
        let metric = MetricSeries {
            key: "acc".into(),
            points: vec![MetricPoint {
                step: 0,
                timestamp: 1,
                value: (i % 1000) as f64 / 1000.0,
            }],
        };
        let param = Tag::new("opt", if i % 2 == 0 { "adam" } else { "sgd" });
        store
            .log_batch(&id, &[metric], &[param], &[])
            .await
            .expect("log run");
    }
    println!(
        "(setup: {RUNS} runs written in {:.1} s)",
        start.elapsed().as_secs_f64()
    );
    let filter = search::parse_filter(
        "metrics.acc > 0.5 AND params.opt = 'adam'",
        search::Target::Runs,
    )
    .expect("filter");
    let order = search::parse_order_by(&["metrics.acc DESC".to_string()], search::Target::Runs)
        .expect("order");
    for limit in [100, 1000] {
        let query = RunQuery {
            experiment_ids: &[exp],
            filter: &filter,
            order_by: &order,
            view: ViewType::ActiveOnly,
            offset: 0,
            limit,
        };
        store.search_runs(&query).await.expect("warm");
        let start = Instant::now();
        let (found, _) = store.search_runs(&query).await.expect("search");
        println!(
            "store search of {RUNS} runs (metric + param filter, metric order), first {limit}: {:.1} ms ({} returned)",
            start.elapsed().as_secs_f64() * 1e3,
            found.len()
        );
    }
    drop(store);

    // The same through the server process, over HTTP.
    let server = start_server(&bin, dir.path());
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http
            .get(format!("{}/health", server.url))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let created: Value = http
        .post(format!("{}/api/2.0/mlflow/runs/create", server.url))
        .bearer_auth(&server.token)
        .json(&json!({"experiment_id": exp.to_string()}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let http_run = created["run"]["info"]["run_id"]
        .as_str()
        .expect("run id")
        .to_string();
    let bodies: Vec<String> = (0..POINTS / BATCH)
        .map(|b| {
            let start = b * BATCH;
            json!({"scalars": [{"name": "loss",
                "values": (start..start + BATCH).map(|i| 1.0 / (i + 1) as f64).collect::<Vec<_>>(),
                "steps": (start..start + BATCH).collect::<Vec<_>>(),
                "timestamps": (start..start + BATCH).map(|i| 1_700_000_000_000u64 + i as u64).collect::<Vec<_>>()}]})
            .to_string()
        })
        .collect();
    let url = format!("{}/api/kittiwake/v1/runs/{http_run}/metrics", server.url);
    let start = Instant::now();
    for body in bodies {
        let r = http
            .post(&url)
            .bearer_auth(&server.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("post");
        assert!(r.status().is_success(), "ingest failed: {}", r.status());
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "http ingest: {:.0} points/s ({POINTS} points in {:.3} s)",
        POINTS as f64 / secs,
        secs
    );
    let (bytes, secs) = {
        let start = Instant::now();
        let r = http
            .get(format!("{}/api/2.0/mlflow/metrics/get-history", server.url))
            .query(&[("run_id", http_run.as_str()), ("metric_key", "loss")])
            .bearer_auth(&server.token)
            .send()
            .await
            .expect("history");
        let bytes = drain(r).await;
        (bytes, start.elapsed().as_secs_f64())
    };
    println!(
        "http get-history of {POINTS} points: {:.1} ms ({:.1} MB of JSON)",
        secs * 1e3,
        bytes as f64 / 1e6
    );
    let start = Instant::now();
    let r = http
        .get(format!(
            "{}/api/kittiwake/v1/runs/{http_run}/metrics",
            server.url
        ))
        .query(&[("name", "loss")])
        .bearer_auth(&server.token)
        .send()
        .await
        .expect("columns");
    let bytes = drain(r).await;
    println!(
        "http columnar history (SDK) of {POINTS} points: {:.1} ms ({:.1} MB of JSON)",
        start.elapsed().as_secs_f64() * 1e3,
        bytes as f64 / 1e6
    );
    for limit in [100, 1000] {
        let body = json!({"experiment_ids": [exp.to_string()], "filter": "metrics.acc > 0.5 AND params.opt = 'adam'", "order_by": ["metrics.acc DESC"], "max_results": limit});
        let search = || {
            http.post(format!("{}/api/2.0/mlflow/runs/search", server.url))
                .bearer_auth(&server.token)
                .json(&body)
                .send()
        };
        search().await.expect("warm");
        let start = Instant::now();
        let found: Value = search().await.expect("search").json().await.expect("json");
        println!(
            "http search of {RUNS} runs, first {limit}: {:.1} ms ({} returned)",
            start.elapsed().as_secs_f64() * 1e3,
            found["runs"].as_array().map_or(0, Vec::len)
        );
    }
}

/// Reads a response body to the end without keeping it, returning its length: collecting 85 MB
/// into one buffer would measure the client's reallocations, not the server.
async fn drain(mut response: reqwest::Response) -> usize {
    let mut total = 0;
    while let Some(chunk) = response.chunk().await.expect("body") {
        total += chunk.len();
    }
    total
}

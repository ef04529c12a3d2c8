//! A do-nothing MLflow server: answers every request with a canned body (recorded from a real
//! server) and does no work, so a client's speed against it is the most any server allows.
//!
//! Usage: `null-server RESPONSES.json` where the file maps "METHOD /path" to a response body;
//! other requests get `{}`. Prints `listening on http://ADDR` once ready.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::IntoResponse;

async fn answer(
    State(canned): State<Arc<HashMap<String, Bytes>>>,
    req: Request,
) -> impl IntoResponse {
    let key = format!("{} {}", req.method(), req.uri().path());
    // Read the whole request, as a real server does, so the connection stays open for the next.
    let _ = axum::body::to_bytes(req.into_body(), usize::MAX).await;
    let body = canned
        .get(&key)
        .cloned()
        .unwrap_or_else(|| Bytes::from_static(b"{}"));
    ([(header::CONTENT_TYPE, "application/json")], body)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: null-server RESPONSES.json")?;
    let recorded: HashMap<String, String> = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let canned: HashMap<String, Bytes> = recorded
        .into_iter()
        .map(|(k, v)| (k, Bytes::from(v)))
        .collect();
    let app = Router::new()
        .route("/{*path}", axum::routing::any(answer))
        .with_state(Arc::new(canned));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

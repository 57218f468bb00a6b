//! `axum`: an axum `Router` served as a Bulkhead pool worker by `bulkhead_worker::serve` — the
//! whole integration is that one call (`examples/axum/bulkhead.toml` runs it; the e2e test
//! `apps::axum_app_serves_replaces_and_recycles` exercises it).
//!
//! - `GET /` → `hello from axum pid=<pid>`
//! - `POST /echo` → the request body, echoed back with its Content-Type (axum's default 2 MB
//!   body limit applies)
//! - `GET /users/{id}` → JSON `{"id":…,"pid":…}` from a typed route parameter (a non-number
//!   is axum's own 400)
//! - `POST /json` → the JSON object it was sent, with `"pid"` added (bad JSON: axum's 4xx)
//!
//! Built as an example of `bulkhead-worker` (axum is only a dev-dependency, so the SDK itself
//! does not depend on it): `cargo build --release -p bulkhead-worker --example axum`. The same
//! binary serves `protocol = "http"` or `"native"`. Alone, without Bulkhead:
//! `PORT=8081 cargo run -p bulkhead-worker --example axum`.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

async fn hello() -> String {
    format!("hello from axum pid={}\n", std::process::id())
}

async fn echo(headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let content_type = headers.get(CONTENT_TYPE).cloned();
    let content_type = content_type.unwrap_or(HeaderValue::from_static("application/octet-stream"));
    ([(CONTENT_TYPE, content_type)], body)
}

async fn user(Path(id): Path<u64>) -> Json<Value> {
    Json(json!({ "id": id, "pid": std::process::id() }))
}

async fn add_pid(Json(mut object): Json<Map<String, Value>>) -> Json<Map<String, Value>> {
    object.insert("pid".into(), json!(std::process::id()));
    Json(object)
}

fn app() -> Router {
    Router::new()
        .route("/", get(hello))
        .route("/echo", post(echo))
        .route("/users/{id}", get(user))
        .route("/json", post(add_pid))
}

#[tokio::main]
async fn main() {
    if let Err(error) = bulkhead_worker::serve(app()).await {
        eprintln!("axum example: {error}");
        std::process::exit(1);
    }
}

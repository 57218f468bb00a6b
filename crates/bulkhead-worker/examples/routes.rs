//! `routes`: a worker built from a plain `tower::service_fn` closure with two routes, to show
//! that any tower service (an axum `Router` works the same way) becomes a worker in one call.
//!
//! - `GET /` → `hello from routes pid=<pid>`
//! - `POST /echo` → the request body, echoed back (at most 1 MiB)
//! - anything else → 404
//!
//! Run it under Bulkhead (see `examples/README.md`), or alone with `PORT=8081 cargo run -p
//! bulkhead-worker --example routes`.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};

type Body = Full<Bytes>;

async fn app(req: Request<bulkhead_worker::Body>) -> Result<Response<Body>, std::convert::Infallible> {
    let response = match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => text(StatusCode::OK, format!("hello from routes pid={}\n", std::process::id())),
        (&Method::POST, "/echo") => match Limited::new(req.into_body(), 1 << 20).collect().await {
            Ok(body) => Response::new(Full::new(body.to_bytes())),
            Err(error) => text(StatusCode::PAYLOAD_TOO_LARGE, format!("cannot read the body: {error}\n")),
        },
        _ => text(StatusCode::NOT_FOUND, "no such route\n".to_string()),
    };
    Ok(response)
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    response
}

#[tokio::main]
async fn main() {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(ansi).with_target(false).init();
    if let Err(error) = bulkhead_worker::serve(tower::service_fn(app)).await {
        eprintln!("routes: {error}");
        std::process::exit(1);
    }
}

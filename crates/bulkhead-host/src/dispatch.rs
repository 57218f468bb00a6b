//! The host's service: every request is answered by the handler of its route's execute kind.
//!
//! [`handle`] reads the route's facts ([`crate::facts`]) and matches on [`Execute`]: this match is
//! where each execute kind is dispatched, and where a new one adds its arm. A request without
//! facts gets 500 and a log line: it did not come through an `execute` route of the listener.
//!
//! The top of the crate's layering: uses [`crate::cgi`], [`crate::extension`], [`crate::answer`],
//! [`crate::facts`].

use std::convert::Infallible;
use std::sync::Arc;

use bulkhead_worker::Body;
use http::{Request, Response, StatusCode};

use crate::answer::{self, HostBody};
use crate::extension::Extensions;
use crate::facts::{Execute, RouteFacts};
use crate::Host;

/// Answers one request from the listener.
pub async fn handle(
    host: Arc<Host>,
    extensions: Arc<Extensions>,
    req: Request<Body>,
) -> Result<Response<HostBody>, Infallible> {
    let facts = match RouteFacts::from_headers(req.headers()) {
        Ok(facts) => facts,
        Err(why) => {
            tracing::error!("{} {}: refused with 500: {why}", req.method(), req.uri().path());
            return Ok(answer::plain(StatusCode::INTERNAL_SERVER_ERROR));
        }
    };
    let resp = match facts.execute {
        Execute::Cgi => crate::cgi::run(&host, req, facts).await,
        Execute::Extension => crate::extension::answer(extensions, req, facts).await,
    };
    Ok(resp)
}

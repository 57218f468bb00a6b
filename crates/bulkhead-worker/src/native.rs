//! The native-protocol connection handler (`docs/protocol.md`): serves one accepted connection
//! from the listener, many requests multiplexed on it, each in its own task.
//!
//! Called by [`protocol`](crate::protocol) for every connection of a pool with
//! `protocol = "native"`. The framing, windows and batching writer are the shared engine in
//! `bulkhead_proto::native::conn`; this file only turns streams into `http::Request`s for the
//! application's service and its responses back into frames. A stream the listener cancels (the
//! client went away) drops the service's future at once. On drain it sends `GOAWAY`, finishes
//! the streams already started and closes.

use std::future::Future;

use bulkhead_proto::native::conn::{IncomingRequest, Server};
use bulkhead_proto::native::{Hello, RequestHead, ResponseHead};
use bytes::{Buf, Bytes};
use futures_util::FutureExt as _;
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::body::Body;
use crate::BoxError;

/// Headers that describe one hop and never cross to the listener.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

/// Serves native-protocol connections.
#[derive(Debug, Clone, Default)]
pub(crate) struct Native {
    hello: Hello,
}

impl Native {
    /// The future serving `io` until the listener closes it, or until a drain has finished the
    /// streams already started.
    pub(crate) fn serve<I, S, B>(
        &self,
        io: I,
        service: S,
        mut drain: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let hello = self.hello;
        async move {
            let mut server = match Server::handshake(io, hello).await {
                Ok(server) => server,
                Err(error) => {
                    tracing::debug!("native connection ended during the handshake: {error}");
                    return;
                }
            };
            let mut streams = JoinSet::new();
            let mut draining = *drain.borrow();
            if draining {
                server.go_away();
            }
            loop {
                tokio::select! {
                    request = server.accept() => match request {
                        Some(request) => {
                            streams.spawn(serve_stream(request, service.clone()));
                        }
                        None => break,
                    },
                    changed = drain.changed(), if !draining => {
                        if changed.is_err() || *drain.borrow() {
                            draining = true;
                            server.go_away();
                        }
                    }
                    Some(_) = streams.join_next(), if !streams.is_empty() => {}
                }
                if draining && streams.is_empty() && server.open_streams() == 0 {
                    break;
                }
            }
            while streams.join_next().await.is_some() {}
            server.close("the worker closed the connection");
        }
    }
}

/// One request: call the service, stream its response; drop it all if the listener cancels.
async fn serve_stream<S, B>(request: IncomingRequest, service: S)
where
    S: hyper::service::Service<http::Request<Body>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let IncomingRequest { head, body, respond } = request;
    let cancel = respond.cancel_watch();
    let http_request = match to_http_request(head, body) {
        Ok(r) => r,
        Err(message) => {
            respond.fail(&message);
            return;
        }
    };
    let work = async move {
        let response = match service.call(http_request).await {
            Ok(response) => response,
            Err(error) => {
                let error: BoxError = error.into();
                respond.fail(&error.to_string());
                return;
            }
        };
        let (parts, body) = response.into_parts();
        let mut headers: Vec<(Bytes, Bytes)> = parts
            .headers
            .iter()
            .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
            .map(|(name, value)| {
                (Bytes::copy_from_slice(name.as_str().as_bytes()), Bytes::copy_from_slice(value.as_bytes()))
            })
            .collect();
        // What hyper adds on HTTP/1.1: a known length travels, so a response whose size is known
        // does not reach the client chunked.
        if let (Some(len), false) = (body.size_hint().exact(), parts.headers.contains_key(http::header::CONTENT_LENGTH))
        {
            headers.push((Bytes::from_static(b"content-length"), Bytes::from(len.to_string())));
        }
        let head = ResponseHead { status: parts.status.as_u16(), headers };
        if body.is_end_stream() {
            let _ = respond.send_response(head, true);
            return;
        }
        // Errors become `BoxError` (which is `Send`) before the future holds any across an await.
        let mut body = std::pin::pin!(body.map_err(Into::<BoxError>::into));
        // The head leaves in the same write as the first piece of body — waited for when the
        // length is known (the client needs the body anyway), taken if already there when it is
        // not (a stream's head must not wait for its first event). A worker killed right after
        // that write has answered whole (a small page) or at least started its body; it never
        // leaves the listener a head whose body is lost, which the listener, having passed the
        // head on, could only answer by cutting the client's response short.
        let first =
            if body.size_hint().exact().is_some() { Some(body.frame().await) } else { body.frame().now_or_never() };
        let mut send = match first {
            Some(None) => {
                let _ = respond.send_response(head, true);
                return;
            }
            Some(Some(Err(error))) => {
                respond.fail(&error.to_string());
                return;
            }
            Some(Some(Ok(frame))) if frame.is_data() => {
                let chunk = frame.into_data().map(|mut d| d.copy_to_bytes(d.remaining())).unwrap_or_default();
                let last = body.is_end_stream();
                let Ok((mut send, rest)) = respond.send_response_with_data(head, chunk, last) else { return };
                if !rest.is_empty() && send.send_data(rest, last).await.is_err() {
                    return;
                }
                if last {
                    return;
                }
                send
            }
            // Not ready yet (or trailers, which do not cross): the head goes now, the body follows.
            _ => match respond.send_response(head, false) {
                Ok(send) => send,
                Err(_) => return,
            },
        };
        loop {
            // Bind the frame alone, so no body error is held across the sends below.
            let frame = match body.frame().await {
                Some(Ok(frame)) => frame,
                // The body failed part-way: dropping `send` cancels the stream, so the listener
                // aborts the client's connection rather than pass off a truncated body.
                Some(Err(_)) => return,
                None => {
                    let _ = send.finish().await;
                    return;
                }
            };
            if let Ok(mut data) = frame.into_data() {
                let chunk = data.copy_to_bytes(data.remaining());
                drop(data);
                let last = body.is_end_stream();
                if send.send_data(chunk, last).await.is_err() || last {
                    return;
                }
            }
        }
    };
    tokio::select! {
        () = work => {}
        () = cancel.cancelled() => {}
    }
}

fn to_http_request(
    head: RequestHead,
    body: bulkhead_proto::native::conn::RecvStream,
) -> Result<http::Request<Body>, String> {
    let mut builder = http::Request::builder()
        .method(http::Method::from_bytes(&head.method).map_err(|e| format!("bad method: {e}"))?)
        .uri(http::Uri::from_maybe_shared(head.target).map_err(|e| format!("bad request target: {e}"))?)
        .version(http::Version::HTTP_11);
    if let Some(headers) = builder.headers_mut() {
        headers.reserve(head.headers.len());
        for (name, value) in head.headers {
            let name = http::HeaderName::from_bytes(&name).map_err(|e| format!("bad header name: {e}"))?;
            let value = http::HeaderValue::from_maybe_shared(value).map_err(|e| format!("bad header value: {e}"))?;
            headers.append(name, value);
        }
    }
    builder.body(Body::native(body)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;

//! The worker's life from accepting to exit: open the socket, say `Ready`, accept connections
//! and hand each to the protocol handler, then drain (stop accepting, let every connection
//! finish its request in progress) or stop, as the manager or the caller's shutdown future asks.
//!
//! Called only by [`serve_with`](crate::serve_with). It owns every connection task (in a
//! `JoinSet`), so returning — after a drain or a `Stop` — leaves nothing of the worker running.
//! It must never exit the process or read signals: it returns and the application decides.

use std::future::Future;
use std::sync::Arc;

use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::control::{self, ControlEvent};
use crate::counters::{Counters, CountingService};
use crate::listen::{recover_from_accept_error, Listener};
use crate::protocol::ConnectionHandler;
use crate::{BoxError, WorkerEnv, WorkerError};

/// How the accepting phase ended.
enum Next {
    Drain,
    Stop,
}

pub(crate) async fn run<S, B, F>(env: WorkerEnv, service: S, shutdown: F) -> Result<(), WorkerError>
where
    S: tower_service::Service<http::Request<crate::Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: Future<Output = ()>,
{
    let name = env.log_name();
    let handler = ConnectionHandler::for_protocol(env.protocol)?;
    let listener = Listener::open(env.listen)?;
    let counters = Arc::new(Counters::default());
    let service = CountingService::new(TowerToHyperService::new(service), Arc::clone(&counters));

    let (events_tx, mut events) = mpsc::channel(4);
    let control_task = match env.control {
        Some(control) => {
            let mut channel = control::open(control)?;
            control::announce_ready(&mut channel).await?;
            Some(control::spawn(channel, Arc::clone(&counters), events_tx, name.clone()))
        }
        None => None,
    };
    let mut control_open = control_task.is_some();
    tracing::info!("{name}: serving {} on {}", env.protocol.as_str(), listener.describe());

    let graceful = GracefulShutdown::new();
    // Native connections are not hyper connections; they watch this instead.
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let shutdown = std::pin::pin!(shutdown);
    let mut shutdown = shutdown;

    let next = loop {
        tokio::select! {
            event = events.recv(), if control_open => match event {
                Some(ControlEvent::Stop) => break Next::Stop,
                Some(ControlEvent::Drain | ControlEvent::Closed) => break Next::Drain,
                None => control_open = false,
            },
            () = &mut shutdown => break Next::Drain,
            accepted = listener.accept() => match accepted {
                Ok(conn) => {
                    connections.spawn(handler.serve(conn, service.clone(), graceful.watcher(), drain_rx.clone()));
                }
                Err(error) => recover_from_accept_error(error, &name).await?,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    };
    drop(listener);

    if let Next::Drain = next {
        tracing::info!("{name}: draining; no longer accepting connections");
        let _ = drain_tx.send(true);
        let drained = std::pin::pin!(graceful.shutdown());
        let mut drained = drained;
        let mut http_drained = false;
        loop {
            if http_drained && connections.is_empty() {
                break;
            }
            tokio::select! {
                () = &mut drained, if !http_drained => http_drained = true,
                event = events.recv(), if control_open => match event {
                    Some(ControlEvent::Stop) => {
                        tracing::info!("{name}: stopping with {} request(s) in flight", counters.in_flight());
                        break;
                    }
                    Some(_) => {}
                    None => control_open = false,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }
    connections.abort_all();
    if let Some(task) = control_task {
        task.abort();
    }
    tracing::info!("{name}: exiting after {} request(s)", counters.requests());
    Ok(())
}

//! Bulkhead's listener: the front end of DESIGN §2, in its own process (HTTP.sys's role).
//!
//! It owns client connections from accept to close — limits, timeouts, HTTP/1.1 parsing (hyper),
//! routing to a site and route, static files, redirects, per-pool request queues, dispatch to
//! worker processes over their sockets, access and HTTPERR logs — and never loads or runs
//! application code. It is spawned by the manager as the hidden `bulkhead listener` subcommand;
//! the binary wraps the inherited control socket (fd 3) and calls [`run`]. Everything it serves
//! comes from the manager over that channel: the configuration, the listening sockets and the
//! https sites' certificates (`Configure`, `Certificates`), the ACME HTTP-01 challenges to answer
//! (`AcmeChallenges`), workers appearing, draining and going (`WorkerUp`, ...), and `Shutdown`.
//!
//! The crate is a layering: each line below may use the lines under it, never those above, and
//! no two modules import each other, directly or round a circle
//! (the e2e test `layering` in `crates/bulkhead/tests/e2e/layering.rs` pins these lines and
//! checks every import against them):
//!
//! ```text
//! lib            run(control socket)
//! control        apply Configure, sockets, worker news; the Activity/Stats ticker
//! accept         one loop per listening socket, the connection limit; generic over `Listen`
//! conn           one connection (any AsyncRead+AsyncWrite stream): hyper, timers, in-flight
//! request        conformance, limits → site and route → static | redirect | pool (queue, dispatch, retry)
//! state          what they share: route table, pools' queues, log and control senders, phase
//! static_files | queue                  (the response cache will sit here)
//! routing        the route table: site and route choice
//! response       the response body and its layers: queue-slot lease, access-log completion
//! dispatch       the `Transport` trait and the `Worker` handle
//! dispatch/http1 | dispatch/native | dispatch/fastcgi   each giving back its own connections
//! body           request bodies: limits, stalls, per-request progress and fault
//! log | proxy | error | to_manager | inherit                                (leaves)
//! stats | tls | acme_challenge   per-site request counters (fed by log) | rustls configs per
//!                https socket | the ACME HTTP-01 tokens answered on http:// bindings
//! conformance    RFC 9112 head rules hyper leaves to servers (Host, framing), HTTPERR reasons
//! bandwidth      each site's max_bandwidth bucket and the body layer that paces responses
//! ```
//!
//! [`control`] talks to the manager; [`accept`] and [`conn`] own client connections;
//! [`request`] is the request path of DESIGN §2; [`routing`] picks site and route;
//! [`static_files`] serves files; [`queue`] holds each pool's `RequestQueue`; [`response`]
//! stacks the response body's layers; [`dispatch`] reaches workers; [`body`] carries request
//! bodies; [`log`] writes access and HTTPERR logs on one thread; [`stats`] counts requests for
//! the manager; [`proxy`] rewrites headers; [`error`] holds one error enum per boundary;
//! [`to_manager`] is the request path's sender to the manager; [`inherit`] turns inherited fds
//! into sockets; [`tls`] holds the https sockets' rustls configurations (certificates from the
//! manager, chosen by SNI) that [`accept`] wraps connections in; [`acme_challenge`] holds the
//! HTTP-01 tokens the manager's ACME client hands over, which [`request`] answers first;
//! [`conformance`] refuses heads that are ambiguous or malformed for the rules hyper does not
//! check.
//!
//! Like every library of Bulkhead, it reads no environment, argv or signals.
#![deny(unsafe_code)]

pub mod accept;
pub mod acme_challenge;
pub mod bandwidth;
pub mod body;
pub mod cache;
pub mod conformance;
pub mod conn;
pub mod control;
pub mod dispatch;
pub mod error;
pub mod inherit;
pub mod log;
pub mod open_files;
pub mod proxy;
pub mod queue;
pub mod request;
pub mod response;
pub mod routing;
pub mod state;
pub mod static_files;
pub mod stats;
pub mod tls;
pub mod to_manager;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use bulkhead_proto::{Channel, ListenerToManager, ManagerToListener};
use tokio::sync::mpsc;

pub use error::ListenerError;

use control::{Control, Ending};
use log::LogConfig;
use state::Shared;

/// Runs the listener on its control channel (fd 3 of the hidden `bulkhead listener`
/// subcommand) until the manager says `Shutdown` or the channel closes.
///
/// The first message must be `Configure`; the listener answers `Ready` once it accepts on every
/// socket it was given. After `Shutdown` it answers `Drained` and returns `Ok`; if the manager
/// goes away it stops at once and returns `Ok` too (there is no one left to report to).
pub async fn run(control: tokio::net::UnixStream) -> Result<(), ListenerError> {
    let channel: Channel<ListenerToManager, ManagerToListener> = Channel::new(control);
    let (mut sender, mut receiver) = channel.into_split();
    let first = receiver.recv().await?.ok_or(ListenerError::NoConfiguration)?;
    let ManagerToListener::Configure { config_toml, config_path, base_dir, sockets, certificates } = first else {
        return Err(ListenerError::UnexpectedMessage { got: format!("{first:?}") });
    };
    // Start-up errors are logged here, while the channel is still open: the manager kills the
    // listener as soon as it closes, which would leave no trace of why it failed (typically a
    // directory `listener_user` cannot enter).
    let fatal = |e: ListenerError| {
        tracing::error!("listener cannot start: {e}");
        e
    };
    let config = Arc::new(control::parse_config(&config_toml, config_path.as_deref(), &base_dir).map_err(fatal)?);
    let log_dir = config.server.log_dir.clone();
    let (log, log_thread) = log::start(LogConfig::from_config(&config))
        .map_err(|source| fatal(ListenerError::LogDir { path: log_dir, source }))?;

    let (tx, mut outbox) = mpsc::unbounded_channel::<ListenerToManager>();
    let writer = tokio::spawn(async move {
        while let Some(msg) = outbox.recv().await {
            if let Err(e) = sender.send(&msg).await {
                tracing::warn!("cannot send {msg:?} to the manager: {e}");
                break;
            }
            if msg == ListenerToManager::Drained {
                break;
            }
        }
    });

    let table = control::build_table(config.clone(), sockets.clone(), None).await;
    let shared = Shared::new(table, log.clone(), tx.clone());
    let mut ctl = Control::new(shared.clone());
    ctl.install_tls(&config, &sockets, &certificates);
    ctl.apply(&config, &sockets);
    let _ = tx.send(ListenerToManager::Ready);
    let ticker = tokio::spawn(control::activity_ticker(shared.clone()));
    tokio::spawn(cache::scavenger(shared.cache.clone()));
    tokio::spawn(open_files::sweeper());

    let ending = ctl.serve(receiver).await;
    ticker.abort();
    match ending {
        Ok(Ending::Shutdown) => {
            let flush = log.clone();
            let _ = tokio::task::spawn_blocking(move || flush.flush_blocking()).await;
            let _ = tx.send(ListenerToManager::Drained);
        }
        Ok(Ending::ManagerGone) | Err(_) => ctl.abort(),
    }
    drop(tx);
    drop(shared);
    drop(ctl);
    // The writer ends after `Drained`, or once every sender is gone.
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    drop(log);
    drop(log_thread);
    ending.map(|_| ())
}

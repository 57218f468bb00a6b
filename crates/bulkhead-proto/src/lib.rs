//! The vocabulary Bulkhead's processes share, and nothing else.
//!
//! The manager, the listener and the workers never link against each other (DESIGN §7); they
//! meet here. This crate holds:
//! - [`env`]: the names of environment variables and inherited file descriptors that make up
//!   the worker contract (DESIGN §4) and the listener's start-up contract;
//! - [`frame`]: the length-prefixed framing of control messages, checked for size before any
//!   allocation, usable without sockets (so it can be fuzzed);
//! - [`channel`]: a typed [`Channel`](channel::Channel) on a unix stream, where each side can
//!   only send its own message type;
//! - [`messages`]: every message exchanged between manager ↔ listener and manager ↔ worker;
//! - [`host`]: the request headers in which the listener tells the built-in host an `execute`
//!   route's facts (the program, `SCRIPT_NAME`, `PATH_INFO`, addresses), never taken from clients;
//! - [`fdpass`]: handing open fds to another process (`SCM_RIGHTS`), for sockets bound while
//!   the listener runs — the only module with `unsafe`.
//!
//! It must never grow policy: no config parsing, no process spawning, no HTTP.
#![deny(unsafe_code)]

pub mod channel;
pub mod env;
pub mod fdpass;
pub mod frame;
pub mod host;
pub mod messages;
pub mod native;

pub use channel::{Channel, ChannelError, ChannelReceiver, ChannelSender};
pub use messages::*;

//! The native worker protocol (DESIGN §4, `protocol = "native"`, specified in
//! `docs/protocol.md`): length-prefixed binary frames multiplexing many request/response
//! streams over one connection, with per-stream flow control and cancellation.
//!
//! This module is the sans-io codec both sides share: [`Frame`] values encoded into and decoded
//! out of byte buffers, every length checked against the negotiated limits before anything is
//! allocated. It knows nothing of sockets, tasks or HTTP semantics; the listener's dispatcher and
//! the worker SDK drive it. Bodies are [`Bytes`] split off the read buffer, never copied.
//!
//! Written by hand because no maintained crate speaks it: it is Bulkhead's own protocol, and the
//! experiment behind it (anchors/proxy-exp) found the gain in batching, which only a codec that
//! writes many frames into one buffer gives.

pub mod conn;
mod frame;
mod head;

pub use frame::{decode, encode, ErrorCode, Frame, FrameType, Hello, NativeError, FRAME_HEADER_LEN, MAGIC, VERSION};
pub use head::{RequestHead, ResponseHead};

/// Largest frame payload accepted unless the handshake says otherwise.
pub const DEFAULT_MAX_FRAME: u32 = 64 * 1024;
/// Largest encoded header block (request or response head).
pub const DEFAULT_MAX_HEAD: u32 = 64 * 1024;
/// Initial per-stream credit, in bytes of DATA payload, in each direction.
pub const DEFAULT_INITIAL_WINDOW: u32 = 256 * 1024;
/// Streams a worker accepts at once on one connection unless it says otherwise.
pub const DEFAULT_MAX_STREAMS: u32 = 256;

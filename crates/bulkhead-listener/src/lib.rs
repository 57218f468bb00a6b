//! STUB — being written. The front end (DESIGN §2).
#![deny(unsafe_code)]

/// Errors that end the listener process.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("listener control channel: {0}")]
    Control(#[from] bulkhead_proto::ChannelError),
}

/// Runs the listener on its control channel (fd 3 of the hidden `bulkhead listener`
/// subcommand) until the manager says `Shutdown` or the channel closes.
pub async fn run(control: tokio::net::UnixStream) -> Result<(), ListenerError> {
    let _ = control;
    Ok(())
}

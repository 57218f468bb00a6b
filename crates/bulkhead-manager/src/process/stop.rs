//! Stopping a supervised process with a time limit ([`crate::process`]): the graceful signal
//! (SIGTERM) when the child is quiet or half the limit has passed, SIGKILL at the limit.
//! Pure: [`Stop::due`] says which signal is due; [`crate::process::Process::tick_stop`] sends it.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

/// A stop under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    /// SIGTERM at this instant (or earlier once quiet), if not sent yet.
    pub term_at: Option<Instant>,
    /// SIGKILL from this instant on.
    pub kill_at: Instant,
    /// It outlived `kill_at` and got SIGKILL.
    pub forced: bool,
}

impl Stop {
    /// A graceful stop: SIGTERM after half of `limit` (or once quiet), SIGKILL at `limit`.
    pub fn graceful(now: Instant, limit: Duration) -> Stop {
        Stop { term_at: Some(now + limit / 2), kill_at: now + limit, forced: false }
    }

    /// SIGTERM now, SIGKILL at `limit` (a service being stopped).
    pub fn terminate(now: Instant, limit: Duration) -> Stop {
        Stop { term_at: Some(now), kill_at: now + limit, forced: false }
    }

    /// The graceful step was taken another way (the listener's control channel closed, which
    /// it obeys by exiting): SIGKILL at `limit` only.
    pub fn kill_after(now: Instant, limit: Duration) -> Stop {
        Stop { term_at: None, kill_at: now + limit, forced: false }
    }

    /// SIGKILL from now on (an orphan being cleaned up: the caller kills it at once).
    pub fn immediate(now: Instant) -> Stop {
        Stop { term_at: None, kill_at: now, forced: false }
    }

    /// The signal due at `now`, recording that it was sent. `quiet`: the child has nothing left
    /// to finish, so SIGTERM need not wait for half the limit.
    pub fn due(&mut self, now: Instant, quiet: bool) -> Option<Signal> {
        match self.term_at {
            Some(t) if now >= t || quiet => {
                self.term_at = None;
                Some(Signal::SIGTERM)
            }
            _ if now >= self.kill_at => {
                self.forced = true;
                Some(Signal::SIGKILL)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn term_when_quiet_or_at_half_the_limit_then_kill_at_the_limit() {
        let now = Instant::now();
        let limit = Duration::from_secs(10);
        let mut s = Stop::graceful(now, limit);
        assert_eq!(s.due(now, false), None);
        assert_eq!(s.due(now + Duration::from_secs(5), false), Some(Signal::SIGTERM));
        assert_eq!(s.due(now + Duration::from_secs(6), true), None, "SIGTERM is sent once");
        assert!(!s.forced);
        assert_eq!(s.due(now + limit, false), Some(Signal::SIGKILL));
        assert!(s.forced);

        let mut quiet = Stop::graceful(now, limit);
        assert_eq!(quiet.due(now, true), Some(Signal::SIGTERM), "no connection left: no need to wait");
    }

    #[test]
    fn a_service_gets_sigterm_at_once_and_the_listener_only_sigkill() {
        let now = Instant::now();
        let limit = Duration::from_secs(5);
        let mut service = Stop::terminate(now, limit);
        assert_eq!(service.due(now, false), Some(Signal::SIGTERM));
        assert_eq!(service.due(now, false), None);
        let mut listener = Stop::kill_after(now, limit);
        assert_eq!(listener.due(now, true), None, "its graceful step was closing its channel");
        assert_eq!(listener.due(now + limit, false), Some(Signal::SIGKILL));
    }
}

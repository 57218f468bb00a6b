//! The supervisor's side of the registered services ([`crate::process::Service`]): started
//! after the listener, restarted by their back-off policy when they die while the server
//! serves, stopped (SIGTERM, then SIGKILL at their `stop_limit`) at shutdown, every step an
//! event. One code path for every service; nothing here knows what a service does. Never
//! blocks: spawning returns at once and exits come back as `Event::Exited`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::Instant;

use bulkhead_config::units::format_duration;
use nix::unistd::Pid;

use super::{Phase, Supervisor};
use crate::event::Event;
use crate::process::{Process, Role, Stop};
use crate::spawn::{self, ExitStatus, SpawnSpec};

impl Supervisor {
    /// Starts every registered service (after the listener, at start-up).
    pub(super) fn start_services(&mut self) {
        for index in 0..self.services.len() {
            self.start_service(index, Instant::now());
        }
    }

    fn start_service(&mut self, index: usize, now: Instant) {
        let Some(service) = self.services.get_mut(index) else { return };
        service.restarts.allow_now();
        let name = service.spec.name.clone();
        let stdin = match File::open("/dev/null") {
            Ok(f) => f,
            Err(e) => {
                let delay = service.restarts.failed(now);
                let line =
                    format!("service {name:?}: cannot open /dev/null: {e}; retrying in {}", format_duration(delay));
                self.events.error(None, line);
                return;
            }
        };
        let spec = SpawnSpec {
            program: service.spec.program.clone(),
            argv: service.spec.argv.clone(),
            env: self.options.env.clone(),
            listen_pid: false,
            directory: None,
            fds: vec![(stdin.as_raw_fd(), 0)],
            credentials: None,
            exec_via_fd: false,
        };
        let events = self.tx.clone();
        match spawn::spawn(&spec, move |pid| {
            let _ = events.send(Event::Exited { pid });
        }) {
            Ok(spawned) => {
                service.process = Some(Process::new(spawned.pid, now));
                service.exec_report = Some(spawned.exec_report);
                service.starts += 1;
                self.children.insert(spawned.pid, Role::Service { index });
                self.events.info(None, format!("service {name:?} started (pid {})", spawned.pid));
            }
            Err(e) => {
                let delay = service.restarts.failed(now);
                self.events.error(None, format!("service {name:?}: {e}; retrying in {}", format_duration(delay)));
            }
        }
    }

    pub(super) fn on_service_exit(&mut self, index: usize, pid: Pid, status: ExitStatus) {
        let Some(service) = self.services.get_mut(index) else { return };
        let now = Instant::now();
        let lived = service.process.take().map_or(std::time::Duration::MAX, |p| p.started.elapsed());
        let failed_exec = service.exec_report.take().and_then(|r| spawn::exec_failure(&r));
        let name = service.spec.name.clone();
        if self.phase != Phase::Serving {
            self.events.info(None, format!("service {name:?} (pid {pid}) stopped ({status})"));
            self.check_shutdown_progress();
            return;
        }
        let (what, delay) = match failed_exec {
            Some(f) => (format!("could not start: {}", f.describe(None)), service.restarts.failed(now)),
            None => (status.to_string(), service.restarts.died(now, lived, service.spec.quick_death)),
        };
        self.events
            .warn(None, format!("service {name:?} (pid {pid}) {what}; restarting it in {}", format_duration(delay)));
        if delay.is_zero() {
            self.start_service(index, now);
        }
    }

    /// Restarts services whose back-off is over; drives their stop timers.
    pub(super) fn tick_services(&mut self, now: Instant) {
        for index in 0..self.services.len() {
            let service = &mut self.services[index];
            match service.process.as_mut() {
                Some(p) => p.tick_stop(now, false),
                None if self.phase == Phase::Serving && service.restarts.due(now) => self.start_service(index, now),
                None => {}
            }
        }
    }

    /// Stops every service: SIGTERM now, SIGKILL at its `stop_limit`.
    pub(super) fn stop_services(&mut self, now: Instant) {
        for service in &mut self.services {
            if let Some(p) = service.process.as_mut() {
                p.begin_stop(Stop::terminate(now, service.spec.stop_limit));
                p.tick_stop(now, false);
                self.events.info(None, format!("stopping service {:?} (pid {})", service.spec.name, p.pid));
            }
        }
    }

    /// No service process is left.
    pub(super) fn services_stopped(&self) -> bool {
        self.services.iter().all(|s| s.process.is_none())
    }
}

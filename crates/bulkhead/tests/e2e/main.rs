//! End-to-end tests of the real `bulkhead` binary (issue #2 item 10): each test starts
//! `bulkhead serve` on port 0 in a temp dir, talks to it over loopback with a byte-exact client
//! and real worker processes (the tests' own Python app in `tests/apps/`, or the built-in demo
//! app), and stops every process it started by pid: one still running after a bounded wait
//! fails the test, naming its pid and command line (`support::procs::fail_on_survivors`). A
//! test that cannot run here says why with `skip!(Reason::Machine|Missing(…))`
//! (`support::skip`), which `.ci/run` lists, failing on a `Missing` one.
//!
//! One test binary (so the suite links once on a small machine), one module per area. No
//! test asserts on timing; every loop is bounded in count and time. Run with
//! `cargo test -p bulkhead --test e2e`.

mod support;

mod acme;
mod admin;
mod apps;
mod architecture;
mod bandwidth;
mod cache;
mod cgi;
mod cli;
mod compression;
mod conformance;
mod crash;
mod dashboard;
mod extensions;
mod fastcgi;
mod handover;
mod health;
mod http2;
mod keepalive;
mod layering;
mod lifecycle;
mod limits;
mod logs;
mod native;
mod pool_states;
mod pools;
mod preflight;
mod refusals;
mod reload;
mod route_match;
mod routing;
mod site_content;
mod slow_clients;
mod static_content;
mod static_files;
mod streaming;
mod tls;

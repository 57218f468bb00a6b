//! Bulkhead's built-in host worker (DESIGN §4 `kind = "host"`, §7). In this branch only its
//! extension loader ([`extension`]); the crate itself (CGI, the `bulkhead worker` subcommand)
//! comes from wip-host, whose lib.rs replaces this one at the merge.

pub mod extension;

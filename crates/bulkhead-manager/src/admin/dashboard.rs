//! The dashboard (IIS Manager's place): one HTML page with its CSS and JavaScript inline, no
//! build step, served at `GET /` by the admin endpoint ([`PAGE`]), and the TCP endpoint's login
//! form ([`LOGIN`]).
//!
//! The page polls `GET /status` and `GET /events` every two seconds and draws the sites (with
//! bindings and requests per second), the pools (state, queue, workers with pid, uptime,
//! requests and memory) and the recent events; its buttons `POST /pools/NAME/recycle|stop|
//! start`. It talks only to the endpoint that served it, with the cookie the login set; it
//! loads nothing from anywhere else. Stable hooks for tests and scripts: each pool row has
//! `data-pool`, each button `data-pool` + `data-action`, each worker pid cell the class `pid`.

/// The dashboard page.
pub const PAGE: &str = include_str!("dashboard.html");

/// The TCP endpoint's login form (`<!--error-->` is replaced by a message after a wrong token).
pub const LOGIN: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bulkhead — sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:15px system-ui,sans-serif;max-width:26rem;margin:15vh auto;padding:0 1rem;color:#1d2433}
input{font:inherit;padding:.4rem;width:100%;box-sizing:border-box;margin:.5rem 0}
button{font:inherit;padding:.4rem 1rem}.err{color:#b3261e}</style></head>
<body><h1>Bulkhead</h1><p>Enter the admin token (<code>server.admin_token</code>).</p>
<!--error-->
<form method="post" action="/login"><input type="password" name="token" autofocus autocomplete="current-password">
<button type="submit">Sign in</button></form></body></html>
"#;

//! `execute = "cgi"`: runs a route's program as a CGI/1.1 script (RFC 3875) for one request.
//!
//! The listener resolved the program (a regular file under the route's root, path checks done)
//! and sent its facts ([`crate::facts`]). Here: a file whose name starts with `nph-` is refused
//! with 500 and a log line (non-parsed-header scripts would write the HTTP status line and
//! framing themselves, which the native protocol cannot carry); otherwise the program is started
//! directly (no shell, no arguments: the ISINDEX command line of RFC 3875 4.4 is not built) with
//! the [`environment`] of the request, in its own directory, as the leader of a new process group
//! ([`group`]). A program that may not be executed (`EACCES`: no execute bit, a directory on the
//! way) is **403**, one whose format the kernel refuses (`ENOEXEC`, e.g. no `#!` line) or any
//! other spawn failure **500** — each logged with the path.
//!
//! The request body is written to its stdin by a task, chunk by chunk as it arrives (never
//! collected), and stdin closed at its end; a program that exits without reading it is fine.
//! Its stdout is read for the [`head`] (502 when malformed or when the program ends before it,
//! naming the program), then streamed to the client through a bounded channel, so a slow client
//! slows the reads. Its stderr lines go to the host's log at warn level (`CGI /path: stderr:
//! …`), which the manager appends to the pool's log.
//!
//! The time limit (`cgi_timeout`) runs from the start to the program's exit: when it passes,
//! the whole process group is killed (SIGKILL) and the client gets **504** if no header was
//! sent yet, else its connection is cut. A client that goes away (the listener cancels the
//! stream, and the response body or this future is dropped) kills the group at once too; so
//! does the host stopping. A non-zero exit status is logged.

pub mod environment;
pub mod group;
pub mod head;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use bulkhead_worker::Body;
use bytes::{Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

use self::group::Running;
use crate::answer::{self, ChannelBody, HostBody};
use crate::facts::RouteFacts;
use crate::Host;

/// Read size from a program's stdout.
const READ_CHUNK: usize = 16 * 1024;
/// Chunks of output queued for a slow client, at most.
const CHANNEL_DEPTH: usize = 4;

/// Runs the route's program for `req`.
pub async fn run(host: &Host, req: Request<Body>, facts: RouteFacts) -> Response<HostBody> {
    let Some(program) = facts.program.clone() else {
        tracing::error!("{}: an execute = \"cgi\" request without a program; answering 500", req.uri().path());
        return answer::plain(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let path: Arc<Path> = Arc::from(program.filename.as_path());
    let shown = path.display();
    if program.filename.file_name().is_some_and(|n| n.as_encoded_bytes().starts_with(b"nph-")) {
        tracing::error!("CGI {shown}: non-parsed-header (nph-) programs are not supported; answering 500");
        return answer::plain(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let deadline = Instant::now() + facts.timeout;
    let (parts, body) = req.into_parts();
    let mut cmd = Command::new(&program.filename);
    cmd.env_clear()
        .envs(environment::build(&parts, &facts, &host.program_path))
        .current_dir(program.filename.parent().unwrap_or(Path::new("/")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut running = match Running::spawn(cmd) {
        Ok(running) => running,
        Err(e) => return spawn_failed(&path, &e),
    };
    if let Some(stdin) = running.child.stdin.take() {
        running.stdin_task = Some(tokio::spawn(feed(stdin, body, path.clone())).abort_handle());
    }
    if let Some(stderr) = running.child.stderr.take() {
        tokio::spawn(log_stderr(stderr, path.clone()));
    }
    let Some(mut stdout) = running.child.stdout.take() else {
        return answer::plain(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let (head, used) = loop {
        match head::parse(&buf) {
            Ok(Some(done)) => break done,
            Ok(None) => {}
            Err(why) => {
                tracing::error!("CGI {shown}: {why}; answering 502");
                return answer::plain(StatusCode::BAD_GATEWAY);
            }
        }
        buf.reserve(READ_CHUNK);
        match tokio::time::timeout_at(deadline, stdout.read_buf(&mut buf)).await {
            Err(_) => {
                running.kill_group();
                tracing::error!(
                    "CGI {shown}: no response header within cgi_timeout {:?}; killed its process group {}, answering 504",
                    facts.timeout,
                    running.pgid()
                );
                return answer::plain(StatusCode::GATEWAY_TIMEOUT);
            }
            Ok(Ok(0)) => {
                let status = running.reap(deadline, &path).await;
                let how = status.map(|s| format!(" ({s})")).unwrap_or_default();
                let what = if buf.is_empty() { "without any output" } else { "inside its CGI header block" };
                tracing::error!("CGI {shown}: ended{how} {what}; answering 502");
                return answer::plain(StatusCode::BAD_GATEWAY);
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!("CGI {shown}: reading its output failed: {e}; answering 502");
                return answer::plain(StatusCode::BAD_GATEWAY);
            }
        }
    };
    let _ = buf.split_to(used);
    let (tx, body) = ChannelBody::new(CHANNEL_DEPTH);
    tokio::spawn(pump(stdout, buf.freeze(), running, tx, deadline, facts.timeout, path));
    let (parts, ()) = head.into_parts();
    Response::from_parts(parts, body.boxed_unsync())
}

/// The answer for a program that could not be started.
fn spawn_failed(path: &Path, e: &std::io::Error) -> Response<HostBody> {
    let shown = path.display();
    match (e.kind(), e.raw_os_error()) {
        (std::io::ErrorKind::PermissionDenied, _) => {
            tracing::error!("CGI {shown}: cannot be executed by this host's user (permission denied: is its execute bit set?); answering 403");
            answer::plain(StatusCode::FORBIDDEN)
        }
        (_, Some(libc::ENOEXEC)) => {
            tracing::error!("CGI {shown}: not a program the kernel can run (no #! line?); answering 500");
            answer::plain(StatusCode::INTERNAL_SERVER_ERROR)
        }
        (std::io::ErrorKind::NotFound, _) => {
            tracing::error!(
                "CGI {shown}: cannot be started: {e} (gone, or its #! interpreter is missing); answering 500"
            );
            answer::plain(StatusCode::INTERNAL_SERVER_ERROR)
        }
        _ => {
            tracing::error!("CGI {shown}: cannot be started: {e}; answering 500");
            answer::plain(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// Writes the request body to the program's stdin as it arrives, then closes it. A program
/// that stops reading (it answered without its input, or exited) ends this quietly.
async fn feed(mut stdin: ChildStdin, mut body: Body, path: Arc<Path>) {
    while let Some(frame) = body.frame().await {
        let data = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
            Err(e) => {
                tracing::debug!("CGI {}: the request body failed: {e}", path.display());
                return;
            }
        };
        if stdin.write_all(&data).await.is_err() {
            return;
        }
    }
    let _ = stdin.shutdown().await;
}

/// The program's stderr, line by line, into the host's log (and so the pool's).
async fn log_stderr(stderr: ChildStderr, path: Arc<Path>) {
    let mut lines = BufReader::new(stderr).split(b'\n');
    while let Ok(Some(line)) = lines.next_segment().await {
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        tracing::warn!("CGI {}: stderr: {}", path.display(), String::from_utf8_lossy(line));
    }
}

/// Streams the program's output after its header block to the response body, until its end, the
/// time limit or the client going away (a dropped body: `tx` closes); then reaps the program or
/// kills its group (the guard).
async fn pump(
    mut stdout: ChildStdout,
    first: Bytes,
    mut running: Running,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, bulkhead_worker::BoxError>>,
    deadline: Instant,
    limit: std::time::Duration,
    path: Arc<Path>,
) {
    let shown = path.display();
    let timed_out = |running: &Running| {
        tracing::error!(
            "CGI {shown}: still running after cgi_timeout {limit:?}; killed its process group {}, cutting the response",
            running.pgid()
        );
    };
    if !first.is_empty() && !matches!(tokio::time::timeout_at(deadline, tx.send(Ok(first))).await, Ok(Ok(()))) {
        return;
    }
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        buf.reserve(READ_CHUNK);
        tokio::select! {
            read = stdout.read_buf(&mut buf) => match read {
                Ok(0) => break,
                Ok(_) => {
                    let chunk = buf.split().freeze();
                    match tokio::time::timeout_at(deadline, tx.send(Ok(chunk))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return, // the client went away: the guard kills the group
                        Err(_) => {
                            timed_out(&running);
                            return;
                        }
                    }
                }
                Err(e) => {
                    tracing::error!("CGI {shown}: reading its output failed: {e}");
                    let _ = tx.try_send(Err(e.into()));
                    return;
                }
            },
            () = tx.closed() => {
                tracing::debug!("CGI {shown}: the client went away; killing its process group {}", running.pgid());
                return;
            }
            () = tokio::time::sleep_until(deadline) => {
                timed_out(&running);
                running.kill_group();
                let _ = tx.try_send(Err("the CGI program's time limit passed".into()));
                return;
            }
        }
    }
    drop(tx);
    match running.reap(deadline, &path).await {
        Some(status) if !status.success() => tracing::warn!("CGI {shown}: {status}"),
        Some(_) => {}
        None => timed_out(&running),
    }
}

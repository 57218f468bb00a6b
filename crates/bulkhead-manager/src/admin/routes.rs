//! The admin API's routing: method + path → a supervisor [`Command`] or a history read.
//!
//! Called by [`super::serve_connection`] for every request; the endpoint list is in
//! [`crate::admin`]'s documentation. Request bodies are limited to [`MAX_BODY`]; nothing here
//! touches server state except through the supervisor's reply.

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};

use super::{ask, auth, dashboard, response, Command, Context, PoolAction, Reply};
use crate::config_store::{line_diff, Source};

/// Largest request body (a config file).
pub const MAX_BODY: usize = 1 << 20;

pub(crate) async fn handle(req: Request<Incoming>, ctx: &Context) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    if let Some(token) = &ctx.token {
        if req.method() == Method::POST && path == "/login" {
            return form_login(req, token).await;
        }
        if req.method() == Method::GET && path == "/" {
            if let Some(given) = auth::form_value(&query, "token") {
                return login_answer(&given, token);
            }
        }
        if !auth::authorized(req.headers(), token) {
            if req.method() == Method::GET && path == "/" {
                return html(StatusCode::OK, dashboard::LOGIN.to_string());
            }
            return response(Reply::error(401, "missing or wrong token: send Authorization: Bearer TOKEN"));
        }
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().clone();
    let reply = match (&method, segments.as_slice()) {
        (&Method::GET, []) => return html(StatusCode::OK, dashboard::PAGE.to_string()),
        (&Method::GET, ["status"]) => ask(ctx, Command::Status).await,
        (&Method::GET, ["pools"]) => pools_only(ask(ctx, Command::Status).await),
        (&Method::POST, ["pools", name, action]) => match parse_action(action) {
            Some(action) => ask(ctx, |reply| Command::Pool { name: name.to_string(), action, reply }).await,
            None => Reply::error(404, format!("unknown pool action {action:?}: use start, stop or recycle")),
        },
        (&Method::POST, ["listener", "restart"]) => ask(ctx, Command::ListenerRestart).await,
        (&Method::POST, ["cache", "purge"]) => match body_text(req).await.and_then(|t| purge_request(&t)) {
            Ok((site, prefix)) => ask(ctx, |reply| Command::CachePurge { site, prefix, reply }).await,
            Err(r) => r,
        },
        (&Method::GET, ["events"]) => {
            let limit = auth::form_value(&query, "limit").and_then(|l| l.parse().ok()).unwrap_or(100);
            ask(ctx, |reply| Command::Events { limit, reply }).await
        }
        (&Method::GET, ["metrics"]) => ask(ctx, Command::Metrics).await,
        (&Method::GET, ["config"]) => ask(ctx, Command::GetConfig).await,
        (&Method::PUT, ["config"]) => match body_text(req).await {
            Ok(text) if flag(&query, "dry_run") => ask(ctx, |reply| Command::Validate { text, reply }).await,
            Ok(text) => {
                ask(ctx, |reply| Command::Apply {
                    text: Some(text),
                    source: Source::Api,
                    note: None,
                    reply: Some(reply),
                })
                .await
            }
            Err(r) => r,
        },
        (&Method::POST, ["config", "reload"]) => {
            ask(ctx, |reply| Command::Apply { text: None, source: Source::Api, note: None, reply: Some(reply) }).await
        }
        (&Method::GET, ["config", "history"]) => history(ctx).await,
        (&Method::GET, ["config", "history", n]) => match n.parse::<u64>() {
            Ok(n) => version(ctx, n),
            Err(_) => Reply::error(400, format!("{n:?} is not a version number")),
        },
        (&Method::GET, ["config", "diff"]) => diff(ctx, &query).await,
        (&Method::POST, ["config", "rollback", n]) => match n.trim_start_matches('v').parse::<u64>() {
            Ok(version) => ask(ctx, |reply| Command::Rollback { version, reply }).await,
            Err(_) => Reply::error(400, format!("{n:?} is not a version number")),
        },
        (_, ["status" | "pools" | "events" | "metrics" | "config" | "listener" | "cache", ..]) => {
            Reply::error(405, format!("{method} is not allowed on {path}"))
        }
        _ => Reply::error(404, format!("no such endpoint: {method} {path} (see GET / or the README)")),
    };
    response(reply)
}

fn parse_action(s: &str) -> Option<PoolAction> {
    match s {
        "start" => Some(PoolAction::Start),
        "stop" => Some(PoolAction::Stop),
        "recycle" => Some(PoolAction::Recycle),
        _ => None,
    }
}

fn flag(query: &str, name: &str) -> bool {
    auth::form_value(query, name).is_some_and(|v| v == "1" || v == "true")
}

fn html(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(text)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// The answer to a login: the cookie and a redirect to `/`, or the form again.
fn login_answer(given: &str, token: &str) -> Response<Full<Bytes>> {
    if auth::same(given, token) {
        Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header("location", "/")
            .header("set-cookie", auth::set_cookie(token))
            .body(Full::new(Bytes::new()))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    } else {
        html(StatusCode::UNAUTHORIZED, dashboard::LOGIN.replace("<!--error-->", "<p class=err>Wrong token.</p>"))
    }
}

/// `POST /login` with a form body (handled before the token check).
async fn form_login(req: Request<Incoming>, token: &str) -> Response<Full<Bytes>> {
    match body_text(req).await {
        Ok(body) => login_answer(&auth::form_value(&body, "token").unwrap_or_default(), token),
        Err(r) => response(r),
    }
}

async fn body_text(req: Request<Incoming>) -> Result<String, Reply> {
    let collected = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| Reply::error(413, format!("cannot read the request body (at most {MAX_BODY} bytes): {e}")))?;
    String::from_utf8(collected.to_bytes().to_vec()).map_err(|_| Reply::error(400, "the body is not UTF-8 text"))
}

/// The body of `POST /cache/purge`: empty, or a JSON object with optional `site` and `prefix`
/// strings (a prefix starts with `/`); anything else is a 400 naming what is wrong.
fn purge_request(text: &str) -> Result<(Option<String>, Option<String>), Reply> {
    if text.trim().is_empty() {
        return Ok((None, None));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Reply::error(400, format!("the body is not JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(Reply::error(400, "the body must be a JSON object: {\"site\": \"...\", \"prefix\": \"/...\"}"));
    };
    if let Some(key) = object.keys().find(|k| *k != "site" && *k != "prefix") {
        return Err(Reply::error(400, format!("unknown key {key:?}: the body takes \"site\" and \"prefix\"")));
    }
    let field = |key: &str| match object.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Reply::error(400, format!("{key:?} must be a string, not {other}"))),
    };
    let (site, prefix) = (field("site")?, field("prefix")?);
    if prefix.as_deref().is_some_and(|p| !p.starts_with('/')) {
        return Err(Reply::error(400, format!("\"prefix\" must start with \"/\": {:?}", prefix.unwrap_or_default())));
    }
    Ok((site, prefix))
}

fn pools_only(reply: Reply) -> Reply {
    match reply.body {
        super::ReplyBody::Json(v) if reply.status == 200 => {
            Reply::json(200, v.get("pools").cloned().unwrap_or(serde_json::Value::Array(Vec::new())))
        }
        _ => reply,
    }
}

/// The running version (from `GET /config`), if known.
async fn current_version(ctx: &Context) -> Option<u64> {
    match ask(ctx, Command::GetConfig).await.body {
        super::ReplyBody::Json(v) => v.get("version").and_then(|v| v.as_u64()),
        _ => None,
    }
}

async fn history(ctx: &Context) -> Reply {
    let current = current_version(ctx).await;
    let list: Vec<serde_json::Value> = ctx
        .store
        .list()
        .into_iter()
        .map(|v| {
            let mut j = serde_json::to_value(&v).unwrap_or_default();
            j["current"] = serde_json::Value::Bool(Some(v.version) == current);
            j
        })
        .collect();
    Reply::json(200, serde_json::Value::Array(list))
}

fn version(ctx: &Context, n: u64) -> Reply {
    let Some(meta) = ctx.store.list().into_iter().find(|v| v.version == n) else {
        return Reply::error(404, format!("no version {n} in the history (see `bulkhead config history`)"));
    };
    match ctx.store.text(n) {
        Ok(text) => {
            let mut j = serde_json::to_value(&meta).unwrap_or_default();
            j["text"] = serde_json::Value::String(text);
            Reply::json(200, j)
        }
        Err(e) => Reply::error(404, e.to_string()),
    }
}

async fn diff(ctx: &Context, query: &str) -> Reply {
    let list = ctx.store.list();
    let parse = |name: &str| auth::form_value(query, name).map(|v| v.trim_start_matches('v').parse::<u64>());
    let to = match parse("to") {
        Some(Ok(v)) => v,
        Some(Err(_)) => return Reply::error(400, "`to` is not a version number"),
        None => match current_version(ctx).await.or(list.last().map(|v| v.version)) {
            Some(v) => v,
            None => return Reply::error(404, "the history is empty"),
        },
    };
    let from = match parse("from") {
        Some(Ok(v)) => v,
        Some(Err(_)) => return Reply::error(400, "`from` is not a version number"),
        None => match list.iter().rev().find(|v| v.version < to) {
            Some(v) => v.version,
            None => return Reply::error(404, format!("no version before {to} in the history")),
        },
    };
    let (a, b) = match (ctx.store.text(from), ctx.store.text(to)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Reply::error(404, e.to_string()),
    };
    let changes = semantic_changes(&a, &b, &ctx.base_dir);
    Reply::json(200, serde_json::json!({ "from": from, "to": to, "diff": line_diff(&a, &b, 3), "changes": changes }))
}

/// What applying `b` over `a` would change, or `null` when either no longer validates here
/// (a directory it names is gone, say).
fn semantic_changes(a: &str, b: &str, base: &std::path::Path) -> serde_json::Value {
    match (bulkhead_config::parse(a, "from", base), bulkhead_config::parse(b, "to", base)) {
        (Ok(a), Ok(b)) => {
            serde_json::Value::Array(bulkhead_config::diff(&a, &b).iter().map(|c| describe_change(c).into()).collect())
        }
        _ => serde_json::Value::Null,
    }
}

/// One change as an operator reads it.
pub fn describe_change(c: &bulkhead_config::Change) -> String {
    use bulkhead_config::Change;
    match c {
        Change::ServerChanged { fields, restart_needed } => format!(
            "[server] {} changed{}",
            fields.join(", "),
            if *restart_needed { " (takes effect after a restart)" } else { "" }
        ),
        Change::LimitsChanged => "[limits] changed".into(),
        Change::CacheChanged => "[cache] changed".into(),
        Change::AcmeChanged => "[acme] changed".into(),
        Change::PoolAdded { name } => format!("pool {name:?} added"),
        Change::PoolChanged { name, recycle_needed, fields } => format!(
            "pool {name:?}: {} changed{}",
            fields.join(", "),
            if *recycle_needed { "; its workers are recycled" } else { "" }
        ),
        Change::BindingAdded { key, .. } => format!("listening on {key}"),
        Change::SiteAdded { name } => format!("site {name:?} added"),
        Change::SiteChanged { name } => format!("site {name:?} changed"),
        Change::SiteRemoved { name } => format!("site {name:?} removed"),
        Change::BindingRemoved { key } => format!("no longer listening on {key}"),
        Change::PoolRemoved { name } => format!("pool {name:?} removed; its workers drain and stop"),
    }
}

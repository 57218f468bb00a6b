//! The shape of the config file — which keys each table has and what type each value is —
//! and the walk that checks a parsed TOML tree against it before serde sees it.
//!
//! serde stops at the first unknown key or wrong type; this walk finds all of them, each with
//! its own position, suggests the key the operator probably meant (edit distance against the
//! keys of that table, or the table where the key belongs), and repairs the tree (unknown
//! keys dropped, mistyped values replaced by a placeholder) so serde and the semantic checks
//! can still run on the rest. Called only by [`crate::parse`]. The shapes here must match
//! [`crate::raw`] field for field; a unit test holds them together.

use std::borrow::Cow;
use std::ops::Range;

use toml::de::{DeArray, DeInteger, DeTable, DeValue};
use toml::Spanned;

use crate::keypath::KeyPath;

/// What a value in the file must be.
#[derive(Debug)]
pub(crate) enum Shape {
    Str,
    /// A whole number from 0 to the given maximum.
    Uint(u64),
    Bool,
    /// A string, or an integer read as its decimal text: durations (`"90s"`, `0`), sizes
    /// (`"256KiB"`, `4096`), percentages. The text says what is expected.
    Text(&'static str),
    Array(&'static Shape),
    /// A string, or an array of strings: a `match` condition's patterns.
    Patterns,
    Table(&'static [Field]),
    /// A table with keys of the operator's choosing (pool names, env names, extensions).
    Map(&'static Shape),
}

/// One known key of a table.
#[derive(Debug)]
pub(crate) struct Field {
    pub name: &'static str,
    pub shape: Shape,
    pub required: bool,
}

const fn opt(name: &'static str, shape: Shape) -> Field {
    Field { name, shape, required: false }
}

const fn req(name: &'static str, shape: Shape) -> Field {
    Field { name, shape, required: true }
}

const DURATION: Shape = Shape::Text("a duration like \"90s\", \"20m\" or \"29h\"");
const SIZE: Shape = Shape::Text("a size with a unit, like \"256KiB\", \"30MiB\" or \"1GiB\" (0 may be written bare)");
const U16: Shape = Shape::Uint(u16::MAX as u64);
const U32: Shape = Shape::Uint(u32::MAX as u64);
const U64: Shape = Shape::Uint(u64::MAX);
const STRINGS: Shape = Shape::Array(&Shape::Str);

pub(crate) const SERVER: &[Field] = &[
    opt("state_dir", Shape::Str),
    opt("log_dir", Shape::Str),
    opt("admin_socket", Shape::Str),
    opt("listener_user", Shape::Str),
    opt("max_history", U32),
    opt("admin_listen", Shape::Str),
    opt("admin_token", Shape::Str),
];

pub(crate) const LIMITS: &[Field] = &[
    opt("max_connections", U64),
    opt("max_connections_per_ip", U64),
    opt("connection_timeout", DURATION),
    opt("header_wait_timeout", DURATION),
    opt("min_bytes_per_sec", U64),
    opt("min_bytes_grace", DURATION),
    opt("keepalive_park_after", DURATION),
    opt("max_request_bytes", U64),
    opt("max_field_length", U64),
    opt("max_url_segment_length", U64),
    opt("max_url_segments", U64),
    opt("max_body", SIZE),
    opt("queue_timeout", DURATION),
    opt("http2_max_concurrent_streams", U32),
    opt("http2_stream_window", SIZE),
    opt("http2_connection_window", SIZE),
    opt("http2_max_pending_accept_reset_streams", U32),
    opt("http2_max_local_error_reset_streams", U32),
];

pub(crate) const CACHE: &[Field] =
    &[opt("enabled", Shape::Bool), opt("max_memory", SIZE), opt("max_item", SIZE), opt("scavenge_after", DURATION)];

pub(crate) const TLS: &[Field] = &[opt("cert", Shape::Str), opt("key", Shape::Str), opt("acme", Shape::Str)];

pub(crate) const ACME: &[Field] =
    &[opt("directory", Shape::Str), opt("ca_file", Shape::Str), opt("renew_before", DURATION)];

pub(crate) const SITE_LOG: &[Field] =
    &[opt("format", Shape::Str), opt("rollover", Shape::Str), opt("max_size", SIZE), opt("enabled", Shape::Bool)];

pub(crate) const MATCH: &[Field] = &[
    opt("method", Shape::Patterns),
    opt("host", Shape::Patterns),
    opt("headers", Shape::Map(&Shape::Patterns)),
    opt("arguments", Shape::Map(&Shape::Patterns)),
    opt("source", Shape::Patterns),
    opt("scheme", Shape::Str),
];

pub(crate) const ROUTE: &[Field] = &[
    req("path", Shape::Str),
    opt("match", Shape::Table(MATCH)),
    opt("return", U16),
    opt("body", Shape::Str),
    opt("location", Shape::Str),
    opt("strip_prefix", Shape::Bool),
    opt("root", Shape::Str),
    opt("pool", Shape::Str),
    opt("redirect", Shape::Str),
    opt("status", U16),
    opt("default_documents", STRINGS),
    opt("directory_browsing", Shape::Bool),
    opt("hidden_segments", STRINGS),
    opt("compress", Shape::Bool),
    opt("precompressed", Shape::Bool),
    opt("handlers", Shape::Map(&Shape::Str)),
    opt("execute", Shape::Str),
    opt("library", Shape::Str),
    opt("filters", STRINGS),
    opt("cgi_timeout", DURATION),
    opt("headers", Shape::Map(&Shape::Str)),
];

pub(crate) const SITE: &[Field] = &[
    req("name", Shape::Str),
    req("bindings", STRINGS),
    opt("tls", Shape::Table(TLS)),
    opt("redirect_http", Shape::Bool),
    opt("hsts", Shape::Str),
    opt("max_connections", U64),
    opt("max_bandwidth", Shape::Text("a rate like \"50MiB/s\", or 0 for unlimited")),
    opt("log", Shape::Table(SITE_LOG)),
    opt("routes", Shape::Array(&Shape::Table(ROUTE))),
    opt("mime_types", Shape::Map(&Shape::Str)),
    opt("error_pages", Shape::Map(&Shape::Str)),
];

pub(crate) const RECYCLE: &[Field] = &[
    opt("every", DURATION),
    opt("requests", U64),
    opt("schedule", STRINGS),
    opt("memory", SIZE),
    opt("virtual_memory", SIZE),
    opt("overlapped", Shape::Bool),
];

pub(crate) const HEALTH: &[Field] =
    &[opt("ping_interval", DURATION), opt("ping_timeout", DURATION), opt("path", Shape::Str)];

pub(crate) const RAPID_FAIL: &[Field] =
    &[opt("enabled", Shape::Bool), opt("max_crashes", U32), opt("interval", DURATION)];

pub(crate) const ORPHAN: &[Field] = &[opt("enabled", Shape::Bool), opt("action", STRINGS)];

pub(crate) const CPU: &[Field] = &[opt("limit", U32), opt("action", Shape::Str), opt("reset_interval", DURATION)];

pub(crate) const CGROUP_LIMITS: &[Field] =
    &[opt("memory", SIZE), opt("cpu", Shape::Text("a percentage of one core like \"150%\"")), opt("pids", U64)];

pub(crate) const POOL: &[Field] = &[
    opt("kind", Shape::Str),
    opt("command", STRINGS),
    opt("connect", Shape::Str),
    opt("protocol", Shape::Str),
    opt("socket", Shape::Str),
    opt("directory", Shape::Str),
    opt("env", Shape::Map(&Shape::Str)),
    opt("user", Shape::Str),
    opt("group", Shape::Str),
    opt("start", Shape::Str),
    opt("processes", U32),
    opt("concurrency", U32),
    opt("queue_length", U32),
    opt("idle_timeout", DURATION),
    opt("startup_time_limit", DURATION),
    opt("shutdown_time_limit", DURATION),
    opt("response_timeout", DURATION),
    opt("request_buffering", Shape::Bool),
    opt("recycle", Shape::Table(RECYCLE)),
    opt("health", Shape::Table(HEALTH)),
    opt("rapid_fail", Shape::Table(RAPID_FAIL)),
    opt("orphan", Shape::Table(ORPHAN)),
    opt("cpu", Shape::Table(CPU)),
    opt("limits", Shape::Table(CGROUP_LIMITS)),
];

pub(crate) const ROOT: &[Field] = &[
    opt("server", Shape::Table(SERVER)),
    opt("limits", Shape::Table(LIMITS)),
    opt("acme", Shape::Table(ACME)),
    opt("cache", Shape::Table(CACHE)),
    opt("sites", Shape::Array(&Shape::Table(SITE))),
    opt("pools", Shape::Map(&Shape::Table(POOL))),
];

/// Every table, as an operator would name it, for "this key belongs in …" hints.
const TABLES: &[(&str, &[Field])] = &[
    ("the top level", ROOT),
    ("[server]", SERVER),
    ("[limits]", LIMITS),
    ("[acme]", ACME),
    ("[cache]", CACHE),
    ("[[sites]]", SITE),
    ("a site's tls", TLS),
    ("a site's log", SITE_LOG),
    ("a route", ROUTE),
    ("a route's match", MATCH),
    ("[pools.NAME]", POOL),
    ("a pool's recycle", RECYCLE),
    ("a pool's health", HEALTH),
    ("a pool's rapid_fail", RAPID_FAIL),
    ("a pool's orphan", ORPHAN),
    ("a pool's cpu", CPU),
    ("a pool's limits", CGROUP_LIMITS),
];

/// One unknown key, wrong type or missing key.
#[derive(Debug)]
pub(crate) struct Problem {
    pub path: KeyPath,
    pub span: Range<usize>,
    pub message: String,
}

/// Checks the whole document against [`ROOT`], repairing it so it deserializes.
pub(crate) fn check(doc: &mut Spanned<DeTable<'_>>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let span = doc.span();
    table(ROOT, doc.get_mut(), span, &KeyPath::default(), &mut problems);
    problems
}

/// Checks `value` against `shape`. On a wrong type, reports it and returns false without
/// touching the value (the caller drops or replaces it); problems inside a value of the right
/// type are reported and repaired in place.
fn walk(shape: &Shape, value: &mut Spanned<DeValue<'_>>, path: &KeyPath, out: &mut Vec<Problem>) -> bool {
    let span = value.span();
    let ok = match (shape, value.get_mut()) {
        (Shape::Str, DeValue::String(_)) | (Shape::Bool, DeValue::Boolean(_)) => true,
        (Shape::Text(_), DeValue::String(_)) | (Shape::Patterns, DeValue::String(_)) => true,
        (Shape::Patterns, DeValue::Array(items)) => {
            for (i, v) in items.iter_mut().enumerate() {
                if !walk(&Shape::Str, v, &path.index(i), out) {
                    let s = v.span();
                    *v = Spanned::new(s, DeValue::String(Cow::Borrowed("")));
                }
            }
            true
        }
        (Shape::Text(_), DeValue::Integer(i)) => {
            let text = integer(i).map(|n| n.to_string());
            match text {
                Some(t) => {
                    *value.get_mut() = DeValue::String(Cow::Owned(t));
                    true
                }
                None => false,
            }
        }
        (Shape::Uint(max), DeValue::Integer(i)) => integer(i).is_some_and(|n| n <= *max),
        (Shape::Array(item), DeValue::Array(items)) => {
            for (i, v) in items.iter_mut().enumerate() {
                if !walk(item, v, &path.index(i), out) {
                    let s = v.span();
                    *v = Spanned::new(s.clone(), placeholder(item, s));
                }
            }
            true
        }
        (Shape::Table(fields), DeValue::Table(t)) => {
            table(fields, t, span.clone(), path, out);
            true
        }
        (Shape::Map(item), DeValue::Table(t)) => {
            let mut bad = Vec::new();
            for (k, v) in t.iter_mut() {
                if !walk(item, v, &path.key(k.get_ref()), out) {
                    bad.push(k.get_ref().to_string());
                }
            }
            for k in bad {
                t.remove(k.as_str());
            }
            true
        }
        _ => false,
    };
    if !ok {
        out.push(Problem {
            path: path.clone(),
            span,
            message: format!("expected {}, found {}", expected(shape, path), found(value.get_ref())),
        });
    }
    ok
}

/// Checks one table with known keys: unknown keys, each known value, required keys.
fn table(fields: &[Field], t: &mut DeTable<'_>, span: Range<usize>, path: &KeyPath, out: &mut Vec<Problem>) {
    let mut drop = Vec::new();
    for (k, v) in t.iter_mut() {
        let name = k.get_ref().as_ref();
        match fields.iter().find(|f| f.name == name) {
            None => {
                out.push(Problem { path: path.key(name), span: k.span(), message: unknown_key(name, fields) });
                drop.push((name.to_string(), None));
            }
            Some(f) => {
                if !walk(&f.shape, v, &path.key(name), out) {
                    drop.push((name.to_string(), f.required.then(|| v.span())));
                }
            }
        }
    }
    for (name, replace) in drop {
        match replace {
            Some(s) => {
                if let (Some(f), Some(v)) = (fields.iter().find(|f| f.name == name), t.get_mut(name.as_str())) {
                    *v = Spanned::new(s.clone(), placeholder(&f.shape, s));
                }
            }
            None => {
                t.remove(name.as_str());
            }
        }
    }
    let missing: Vec<&Field> = fields.iter().filter(|f| f.required && !t.contains_key(f.name)).collect();
    for f in missing {
        out.push(Problem {
            path: path.key(f.name),
            span: span.clone(),
            message: format!("missing key `{}`: expected {}", f.name, expected(&f.shape, &path.key(f.name))),
        });
        t.insert(
            Spanned::new(span.clone(), Cow::Borrowed(f.name)),
            Spanned::new(span.clone(), placeholder(&f.shape, span.clone())),
        );
    }
}

/// A value of the right shape standing in for a wrong one, so the rest can be checked.
/// Errors about it are suppressed by [`crate::parse`] (its path already has a problem).
fn placeholder<'i>(shape: &Shape, span: Range<usize>) -> DeValue<'i> {
    match shape {
        Shape::Str | Shape::Text(_) | Shape::Patterns => DeValue::String(Cow::Borrowed("")),
        Shape::Uint(_) => DeValue::Integer(DeInteger::default()),
        Shape::Bool => DeValue::Boolean(false),
        Shape::Array(_) => DeValue::Array(DeArray::default()),
        Shape::Map(_) => DeValue::Table(DeTable::default()),
        Shape::Table(fields) => {
            let mut t = DeTable::default();
            for f in fields.iter().filter(|f| f.required) {
                t.insert(
                    Spanned::new(span.clone(), Cow::Borrowed(f.name)),
                    Spanned::new(span.clone(), placeholder(&f.shape, span.clone())),
                );
            }
            DeValue::Table(t)
        }
    }
}

/// A non-negative integer's value, in any radix TOML allows.
fn integer(i: &DeInteger<'_>) -> Option<u64> {
    u64::from_str_radix(i.as_str(), i.radix()).ok()
}

/// What a shape expects, in an operator's words.
fn expected(shape: &Shape, path: &KeyPath) -> String {
    match shape {
        Shape::Str => "a string".into(),
        Shape::Uint(max) => format!("a whole number from 0 to {max}"),
        Shape::Bool => "true or false".into(),
        Shape::Text(what) => (*what).into(),
        Shape::Array(Shape::Table(_)) => {
            format!("an array of tables, written [[{path}]] (or {path} = [{{ … }}, …])")
        }
        Shape::Array(item) => format!("an array of {}", plural(item)),
        Shape::Patterns => "a pattern string or an array of them, like \"GET\" or [\"GET\", \"HEAD\"]".into(),
        Shape::Table(_) => format!("a table, written [{path}] (or {path} = {{ … }})"),
        Shape::Map(item) => format!("a table of {}", plural(item)),
    }
}

fn plural(shape: &Shape) -> &'static str {
    match shape {
        Shape::Str => "strings",
        Shape::Uint(_) => "whole numbers",
        Shape::Bool => "booleans",
        Shape::Text(_) => "values",
        Shape::Patterns => "patterns",
        Shape::Array(_) => "arrays",
        Shape::Table(_) | Shape::Map(_) => "tables",
    }
}

/// The value as found, briefly: `the string "4"`, `the integer -1`, `a table`.
fn found(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) if s.chars().count() > 40 => "a string".into(),
        DeValue::String(s) => format!("the string {s:?}"),
        DeValue::Integer(i) => format!("the integer {i}"),
        DeValue::Float(f) => format!("the number {f}"),
        DeValue::Boolean(b) => format!("{b}"),
        DeValue::Datetime(d) => format!("the date-time {d}"),
        DeValue::Array(_) => "an array".into(),
        DeValue::Table(_) => "a table".into(),
    }
}

/// The message for an unknown key: the closest known key of this table, or the table the
/// key belongs to, or else the list of known keys.
fn unknown_key(name: &str, fields: &[Field]) -> String {
    if let Some(best) = closest(name, fields.iter().map(|f| f.name)) {
        return format!("unknown key; did you mean `{best}`?");
    }
    let elsewhere: Vec<&str> =
        TABLES.iter().filter(|(_, fs)| fs.iter().any(|f| f.name == name)).map(|(table, _)| *table).collect();
    if !elsewhere.is_empty() {
        return format!("unknown key here; `{name}` is a key of {}", elsewhere.join(" and of "));
    }
    let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
    format!("unknown key; expected one of: {}", known.join(", "))
}

/// The known key nearest to `name`, if near enough to be a typo: equal ignoring case and
/// `_`/`-`, or within an edit distance of about a third of its length (at most 3).
pub(crate) fn closest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let norm = |s: &str| s.chars().filter(|c| *c != '_' && *c != '-').collect::<String>().to_lowercase();
    let n = norm(name);
    let mut best: Option<(usize, &str)> = None;
    for k in known {
        let d = if norm(k) == n { 0 } else { edit_distance(name, k) };
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, k));
        }
    }
    let limit = (name.chars().count() / 3).clamp(1, 3);
    best.filter(|(d, _)| *d <= limit).map(|(_, k)| k)
}

/// Levenshtein distance, counting characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;

//! One route of a site → [`Route`]: its path, what it does (static files, a pool, a redirect,
//! or a fixed `return` answer) and its `match` conditions.
//!
//! Called by [`super::site`] for each entry of `routes`, which then refuses a route that an
//! earlier one with the same path would always answer first. Refused here: a route with none
//! or several of `root`, `pool`, `redirect`, `return`; `body` or `location` without `return`,
//! `location` with a status other than 3xx, `body` on a 204 or 304; `strip_prefix` on any route
//! but a pool's; `filters` on any route but an extension's, or naming a file twice or one that
//! cannot be read; a `match` that is empty or holds an empty list, an unknown key (by the schema
//! walk), a method that is not an HTTP token, a host pattern with characters no host has, a
//! header name that is not a token, a source that is not an address or CIDR block, a scheme
//! other than http or https; response `headers` are checked by `content`. Warned about: a 3xx `return` without `location`, a source block
//! with bits set past its prefix, a scheme the site has no binding for, `strip_prefix` on `/`.

use crate::pattern::{Cidr, PatternSet, SourceSet};

use super::*;

const EXACTLY_ONE: &str =
    "a route needs exactly one of `root` (static files), `pool` (an application), `redirect` or `return` (a fixed answer)";

pub(super) fn route(
    c: &mut Checker<'_>,
    key: &str,
    r: &RawRoute,
    pools: &BTreeMap<String, Pool>,
    bindings: &[Binding],
) -> Option<Route> {
    let k = |f: &str| format!("{key}.{f}");
    if !r.path.starts_with('/') {
        c.err(k("path"), format!("{:?} must start with \"/\"", r.path));
        return None;
    }
    let path = if r.path.len() > 1 { r.path.trim_end_matches('/').to_string() } else { r.path.clone() };
    let conditions = r.conditions.as_ref().and_then(|m| conditions(c, &k("match"), m, bindings));
    let action = action(c, key, r, pools)?;
    extras(c, key, r, &path, &action);
    let headers = super::content::headers(c, &k("headers"), &r.headers);
    Some(Route { path, conditions, action, headers })
}

/// What the route does: the one of `root`, `pool`, `redirect`, `return` it names.
fn action(c: &mut Checker<'_>, key: &str, r: &RawRoute, pools: &BTreeMap<String, Pool>) -> Option<RouteAction> {
    let k = |f: &str| format!("{key}.{f}");
    let check_pool = |c: &mut Checker<'_>, field: &str, name: &str| -> Option<PoolKind> {
        let found = pools.get(name).map(|p| p.kind);
        if found.is_none() {
            let hint = closest(name, pools.keys().map(String::as_str)).map(|n| format!("; did you mean {n:?}?"));
            let known: Vec<String> = pools.keys().map(|n| format!("{n:?}")).collect();
            let known = if known.is_empty() {
                "; no pools are defined".into()
            } else {
                format!(" (pools: [{}])", known.join(", "))
            };
            c.err(k(field), format!("pool {name:?} is not defined{known}{}", hint.unwrap_or_default()));
        }
        found
    };
    if r.status.is_some() && r.redirect.is_none() {
        c.warn(k("status"), "is only used by redirect routes (a return route's status is its `return` value)");
    }
    if r.hidden_segments.is_some() && (r.root.is_none() || r.pool.is_some()) {
        c.warn(k("hidden_segments"), "is only used by static routes (`root` without `pool`)");
    }
    for (field, set) in [("compress", r.compress.is_some()), ("precompressed", r.precompressed.is_some())] {
        if set && (r.root.is_none() || r.pool.is_some()) {
            c.warn(k(field), "is only used by static routes (`root` without `pool`)");
        }
    }
    let action = match (&r.root, &r.pool, &r.redirect) {
        _ if r.return_status.is_some() => return_route(c, key, r)?,
        (None, None, Some(to)) => {
            let status = r.status.unwrap_or(302);
            if ![301, 302, 303, 307, 308].contains(&status) {
                c.err(k("status"), format!("{status} is not a redirect status; expected 301, 302, 303, 307 or 308"));
            }
            if to.is_empty() {
                c.err(k("redirect"), "is empty; expected a path like \"/new\" or a URL like \"https://example.com/\"");
            }
            RouteAction::Redirect { to: to.clone(), status }
        }
        (Some(root), None, None) => {
            let root = c.directory(&k("root"), root);
            let hidden_segments = match &r.hidden_segments {
                Some(list) => hidden_segments(c, &k("hidden_segments"), list),
                None => DEFAULT_HIDDEN_SEGMENTS.iter().map(|s| s.to_string()).collect(),
            };
            let mut handlers = BTreeMap::new();
            for (ext, pool) in &r.handlers {
                let field = format!("handlers.{}", quote_key(ext));
                if check_pool(c, &field, pool) == Some(PoolKind::Host) {
                    c.err(
                        k(&field),
                        format!("pool {pool:?} is a \"host\" pool, which runs only what a route names with execute (no program is run by its file name's extension); give the programs a route of their own: {{ path = \"/cgi-bin\", root = \"…\", pool = {pool:?}, execute = \"cgi\" }}"),
                    );
                }
                let ext = ext.to_ascii_lowercase();
                handlers.insert(if ext.starts_with('.') { ext } else { format!(".{ext}") }, pool.clone());
            }
            RouteAction::Static(StaticRoute {
                root,
                default_documents: r
                    .default_documents
                    .clone()
                    .unwrap_or_else(|| vec!["index.html".into(), "index.htm".into()]),
                directory_browsing: r.directory_browsing,
                hidden_segments,
                handlers,
                compress: r.compress.unwrap_or(true),
                precompressed: r.precompressed.unwrap_or(true),
            })
        }
        (root, Some(pool), None) => {
            let kind = check_pool(c, "pool", pool);
            pool_route(c, key, r, root.as_deref(), pool, kind)
        }
        _ => {
            c.err(key, EXACTLY_ONE);
            return None;
        }
    };
    Some(action)
}

const FILTERS_ONLY_AROUND_AN_EXTENSION: &str = "runs only around an extension: filters belong to routes with execute = \"extension\" (in a pool of kind \"host\"); remove it here";

/// `filters = ["PATH.so", …]`: only with `execute = "extension"` (filters run around an
/// extension's handler in the host worker; nothing else would run them, so anywhere else they
/// are refused, not ignored); each a readable file, none twice.
fn filters(c: &mut Checker<'_>, key: &str, list: Option<&[String]>, execute: Option<Execute>) -> Vec<PathBuf> {
    let Some(list) = list else { return Vec::new() };
    if execute != Some(Execute::Extension) {
        c.err(key, FILTERS_ONLY_AROUND_AN_EXTENSION);
        return Vec::new();
    }
    let mut out: Vec<PathBuf> = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        let path = c.readable_file(&format!("{key}[{i}]"), text, "a readable filter library (.so)");
        if out.contains(&path) {
            c.err(
                format!("{key}[{i}]"),
                format!("{} is listed twice; each filter runs once per request", path.display()),
            );
        }
        out.push(path);
    }
    out
}

/// A route with `pool`: plain (the pool gets the request), or with `execute` for a `host` pool
/// (`cgi`: every file under `root` is a CGI program; `extension`: the route's `library`, with
/// its `filters`). Lockdown, as IIS's Web Service Extensions: a host pool runs only what a route
/// names with `execute`, so a route to a host pool without it is refused, and so is
/// `execute` on any other kind of pool.
fn pool_route(
    c: &mut Checker<'_>,
    key: &str,
    r: &RawRoute,
    root: Option<&str>,
    pool: &str,
    kind: Option<PoolKind>,
) -> RouteAction {
    let k = |f: &str| format!("{key}.{f}");
    let execute = r
        .execute
        .as_deref()
        .and_then(|e| c.one_of(&k("execute"), e, &[("cgi", Execute::Cgi), ("extension", Execute::Extension)]));
    match (execute, kind) {
        (Some(Execute::Cgi), Some(kind)) if kind != PoolKind::Host => c.err(
            k("execute"),
            format!("pool {pool:?} is not a \"host\" pool: only the built-in host (kind = \"host\") runs CGI programs; add a pool with kind = \"host\" and name it here"),
        ),
        (Some(Execute::Extension), Some(kind)) if kind != PoolKind::Host => c.err(
            k("execute"),
            format!("pool {pool:?} is not a \"host\" pool: only the built-in host (kind = \"host\") loads extension libraries; add a pool with kind = \"host\" and name it here"),
        ),
        (None, Some(PoolKind::Host)) if r.execute.is_none() => c.err(
            k("pool"),
            format!("pool {pool:?} is a \"host\" pool, which runs nothing a route does not name: add execute = \"cgi\" (and root, the directory of the programs) or execute = \"extension\" (and library, the .so file)"),
        ),
        _ => {}
    }
    if execute.is_some() && r.strip_prefix.is_some() {
        c.err(k("strip_prefix"), "does not apply to an execute route: the program is found from the path after the prefix, and SCRIPT_NAME keeps the prefix; remove it");
    }
    let root = match (root, execute) {
        (Some(root), Some(Execute::Cgi)) => Some(c.directory(&k("root"), root)),
        (None, Some(Execute::Cgi)) => {
            c.err(key, "execute = \"cgi\" needs root, the directory the CGI programs are in");
            None
        }
        (Some(_), Some(Execute::Extension)) => {
            c.err(
                k("root"),
                "does not apply to an extension route: its `library` answers every request under the path; remove root",
            );
            None
        }
        (root, _) => root.map(|p| c.path(p)),
    };
    let library = match (&r.library, execute) {
        (Some(lib), Some(Execute::Extension)) => {
            Some(c.readable_file(&k("library"), lib, "a readable extension library (.so)"))
        }
        (None, Some(Execute::Extension)) => {
            c.err(key, "execute = \"extension\" needs library, the extension's .so file");
            None
        }
        (Some(lib), _) => {
            c.warn(k("library"), "is only used with execute = \"extension\"");
            Some(c.path(lib))
        }
        (None, _) => None,
    };
    let cgi_timeout = match (&r.cgi_timeout, execute) {
        (Some(t), Some(Execute::Cgi)) => {
            c.nonzero_duration(&k("cgi_timeout"), t, "every CGI program would be killed as it starts")
        }
        (Some(_), _) => {
            c.err(k("cgi_timeout"), "is the time limit of a CGI program; it applies only with execute = \"cgi\"");
            DEFAULT_CGI_TIMEOUT
        }
        (None, _) => DEFAULT_CGI_TIMEOUT,
    };
    RouteAction::Pool(PoolRoute {
        pool: pool.to_string(),
        strip_prefix: r.strip_prefix == Some(true),
        root,
        execute,
        library,
        filters: filters(c, &k("filters"), r.filters.as_deref(), execute),
        cgi_timeout,
    })
}

/// `return = STATUS` with `body` or `location`; `None` when it also names another action.
fn return_route(c: &mut Checker<'_>, key: &str, r: &RawRoute) -> Option<RouteAction> {
    let k = |f: &str| format!("{key}.{f}");
    if r.root.is_some() || r.pool.is_some() || r.redirect.is_some() {
        c.err(key, EXACTLY_ONE);
        return None;
    }
    let status = r.return_status.unwrap_or(200);
    if !(200..=999).contains(&status) {
        c.err(
            k("return"),
            format!("{status} is not a status a route can answer with; expected 200 to 999 (1xx are interim responses, never the answer to a request)"),
        );
    }
    let redirect = (300..=399).contains(&status);
    if let Some(location) = &r.location {
        if !redirect {
            c.err(k("location"), format!("is sent only with a redirect, and return = {status} is not 3xx; use return = 301, 302, 303, 307 or 308, or remove location"));
        } else if location.is_empty() {
            c.err(k("location"), "is empty; expected a path like \"/new\" or a URL like \"https://example.com/\"");
        } else if location.chars().any(char::is_control) {
            c.err(k("location"), "contains a control character (a newline?), which no header can carry");
        }
    } else if redirect {
        c.warn(k("return"), format!("return = {status} without location: clients get a redirect that names no target; add location = \"/new\""));
    }
    if r.body.is_some() && matches!(status, 204 | 304) {
        c.err(k("body"), format!("a {status} response never has a body; remove body"));
    }
    Some(RouteAction::Return(ReturnRoute { status, body: r.body.clone(), location: r.location.clone() }))
}

/// The keys that belong to one kind of route only: `body` and `location` to `return`,
/// `strip_prefix` and `filters` to `pool` (`filters` further to extension routes: [`filters`]).
fn extras(c: &mut Checker<'_>, key: &str, r: &RawRoute, path: &str, action: &RouteAction) {
    let k = |f: &str| format!("{key}.{f}");
    if r.return_status.is_none() {
        if r.body.is_some() {
            c.err(k("body"), "is the body of a `return` answer, and this route has no return; add return = 200 (or another status) or remove body");
        }
        if r.location.is_some() {
            let hint = if r.redirect.is_some() { " (a redirect route's target is its `redirect`)" } else { "" };
            c.err(
                k("location"),
                format!(
                    "goes with a 3xx `return`, and this route has no return; add return = 302 or remove location{hint}"
                ),
            );
        }
    }
    if r.filters.is_some() && !matches!(action, RouteAction::Pool(_)) {
        c.err(k("filters"), FILTERS_ONLY_AROUND_AN_EXTENSION);
    }
    match (r.strip_prefix, action) {
        (None, _) => {}
        (Some(true), RouteAction::Pool(_)) if path == "/" => {
            c.warn(k("strip_prefix"), "has no effect on the route for \"/\": the path starts with \"/\" either way");
        }
        (Some(_), RouteAction::Pool(_)) => {}
        (Some(_), _) => c.err(
            k("strip_prefix"),
            "applies only to pool routes (it changes the path the pool is sent); remove it here",
        ),
    }
}

/// `match = { … }` → [`RouteMatch`]; `None` when a condition is refused or none is written.
fn conditions(c: &mut Checker<'_>, key: &str, m: &RawMatch, bindings: &[Binding]) -> Option<RouteMatch> {
    let written = m.method.is_some()
        || m.host.is_some()
        || m.headers.is_some()
        || m.arguments.is_some()
        || m.source.is_some()
        || m.scheme.is_some();
    if !written {
        c.err(key, "is empty, so it would take every request; remove it, or add method, host, headers, arguments, source or scheme");
        return None;
    }
    let errors = c.errors.len();
    let mut out = RouteMatch::default();
    if let Some(p) = &m.method {
        out.method = patterns(c, &format!("{key}.method"), p, true, method_pattern);
    }
    if let Some(p) = &m.host {
        out.host = patterns(c, &format!("{key}.host"), p, true, host_pattern);
    }
    if let Some(headers) = &m.headers {
        out.headers = named(c, &format!("{key}.headers"), headers, true, header_name);
    }
    if let Some(arguments) = &m.arguments {
        out.arguments = named(c, &format!("{key}.arguments"), arguments, false, |name| {
            if name.is_empty() {
                Err("an argument name cannot be empty".into())
            } else {
                Ok(())
            }
        });
    }
    if let Some(p) = &m.source {
        out.source = source(c, &format!("{key}.source"), p);
    }
    if let Some(text) = &m.scheme {
        out.scheme = c.one_of(&format!("{key}.scheme"), text, &[("http", Scheme::Http), ("https", Scheme::Https)]);
        if out.scheme.is_some_and(|s| !bindings.is_empty() && !bindings.iter().any(|b| b.scheme == s)) {
            c.warn(
                format!("{key}.scheme"),
                format!("this site has no {text} binding, so no request meets scheme = {text:?} and the route is never used"),
            );
        }
    }
    (c.errors.len() == errors).then_some(out)
}

/// The key of the `i`th pattern of a condition: the condition itself when it is one string.
fn item_key(key: &str, raw: &RawPatterns, i: usize) -> String {
    match raw {
        RawPatterns::One(_) => key.to_string(),
        RawPatterns::Many(_) => format!("{key}[{i}]"),
    }
}

fn patterns(
    c: &mut Checker<'_>,
    key: &str,
    raw: &RawPatterns,
    caseless: bool,
    check: fn(&str) -> Result<(), String>,
) -> Option<PatternSet> {
    let list = raw.as_slice();
    if list.is_empty() {
        c.err(key, "is an empty list, which no request matches; remove the key to take any value, or list patterns");
        return None;
    }
    let mut ok = true;
    for (i, text) in list.iter().enumerate() {
        if let Err(e) = check(text.strip_prefix('!').unwrap_or(text)) {
            c.err(item_key(key, raw, i), format!("{text:?}: {e}"));
            ok = false;
        }
    }
    ok.then(|| PatternSet::new(list.iter().map(String::as_str), caseless))
}

/// `headers` or `arguments`: a table of names, each with its patterns.
fn named(
    c: &mut Checker<'_>,
    key: &str,
    table: &BTreeMap<String, RawPatterns>,
    caseless: bool,
    check_name: fn(&str) -> Result<(), String>,
) -> Vec<(String, PatternSet)> {
    if table.is_empty() {
        c.err(key, "is an empty table; remove it, or name what must be present, like { \"X-Debug\" = \"1\" }");
    }
    let mut out = Vec::new();
    for (name, raw) in table {
        let nkey = format!("{key}.{}", quote_key(name));
        if let Err(e) = check_name(name) {
            c.err(&nkey, format!("{name:?}: {e}"));
            continue;
        }
        let name = if caseless { name.to_ascii_lowercase() } else { name.clone() };
        if let Some(set) = patterns(c, &nkey, raw, caseless, |_| Ok(())) {
            out.push((name, set));
        }
    }
    out
}

fn source(c: &mut Checker<'_>, key: &str, raw: &RawPatterns) -> Option<SourceSet> {
    let list = raw.as_slice();
    if list.is_empty() {
        c.err(key, "is an empty list, which no client matches; remove the key to take any client, or list addresses");
        return None;
    }
    let mut entries = Vec::new();
    for (i, text) in list.iter().enumerate() {
        let (negated, block) = match text.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        match Cidr::parse(block) {
            Ok((cidr, extra_bits)) => {
                if extra_bits {
                    c.warn(
                        item_key(key, raw, i),
                        format!("{text:?} has address bits set past its prefix length; they are ignored"),
                    );
                }
                entries.push((cidr, negated));
            }
            Err(e) => c.err(item_key(key, raw, i), e),
        }
    }
    (entries.len() == list.len()).then(|| SourceSet::new(entries))
}

/// A character of an HTTP token (RFC 9110 §5.6.2): what methods and header names are made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn method_pattern(text: &str) -> Result<(), String> {
    if !text.is_empty() && text.bytes().all(is_tchar) {
        return Ok(());
    }
    Err("is not a method; expected a name like \"GET\" or \"POST\", `*` for any run of characters, `!` before it to negate".into())
}

fn host_pattern(text: &str) -> Result<(), String> {
    let host_char = |b: u8| b.is_ascii_alphanumeric() || b"-._*[]:".contains(&b);
    if !text.is_empty() && text.bytes().all(host_char) {
        return Ok(());
    }
    Err("is not a host pattern; expected a name like \"shop.example\" or \"*.shop.example\" (no port, no scheme), `!` before it to negate".into())
}

fn header_name(name: &str) -> Result<(), String> {
    if !name.is_empty() && name.bytes().all(is_tchar) {
        return Ok(());
    }
    Err("is not a header name; expected letters, digits and `-`, like \"X-Debug\"".into())
}

/// A static route's `hidden_segments`: each one whole path segment (no `/`, not empty, not `.`
/// or `..`, which never reach the file system anyway).
fn hidden_segments(c: &mut Checker<'_>, key: &str, list: &[String]) -> Vec<String> {
    for (i, seg) in list.iter().enumerate() {
        let problem = if seg.is_empty() {
            Some("is empty")
        } else if seg.contains('/') || seg.contains('\\') {
            Some("contains a path separator")
        } else if seg == "." || seg == ".." {
            Some("is always refused (traversal)")
        } else if seg.contains('\0') {
            Some("contains NUL")
        } else {
            None
        };
        if let Some(problem) = problem {
            c.err(
                format!("{key}[{i}]"),
                format!("{seg:?} {problem}; expected one path segment such as \".git\" or \".env\""),
            );
        }
    }
    list.to_vec()
}

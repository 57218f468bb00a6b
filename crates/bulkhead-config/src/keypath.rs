//! Key paths: how an error names a place in the config file — `pools.api.idle_timeout`,
//! `sites[0].routes[1].pool`, `pools."my.pool".env.HOME` — and where that place is in the text.
//!
//! Called by [`crate::parse`] (to turn every error's key into a line and column), by the
//! schema walk (which builds paths as it descends) and by validation (which names keys as
//! strings; [`quote_key`] keeps a pool or site name with dots from being read as two keys).
//! Never reads files: it only looks things up in an already-parsed TOML tree.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A dotted key path with array indexes, rendered the way TOML spells keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    pub fn key(&self, k: &str) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }

    pub fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    /// Whether one path is a prefix of the other (the same place, or one inside the other).
    pub fn overlaps(&self, other: &KeyPath) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a == b)
    }

    /// Reads a path rendered by [`fmt::Display`]; unreadable parts end the path early, which
    /// only makes [`locate`] point at an enclosing table.
    pub fn parse(text: &str) -> KeyPath {
        let mut segs = Vec::new();
        let mut chars = text.chars().peekable();
        loop {
            match chars.peek() {
                None => break,
                Some('.') => {
                    chars.next();
                }
                Some('[') => {
                    chars.next();
                    let digits: String = chars.by_ref().take_while(|c| *c != ']').collect();
                    match digits.parse() {
                        Ok(i) => segs.push(Seg::Index(i)),
                        Err(_) => break,
                    }
                }
                Some('"') => {
                    chars.next();
                    let mut key = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '"' => break,
                            '\\' => key.extend(chars.next()),
                            c => key.push(c),
                        }
                    }
                    segs.push(Seg::Key(key));
                }
                Some(_) => {
                    let mut key = String::new();
                    while let Some(&c) = chars.peek() {
                        if c == '.' || c == '[' {
                            break;
                        }
                        key.push(c);
                        chars.next();
                    }
                    segs.push(Seg::Key(key));
                }
            }
        }
        KeyPath(segs)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{}", quote_key(k))?,
                Seg::Key(k) => write!(f, ".{}", quote_key(k))?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A key as TOML would write it: bare when it is `A-Za-z0-9_-`, else a quoted string.
pub(crate) fn quote_key(k: &str) -> Cow<'_, str> {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        Cow::Borrowed(k)
    } else {
        let escaped = k.replace('\\', "\\\\").replace('"', "\\\"");
        Cow::Owned(format!("\"{escaped}\""))
    }
}

/// Where in the text a path points: the span of its value when the whole path exists (a
/// table header for a table), else the span of the deepest part that does exist (the
/// `[pools.api]` header for a missing `pools.api.command`). `None` when nothing matches.
pub(crate) fn locate(root: &DeTable<'_>, path: &KeyPath) -> Option<Range<usize>> {
    walk(root, path).0
}

/// Whether the whole path is written in the tree (not just a table that would hold it).
pub(crate) fn exists(root: &DeTable<'_>, path: &KeyPath) -> bool {
    walk(root, path).1 == path.0.len()
}

/// Follows `path` as far as the tree spells it out: the span of the deepest value reached and
/// how many segments matched.
fn walk(root: &DeTable<'_>, path: &KeyPath) -> (Option<Range<usize>>, usize) {
    let mut found = None;
    let mut matched = 0;
    let mut table = Some(root);
    let mut array: Option<&[Spanned<DeValue<'_>>]> = None;
    for seg in &path.0 {
        let next = match (seg, table, array) {
            (Seg::Key(k), Some(t), _) => t.get(k.as_str()),
            (Seg::Index(i), _, Some(a)) => a.get(*i),
            _ => None,
        };
        let Some(value) = next else { break };
        found = Some(value.span());
        matched += 1;
        (table, array) = match value.get_ref() {
            DeValue::Table(t) => (Some(t), None),
            DeValue::Array(a) => (None, Some(&a[..])),
            _ => (None, None),
        };
    }
    (found, matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_reads_back() {
        let p = KeyPath::default().key("pools").key("my.pool").key("env").key("HOME");
        assert_eq!(p.to_string(), "pools.\"my.pool\".env.HOME");
        assert_eq!(KeyPath::parse(&p.to_string()), p);
        let q = KeyPath::default().key("sites").index(0).key("routes").index(12).key("handlers").key(".php");
        assert_eq!(q.to_string(), "sites[0].routes[12].handlers.\".php\"");
        assert_eq!(KeyPath::parse(&q.to_string()), q);
        let odd = KeyPath::default().key("a\"b\\c");
        assert_eq!(KeyPath::parse(&odd.to_string()), odd);
    }

    #[test]
    fn overlap_is_prefix_either_way() {
        let a = KeyPath::parse("sites[0].routes[1]");
        assert!(a.overlaps(&KeyPath::parse("sites[0].routes[1].pool")));
        assert!(KeyPath::parse("sites[0].routes[1].pool").overlaps(&a));
        assert!(!a.overlaps(&KeyPath::parse("sites[0].routes[2]")));
    }

    #[test]
    fn locates_values_and_nearest_parents() {
        let text = "[pools.api]\nkind = \"process\"\n[[sites]]\nname = \"s\"\nroutes = [{ path = \"/\" }]\n";
        let doc = DeTable::parse(text).expect("valid toml");
        let at = |p: &str| locate(doc.get_ref(), &KeyPath::parse(p)).map(|r| &text[r]);
        assert_eq!(at("pools.api.kind"), Some("\"process\""));
        assert_eq!(at("pools.api.command"), Some("[pools.api]"));
        assert_eq!(at("sites[0].routes[0].path"), Some("\"/\""));
        assert_eq!(at("sites[0].routes[0].pool"), Some("{ path = \"/\" }"));
        assert_eq!(at("sites[1].name"), Some("[[sites]]"));
        assert_eq!(at("cache.enabled"), None);
        let written = |p: &str| exists(doc.get_ref(), &KeyPath::parse(p));
        assert!(written("pools.api.kind") && written("sites[0].routes[0].path") && written("pools"));
        assert!(!written("pools.api.command") && !written("sites[1]") && !written("cache"));
    }
}

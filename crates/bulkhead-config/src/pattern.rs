//! The patterns of a route's `match` conditions, with NGINX Unit's rules: `*` wildcards within a
//! pattern, `!` negation, and a list meaning "any of these, none of the negated ones".
//!
//! A [`PatternSet`] is a condition's list of patterns as written (`["eu-*.example", "!eu-5.example"]`);
//! a [`SourceSet`] is `source`'s list of addresses and CIDR blocks. Both are parsed once, when
//! the config is validated, and matched by the listener for every request that reaches a route
//! with conditions — so matching here never allocates and never fails. A list holds when at
//! least one of its plain patterns matches (if it has any) and none of its negated patterns does
//! (Unit's rule: `U ∩ P \ N` when there are plain patterns, `U \ N` when all are negated — a
//! list of negations only means "none of them"). Built by `validate` (which reports bad text
//! with its key) and read by the listener's routing; pure, no I/O.

use std::net::IpAddr;

/// One pattern: text that must equal the whole value, where each `*` stands for any run of
/// characters (none included). No escape for a literal `*`, as in Unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The text split at each `*`: one piece means no wildcard. Lowercase when `caseless`.
    pieces: Vec<Box<str>>,
    caseless: bool,
}

impl Pattern {
    /// `text` without its `!`. `caseless`: ASCII case is ignored (host, method, headers).
    pub fn new(text: &str, caseless: bool) -> Pattern {
        let text = if caseless { text.to_ascii_lowercase() } else { text.to_string() };
        Pattern { pieces: text.split('*').map(Box::from).collect(), caseless }
    }

    /// Whether the whole of `value` matches.
    pub fn matches(&self, value: &[u8]) -> bool {
        let eq = |a: &[u8], b: &[u8]| if self.caseless { a.eq_ignore_ascii_case(b) } else { a == b };
        let (first, rest) = match self.pieces.split_first() {
            Some((first, rest)) => (first.as_bytes(), rest),
            None => return value.is_empty(),
        };
        let Some((last, middle)) = rest.split_last() else { return eq(value, first) };
        let last = last.as_bytes();
        if value.len() < first.len() + last.len()
            || !eq(&value[..first.len()], first)
            || !eq(&value[value.len() - last.len()..], last)
        {
            return false;
        }
        // Leftmost placement of each middle piece is enough: `*` absorbs what lies between.
        let mut between = &value[first.len()..value.len() - last.len()];
        for piece in middle.iter().map(|p| p.as_bytes()).filter(|p| !p.is_empty()) {
            match between.windows(piece.len()).position(|w| eq(w, piece)) {
                Some(at) => between = &between[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

/// A condition's list of patterns (or its one pattern).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternSet {
    any_of: Vec<Pattern>,
    none_of: Vec<Pattern>,
}

impl PatternSet {
    /// Patterns as written: a leading `!` negates the rest of the pattern.
    pub fn new<'a>(texts: impl IntoIterator<Item = &'a str>, caseless: bool) -> PatternSet {
        let (mut any_of, mut none_of) = (Vec::new(), Vec::new());
        for text in texts {
            match text.strip_prefix('!') {
                Some(negated) => none_of.push(Pattern::new(negated, caseless)),
                None => any_of.push(Pattern::new(text, caseless)),
            }
        }
        PatternSet { any_of, none_of }
    }

    /// Unit's rule: some plain pattern matches (or there is none), and no negated one does.
    pub fn matches(&self, value: &[u8]) -> bool {
        !self.none_of.iter().any(|p| p.matches(value))
            && (self.any_of.is_empty() || self.any_of.iter().any(|p| p.matches(value)))
    }
}

/// An IPv4 or IPv6 block: an address and how many leading bits must equal it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    /// `"10.0.0.0/8"`, `"2001:db8::/32"`, or one address (`"127.0.0.1"`, `"::1"`). The second
    /// value says the address had bits set past the prefix (`"10.0.0.1/8"`): they are ignored.
    pub fn parse(text: &str) -> Result<(Cidr, bool), String> {
        let (addr, bits) = match text.split_once('/') {
            Some((addr, bits)) => (addr, Some(bits)),
            None => (text, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| {
            format!("{addr:?} is not an IP address; expected an address or block like \"10.0.0.0/8\", \"192.168.1.7\" or \"2001:db8::/32\"")
        })?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => match b.parse::<u8>() {
                Ok(n) if n <= max && !b.starts_with('+') => n,
                _ => return Err(format!("{b:?} is not a prefix length for {addr}; expected 0 to {max}")),
            },
        };
        let cidr = Cidr { net, bits };
        let masked = Cidr { net: cidr.masked(net), bits };
        Ok((masked, masked.net != net))
    }

    /// Whether `ip` is in the block; an IPv4-mapped IPv6 client counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.net.is_ipv4() && self.masked(ip) == self.net
    }

    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.bits)).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }
}

/// `source`'s list: addresses and blocks, `!` negating one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSet {
    any_of: Vec<Cidr>,
    none_of: Vec<Cidr>,
}

impl SourceSet {
    /// From parsed entries, each with whether it was negated.
    pub fn new(entries: impl IntoIterator<Item = (Cidr, bool)>) -> SourceSet {
        let (mut any_of, mut none_of) = (Vec::new(), Vec::new());
        for (cidr, negated) in entries {
            if negated {
                none_of.push(cidr);
            } else {
                any_of.push(cidr);
            }
        }
        SourceSet { any_of, none_of }
    }

    /// The same rule as [`PatternSet::matches`].
    pub fn matches(&self, ip: IpAddr) -> bool {
        !self.none_of.iter().any(|c| c.contains(ip))
            && (self.any_of.is_empty() || self.any_of.iter().any(|c| c.contains(ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(texts: &[&str], caseless: bool) -> PatternSet {
        PatternSet::new(texts.iter().copied(), caseless)
    }

    #[test]
    fn wildcards_match_any_run_anywhere() {
        let p = |t: &str, v: &str| Pattern::new(t, false).matches(v.as_bytes());
        assert!(p("abc", "abc") && !p("abc", "abcd") && !p("abc", "ab"));
        assert!(p("*", "") && p("*", "anything"));
        assert!(p("*.example", "a.example") && !p("*.example", "a.example.org"));
        assert!(p("eu-*", "eu-5") && p("eu-*", "eu-") && !p("eu-*", "us-5"));
        assert!(p("a*b*c", "abc") && p("a*b*c", "a-b-b-c") && !p("a*b*c", "acb"));
        assert!(p("*gzip*", "deflate, gzip, br") && !p("*gzip*", "br"));
        assert!(!p("a*a", "a"), "the two ends may not overlap");
        assert!(p("", "") && !p("", "x"));
        assert!(p("**", "x") && p("a**b", "ab"));
    }

    #[test]
    fn case_is_ignored_only_when_asked() {
        assert!(Pattern::new("Shop.*", true).matches(b"SHOP.example"));
        assert!(!Pattern::new("Shop.*", false).matches(b"shop.example"));
    }

    #[test]
    fn a_list_is_any_of_its_patterns_minus_its_negations() {
        let s = set(&["eu-*.example", "!eu-5.example"], true);
        assert!(s.matches(b"eu-1.example") && !s.matches(b"eu-5.example") && !s.matches(b"us-1.example"));
        let only_negations = set(&["!HEAD", "!GET"], true);
        assert!(only_negations.matches(b"POST"), "negations only: anything but them");
        assert!(!only_negations.matches(b"get") && !only_negations.matches(b"HEAD"));
        let one = set(&["!*/api/*"], false);
        assert!(one.matches(b"/x/y") && !one.matches(b"/v1/api/z"));
    }

    #[test]
    fn cidr_blocks_v4_and_v6() {
        let c = |t: &str| Cidr::parse(t).expect("valid").0;
        let ip = |t: &str| t.parse::<IpAddr>().expect("ip");
        assert!(c("10.0.0.0/8").contains(ip("10.200.3.4")) && !c("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(c("127.0.0.1").contains(ip("127.0.0.1")) && !c("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(c("0.0.0.0/0").contains(ip("8.8.8.8")) && !c("0.0.0.0/0").contains(ip("::1")));
        assert!(c("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")), "an IPv4-mapped client is its IPv4 address");
        assert!(c("2001:db8::/32").contains(ip("2001:db8:1::5")) && !c("2001:db8::/32").contains(ip("2001:db9::1")));
        assert!(c("::1").contains(ip("::1")) && !c("::1").contains(ip("127.0.0.1")));
        assert!(c("::/0").contains(ip("fe80::1")));
        assert!(Cidr::parse("10.0.0.1/8").expect("valid").1, "host bits past the prefix are reported");
        assert!(!Cidr::parse("10.0.0.0/8").expect("valid").1);
        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "10.0.0.0/", "10.0.0.0/+8", "shop.example", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn source_sets_follow_the_list_rule() {
        let (net, _) = Cidr::parse("10.0.0.0/8").expect("valid");
        let (host, _) = Cidr::parse("10.0.0.5").expect("valid");
        let s = SourceSet::new([(net, false), (host, true)]);
        assert!(s.matches("10.1.1.1".parse().expect("ip")) && !s.matches("10.0.0.5".parse().expect("ip")));
        assert!(!s.matches("192.168.0.1".parse().expect("ip")));
        let not_local = SourceSet::new([(host, true)]);
        assert!(
            not_local.matches("192.168.0.1".parse().expect("ip"))
                && !not_local.matches("10.0.0.5".parse().expect("ip"))
        );
    }
}

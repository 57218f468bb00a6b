//! Durations (`"90s"`, `"20m"`, `"29h"`, `"500ms"`, `"1d"`) and sizes (`"256KiB"`, `"1GiB"`,
//! `4096`) as operators write them in the config file.

use std::time::Duration;

/// Parses a duration: an integer followed by `ms`, `s`, `m`, `h` or `d`; a bare `0` is zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!(
            "{text:?} is not a duration; expected a whole number and a unit, like \"90s\", \"20m\", \"29h\", \"500ms\""
        )
    })?;
    if unit.is_empty() {
        return Err(format!("{text:?} has no unit; expected a whole number and a unit, like \"{n}s\" or \"{n}m\""));
    }
    let secs = |mul: u64| n.checked_mul(mul).map(Duration::from_secs);
    let d = match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86400),
        _ => {
            return Err(format!("{text:?} has an unknown unit {unit:?}; expected one of ms, s, m, h, d (e.g. \"90s\")"))
        }
    };
    d.ok_or_else(|| format!("{text:?} is too long a duration"))
}

/// Parses a size in bytes: an integer with an optional unit `B`, `KiB`, `MiB`, `GiB`, `TiB`
/// (or `KB`/`MB`/`GB`, read as powers of 1000).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("{text:?} is not a size; expected a whole number and a unit, like \"256KiB\", \"30MiB\", \"1GiB\"")
    })?;
    let mul: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "TiB" | "T" => 1 << 40,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("{text:?} has an unknown unit {other:?}; expected B, KiB, MiB, GiB or TiB")),
    };
    n.checked_mul(mul).ok_or_else(|| format!("{text:?} is too large"))
}

/// Formats a duration the way the config file writes it (for messages and `config check`).
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 || (s == 0 && !d.is_zero()) {
        format!("{}ms", d.as_millis())
    } else if s == 0 {
        "0s".into()
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("20m"), Ok(Duration::from_secs(1200)));
        assert_eq!(parse_duration("29h"), Ok(Duration::from_secs(29 * 3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("90").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert_eq!(format_duration(Duration::from_secs(29 * 3600)), "29h");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256KiB"), Ok(256 * 1024));
        assert_eq!(parse_size("30MiB"), Ok(30 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("1 parsec").is_err());
        assert!(parse_size("MiB").is_err());
    }
}

//! Durations (`"90s"`, `"20m"`, `"1.5s"`, `"500ms"`, `"1d"`) and sizes (`"256KiB"`, `"1.5GiB"`,
//! `"30MB"`) as operators write them in the config file.
//!
//! Called by validation (every duration and size key) and by the manager's messages
//! ([`format_duration`]). A number without a unit is refused for both, except `0`: `30` could
//! mean bytes, KiB or MiB, and a wrong guess is a silent misconfiguration. Decimals are taken
//! when the result is whole (`"1.5s"` = 1500 ms, `"0.5KiB"` = 512 bytes); never reads anything.

use std::time::Duration;

/// The units a duration takes, for messages and the README.
pub const DURATION_UNITS: &str = "ms, s, m, h, d (e.g. \"90s\", \"20m\", \"1.5s\", \"500ms\")";

/// The units a size takes, for messages and the README.
pub const SIZE_UNITS: &str =
    "B; KiB, MiB, GiB, TiB (powers of 1024, also written K, M, G, T); KB, MB, GB, TB (powers of 1000) (e.g. \"256KiB\", \"30MiB\", \"1.5GiB\")";

/// A decimal number as written: its digits without the point, and how many were after it.
struct Decimal {
    digits: u128,
    scale: u32,
}

/// Splits `"1.5GiB"` into the number and the unit; `None` when it does not start with a
/// number (digits, optionally one `.` and more digits).
fn split_number(t: &str) -> Option<(Decimal, &str)> {
    let end = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(end);
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let well_formed = !int.is_empty()
        && int.chars().all(|c| c.is_ascii_digit())
        && frac.chars().all(|c| c.is_ascii_digit())
        && (frac.is_empty() != num.contains('.'))
        && frac.len() <= 18;
    if !well_formed {
        return None;
    }
    let digits = format!("{int}{frac}").parse().ok()?;
    Some((Decimal { digits, scale: frac.len() as u32 }, unit))
}

impl Decimal {
    fn is_zero(&self) -> bool {
        self.digits == 0
    }

    /// `self × mul` when that is a whole number that fits in a u64; `Err(true)` when it is not
    /// whole, `Err(false)` when it is too large.
    fn times(&self, mul: u64) -> Result<u64, bool> {
        let product = self.digits.checked_mul(u128::from(mul)).ok_or(false)?;
        let div = 10u128.pow(self.scale);
        if product % div != 0 {
            return Err(true);
        }
        u64::try_from(product / div).map_err(|_| false)
    }
}

/// Parses a duration: a number followed by `ms`, `s`, `m`, `h` or `d`; a bare `0` is zero.
/// A decimal is taken when it comes to whole milliseconds (`"1.5s"`, `"0.25h"`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let Some((n, unit)) = split_number(t) else {
        return Err(format!("{text:?} is not a duration; expected a number and a unit: {DURATION_UNITS}"));
    };
    let ms_per_unit: u64 = match unit {
        "" => {
            return Err(format!(
                "{text:?} has no unit; expected a number and a unit: {DURATION_UNITS} (only 0 may be written bare)"
            ))
        }
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{text:?} has an unknown unit {unit:?}; expected one of {DURATION_UNITS}")),
    };
    match n.times(ms_per_unit) {
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(true) => Err(format!(
            "{text:?} is not a whole number of milliseconds, the finest a duration takes (\"1.5s\" and \"1500ms\" are)"
        )),
        Err(false) => Err(format!("{text:?} is too long a duration")),
    }
}

/// Parses a size in bytes: a number and a unit ([`SIZE_UNITS`]); a bare `0` is zero. A decimal
/// is taken when it comes to whole bytes (`"1.5GiB"`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let Some((n, unit)) = split_number(t) else {
        return Err(format!("{text:?} is not a size; expected a number and a unit: {SIZE_UNITS}"));
    };
    let mul: u64 = match unit.trim() {
        "" if n.is_zero() => 1,
        "" => {
            return Err(format!(
                "{text:?} has no unit; expected a number and a unit: {SIZE_UNITS}; write \"{t}B\" for bytes (only 0 may be written bare)"
            ))
        }
        "B" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "TiB" | "T" => 1 << 40,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => return Err(format!("{text:?} has an unknown unit {other:?}; expected one of {SIZE_UNITS}")),
    };
    match n.times(mul) {
        Ok(bytes) => Ok(bytes),
        Err(true) => Err(format!("{text:?} is not a whole number of bytes; write it with a smaller unit")),
        Err(false) => Err(format!("{text:?} is too large")),
    }
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
    fn decimal_durations_are_taken_when_whole_milliseconds() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.25h"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2.0m"), Ok(Duration::from_secs(120)));
        let e = parse_duration("1.0005s").expect_err("sub-millisecond");
        assert!(e.contains("not a whole number of milliseconds") && e.contains("\"1500ms\""), "{e}");
        for bad in ["1.s", ".5s", "1.2.3s", "1,5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let e = parse_duration("90").expect_err("bare");
        assert!(e.contains("has no unit") && e.contains("ms, s, m, h, d"), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256KiB"), Ok(256 * 1024));
        assert_eq!(parse_size("30MiB"), Ok(30 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096B"), Ok(4096));
        assert_eq!(parse_size("30MB"), Ok(30_000_000));
        assert_eq!(parse_size("2TB"), Ok(2_000_000_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("0.5KiB"), Ok(512));
        assert!(parse_size("1.5B").expect_err("half a byte").contains("not a whole number of bytes"));
        assert!(parse_size("1 parsec").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999TiB").expect_err("overflow").contains("too large"));
    }

    #[test]
    fn a_bare_size_is_refused_and_the_units_are_listed() {
        let e = parse_size("30").expect_err("bare 30");
        assert!(e.contains("has no unit") && e.contains("\"30B\""), "{e}");
        for unit in ["KiB", "MiB", "GiB", "TiB", "KB", "MB", "GB", "TB"] {
            assert!(e.contains(unit), "{unit} missing from {e}");
        }
        assert!(parse_size("4096").is_err());
        assert_eq!(parse_size("0"), Ok(0), "0 needs no unit");
    }
}

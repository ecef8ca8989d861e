//! `ipsec.conf` durations (`keylife=8h`, `rekeymargin=9m`, …) converted to whole seconds.
//!
//! Accepted forms (spec 1.1): `N` and `Ns` (integer seconds), `N[.N]m`, `N[.N]h`, `N[.N]d`
//! (minutes, hours, days; a decimal fraction is allowed and the result is truncated to whole
//! seconds, as FreeS/WAN's `auto` script did with awk's `int()`).

use std::fmt;

/// Why a duration string was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationError {
    message: String,
}

impl DurationError {
    fn new(message: String) -> DurationError {
        DurationError { message }
    }

    /// The human-readable reason (also what `Display` prints).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DurationError {}

/// Most fraction digits we keep exact (10^30 · 86400 still fits in a `u128`).
const MAX_FRACTION_DIGITS: usize = 30;

/// Parse a FreeS/WAN duration into seconds.
///
/// ```
/// use rswan::config::parse_duration;
/// assert_eq!(parse_duration("90").unwrap(), 90);
/// assert_eq!(parse_duration("1.5m").unwrap(), 90);
/// assert_eq!(parse_duration("8h").unwrap(), 28800);
/// assert!(parse_duration("1.5s").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<u64, DurationError> {
    let bad = || {
        DurationError::new(format!(
            "invalid duration \"{s}\" (expected N, Ns, N[.N]m, N[.N]h or N[.N]d)"
        ))
    };
    if s.is_empty() {
        return Err(DurationError::new("empty duration".to_string()));
    }
    let (number, unit) = match s.as_bytes()[s.len() - 1] {
        b's' => (&s[..s.len() - 1], 1u128),
        b'm' => (&s[..s.len() - 1], 60),
        b'h' => (&s[..s.len() - 1], 3600),
        b'd' => (&s[..s.len() - 1], 86400),
        b'0'..=b'9' => (s, 1),
        _ => return Err(bad()),
    };
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (number, None),
    };
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let too_large = || DurationError::new(format!("duration \"{s}\" is too large"));
    let mut whole: u128 = 0;
    for b in int_part.bytes() {
        whole = whole
            .checked_mul(10)
            .and_then(|w| w.checked_add(u128::from(b - b'0')))
            .ok_or_else(too_large)?;
        if whole > u128::from(u64::MAX) {
            return Err(too_large());
        }
    }
    let mut secs = whole.checked_mul(unit).ok_or_else(too_large)?;
    if let Some(frac) = frac_part {
        if unit == 1 {
            return Err(DurationError::new(format!(
                "invalid duration \"{s}\": a fraction is only allowed with m, h or d"
            )));
        }
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if frac.len() > MAX_FRACTION_DIGITS {
            return Err(DurationError::new(format!(
                "invalid duration \"{s}\": too many fraction digits"
            )));
        }
        let mut num: u128 = 0;
        let mut den: u128 = 1;
        for b in frac.bytes() {
            num = num * 10 + u128::from(b - b'0');
            den *= 10;
        }
        secs = secs.checked_add(num * unit / den).ok_or_else(too_large)?;
    }
    u64::try_from(secs).map_err(|_| too_large())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_forms() {
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert_eq!(parse_duration("3600").unwrap(), 3600);
        assert_eq!(parse_duration("45s").unwrap(), 45);
        assert_eq!(parse_duration("9m").unwrap(), 540);
        assert_eq!(parse_duration("1.5m").unwrap(), 90);
        assert_eq!(parse_duration("8h").unwrap(), 28800);
        assert_eq!(parse_duration("0.5h").unwrap(), 1800);
        assert_eq!(parse_duration("1d").unwrap(), 86400);
        assert_eq!(parse_duration("1.25d").unwrap(), 108000);
        assert_eq!(parse_duration("007m").unwrap(), 420);
        // truncation, like awk int()
        assert_eq!(parse_duration("0.01m").unwrap(), 0);
        assert_eq!(parse_duration("0.0166666666666666666666667m").unwrap(), 1);
        assert_eq!(parse_duration("18446744073709551615").unwrap(), u64::MAX);
    }

    #[test]
    fn invalid_forms() {
        for bad in [
            "", "s", "m", "-1", "+1", "1x", "1 h", " 1h", "1h ", "1.5", "1.5s", ".5m", "1.m",
            "1..5m", "1hm", "h1", "1e3", "١", "1é", "1.5é",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(parse_duration("").unwrap_err().message(), "empty duration");
        assert!(parse_duration("1.5")
            .unwrap_err()
            .message()
            .contains("fraction is only allowed"));
        assert!(parse_duration("x")
            .unwrap_err()
            .to_string()
            .contains("\"x\""));
    }

    #[test]
    fn overflow() {
        assert!(parse_duration("18446744073709551616")
            .unwrap_err()
            .message()
            .contains("too large"));
        assert!(parse_duration("999999999999999999999999999999999999999999d").is_err());
        assert!(parse_duration("213503982334602d").is_err());
        assert!(parse_duration("1.0000000000000000000000000000001m").is_err());
    }
}

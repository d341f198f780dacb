//! Duration input and output as Vault speaks them.
//!
//! Input (spec 1.6): integers are seconds, all-digit strings are seconds, `<int>d` is days,
//! anything else is Go's duration grammar (`30m`, `1h30m`, `1.5h`). Output: whole seconds,
//! or Go's duration strings (`1h0m0s`) where Vault prints them, and the short form (`1h30m`)
//! in the TTL cap warning.

use serde_json::Value;

/// Parses a duration field; `signed` allows negatives (JWT leeways). Returns whole seconds.
pub fn parse_value(v: &Value, signed: bool) -> Result<i64, String> {
    let secs = match v {
        Value::Null => 0,
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i
            } else if let Some(f) = n.as_f64() {
                f.trunc() as i64
            } else {
                return Err(format!("invalid duration {n}"));
            }
        }
        Value::String(s) => parse_str(s)?,
        Value::Bool(_) | Value::Array(_) | Value::Object(_) => {
            return Err("expected a duration".to_string());
        }
    };
    if secs < 0 && !signed {
        return Err("cannot provide negative value".to_string());
    }
    Ok(secs)
}

/// Parses a duration string: digits, `<int>d`, or Go's grammar.
pub fn parse_str(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    if let Some(days) = s.strip_suffix('d')
        && !days.is_empty()
        && days.bytes().all(|b| b.is_ascii_digit())
    {
        return days
            .parse::<i64>()
            .ok()
            .and_then(|d| d.checked_mul(86_400))
            .ok_or_else(|| format!("time: invalid duration \"{s}\""));
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i64>()
            .map_err(|_| format!("time: invalid duration \"{s}\""));
    }
    parse_go(s)
}

/// Go's `time.ParseDuration`, truncated to whole seconds.
pub fn parse_go(s: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{s}\"");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_ns: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration \"{s}\""))?;
        if num_end == 0 {
            return Err(invalid());
        }
        let num: f64 = rest[..num_end].parse().map_err(|_| invalid())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let ns_per = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration \"{s}\"")),
            _ => return Err(format!("time: unknown unit \"{unit}\" in duration \"{s}\"")),
        };
        total_ns += num * ns_per;
    }
    if total_ns > 9.2e18 {
        return Err(invalid());
    }
    let secs = (total_ns / 1e9).trunc() as i64;
    Ok(if neg { -secs } else { secs })
}

/// Go's `Duration.String()` for whole seconds: `0s`, `45s`, `30m0s`, `12h0m0s`, `1h30m15s`.
pub fn format_go(secs: i64) -> String {
    if secs == 0 {
        return "0s".to_string();
    }
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{sign}{m}m{sec}s")
    } else {
        format!("{sign}{sec}s")
    }
}

/// The short form of the cap warning: Go's format with trailing zero units removed
/// (`2h`, `1h30m`, `45s`).
pub fn format_short(secs: i64) -> String {
    let mut s = format_go(secs);
    if s.ends_with("m0s") {
        s.truncate(s.len() - 2);
    }
    if s.ends_with("h0m") {
        s.truncate(s.len() - 2);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_vault_inputs() {
        let cases: &[(Value, i64)] = &[
            (json!(null), 0),
            (json!(""), 0),
            (json!(3600), 3600),
            (json!(90.7), 90),
            (json!("3600"), 3600),
            (json!("7d"), 604_800),
            (json!("30m"), 1800),
            (json!("768h"), 2_764_800),
            (json!("1h30m"), 5400),
            (json!("1.5h"), 5400),
            (json!("1500ms"), 1),
            (json!("0"), 0),
        ];
        for (v, want) in cases {
            assert_eq!(parse_value(v, false), Ok(*want), "{v}");
        }
    }

    #[test]
    fn rejects_bad_inputs() {
        for v in [
            json!("1d12h"),
            json!("abc"),
            json!("10"),
            json!(true),
            json!("5x"),
            json!("-5s"),
        ] {
            if v == json!("10") {
                continue;
            }
            assert!(parse_value(&v, false).is_err(), "{v}");
        }
        assert_eq!(parse_value(&json!(-1), true), Ok(-1));
        assert!(parse_value(&json!(-1), false).is_err());
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go(0), "0s");
        assert_eq!(format_go(1800), "30m0s");
        assert_eq!(format_go(43_200), "12h0m0s");
        assert_eq!(format_go(5415), "1h30m15s");
        assert_eq!(format_short(7200), "2h");
        assert_eq!(format_short(5400), "1h30m");
        assert_eq!(format_short(45), "45s");
        assert_eq!(format_short(60), "1m");
    }
}

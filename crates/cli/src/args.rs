//! Go-style command-line parsing shared by every command.
//!
//! Users type what they type for `vault`: single- or double-dash flags (`-format=json`,
//! `-format json`, `--format=json`), boolean flags without a value (`-force`) or with one
//! (`-force=false`), repeatable flags (`-policy=a -policy=b`), and flags before positional
//! arguments: as in Go's `flag` package, parsing stops at the first positional argument or
//! at `--`. Positional `k=v` arguments become request data through [`parse_kv_data`].

use std::collections::HashMap;
use std::io::Read;

use serde_json::{Map, Value};

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `-x` alone means true; `-x=false` is accepted too.
    Bool,
    /// One value: `-x=v` or `-x v`; the last occurrence wins.
    Str,
    /// Repeatable: every occurrence is kept in order.
    Multi,
}

/// One flag a command accepts. `names[0]` is the canonical name; the rest are aliases.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub names: &'static [&'static str],
    pub kind: Kind,
}

impl Flag {
    pub const fn boolean(names: &'static [&'static str]) -> Self {
        Flag {
            names,
            kind: Kind::Bool,
        }
    }
    pub const fn string(names: &'static [&'static str]) -> Self {
        Flag {
            names,
            kind: Kind::Str,
        }
    }
    pub const fn multi(names: &'static [&'static str]) -> Self {
        Flag {
            names,
            kind: Kind::Multi,
        }
    }
}

/// A wrong command line: printed as is, exit code 1 (vault's usage errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The result of parsing: flag values by canonical name, and the positional arguments.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    values: HashMap<&'static str, Vec<String>>,
    pub args: Vec<String>,
}

impl Parsed {
    /// The last value of a single-valued flag, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// Every value of a repeatable flag, in order.
    pub fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether the flag was given at all.
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// A boolean flag's value (absent = false).
    pub fn bool(&self, name: &str) -> bool {
        self.get(name)
            .and_then(|v| parse_bool(v).ok())
            .unwrap_or(false)
    }

    /// Flag-looking positional arguments (Go's parser stops at the first positional one),
    /// except the names in `quiet`: vault warns about the rest.
    pub fn late_flags(&self, quiet: &[Flag]) -> Vec<&str> {
        self.args
            .iter()
            .map(String::as_str)
            .filter(|a| a.len() > 1 && a.starts_with('-'))
            .filter(|a| {
                let name = a.trim_start_matches('-');
                let name = name.split_once('=').map_or(name, |(n, _)| n);
                !quiet.iter().any(|f| f.names.contains(&name))
            })
            .collect()
    }

    /// Checks the number of positional arguments the way vault words it.
    pub fn expect_args(&self, min: usize, max: usize) -> Result<(), UsageError> {
        let got = self.args.len();
        if got < min {
            return Err(UsageError(format!(
                "Not enough arguments (expected {min}, got {got})"
            )));
        }
        if got > max {
            return Err(UsageError(format!(
                "Too many arguments (expected {max}, got {got})"
            )));
        }
        Ok(())
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(v: &str) -> Result<bool, UsageError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(UsageError(format!("invalid boolean value {v:?}"))),
    }
}

/// Parses `argv` (the arguments after the command words) against the flags a command accepts.
pub fn parse(flags: &[&[Flag]], argv: &[String]) -> Result<Parsed, UsageError> {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        if arg == "--" {
            out.args.extend(argv[i + 1..].iter().cloned());
            return Ok(out);
        }
        // A lone "-" (stdin) or anything not starting with '-' ends the flags.
        if !arg.starts_with('-') || arg == "-" {
            out.args.extend(argv[i..].iter().cloned());
            return Ok(out);
        }
        let body = arg
            .strip_prefix("--")
            .unwrap_or_else(|| &arg[1..])
            .to_string();
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (body.clone(), None),
        };
        let flag = flags
            .iter()
            .flat_map(|set| set.iter())
            .find(|f| f.names.contains(&name.as_str()))
            .ok_or_else(|| UsageError(format!("flag provided but not defined: -{name}")))?;
        let value = match (flag.kind, inline) {
            (Kind::Bool, Some(v)) => {
                parse_bool(&v).map_err(|_| {
                    UsageError(format!(
                        "invalid boolean value {v:?} for -{name}: parse error"
                    ))
                })?;
                v
            }
            (Kind::Bool, None) => "true".to_string(),
            (_, Some(v)) => v,
            (_, None) => {
                i += 1;
                argv.get(i)
                    .cloned()
                    .ok_or_else(|| UsageError(format!("flag needs an argument: -{name}")))?
            }
        };
        let slot = out.values.entry(flag.names[0]).or_default();
        if flag.kind != Kind::Multi {
            slot.clear();
        }
        slot.push(value);
        i += 1;
    }
    Ok(out)
}

/// Turns positional data arguments into a JSON object, as `vault write` does:
/// `k=v`, `k=@file` (file contents), `k=-` (stdin), `@file.json` or `-` (a JSON object, or
/// `k=v` lines). A key given twice becomes a list.
pub fn parse_kv_data(args: &[String], stdin: &mut dyn Read) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let mut stdin_used = false;
    let mut read_stdin = |stdin: &mut dyn Read| -> Result<String, String> {
        if stdin_used {
            return Err("stdin can only be read once".to_string());
        }
        stdin_used = true;
        let mut s = String::new();
        stdin
            .read_to_string(&mut s)
            .map_err(|e| format!("error reading stdin: {e}"))?;
        Ok(s)
    };
    for arg in args {
        if arg == "-" {
            let text = read_stdin(stdin)?;
            merge_document(&mut out, &text)?;
            continue;
        }
        if let Some(file) = arg.strip_prefix('@') {
            let text = read_file(file)?;
            merge_document(&mut out, &text)?;
            continue;
        }
        let Some((key, raw)) = arg.split_once('=') else {
            return Err(format!(
                "invalid key/value pair {arg:?}: format must be key=value"
            ));
        };
        if key.is_empty() {
            return Err(format!(
                "invalid key/value pair {arg:?}: format must be key=value"
            ));
        }
        let value = if raw == "-" {
            read_stdin(stdin)?
        } else if let Some(file) = raw.strip_prefix('@') {
            read_file(file)?
        } else {
            raw.to_string()
        };
        insert_repeated(&mut out, key, Value::String(value));
    }
    Ok(out)
}

/// Parses `k=v` pairs given through a repeatable flag (`-metadata`, `-options`) into a
/// string map; no files, no stdin.
pub fn parse_pairs(pairs: &[String]) -> Result<Map<String, Value>, UsageError> {
    let mut out = Map::new();
    for p in pairs {
        let (k, v) = p.split_once('=').ok_or_else(|| {
            UsageError(format!(
                "invalid key/value pair {p:?}: format must be key=value"
            ))
        })?;
        out.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(out)
}

fn read_file(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("error reading file {path}: {e}"))
}

fn insert_repeated(out: &mut Map<String, Value>, key: &str, value: Value) {
    match out.get_mut(key) {
        Some(Value::Array(list)) => list.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            out.insert(key.to_string(), value);
        }
    }
}

/// A document from stdin or a file: a JSON object, else `k=v` lines.
fn merge_document(out: &mut Map<String, Value>, text: &str) -> Result<(), String> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        let parsed: Value =
            serde_json::from_str(trimmed).map_err(|e| format!("error parsing JSON: {e}"))?;
        if let Value::Object(map) = parsed {
            out.extend(map);
            return Ok(());
        }
    }
    for line in trimmed.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("invalid key/value pair {line:?}: format must be key=value"))?;
        insert_repeated(out, k.trim(), Value::String(v.trim().to_string()));
    }
    Ok(())
}

/// Parses a duration as vault's CLI does: plain seconds (`"90"`) or Go units, also `d`
/// (`"1h30m"`, `"7d"`, `"500ms"`), into whole seconds.
pub fn parse_duration_secs(s: &str) -> Result<i64, UsageError> {
    let bad = || UsageError(format!("invalid duration {s:?}"));
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let mut total_ms: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let num: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_ms = match &rest[..unit_len] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            "d" => 86400e3,
            _ => return Err(bad()),
        };
        total_ms += num * unit_ms;
        rest = &rest[unit_len..];
    }
    let secs = (total_ms / 1000.0).trunc() as i64;
    Ok(if neg { -secs } else { secs })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[Flag] = &[
        Flag::boolean(&["force", "f"]),
        Flag::string(&["format"]),
        Flag::multi(&["policy"]),
    ];

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn go_style_flags() {
        for form in [
            &["-format=json", "x"][..],
            &["-format", "json", "x"],
            &["--format=json", "x"],
            &["--format", "json", "x"],
        ] {
            let p = parse(&[FLAGS], &argv(form)).unwrap();
            assert_eq!(p.get("format"), Some("json"));
            assert_eq!(p.args, vec!["x"]);
        }
    }

    #[test]
    fn bool_alias_multi_and_stop_at_positional() {
        let p = parse(
            &[FLAGS],
            &argv(&["-f", "-policy=a", "-policy", "b", "path", "-format=json"]),
        )
        .unwrap();
        assert!(p.bool("force"));
        assert_eq!(p.all("policy"), ["a", "b"]);
        assert_eq!(p.args, vec!["path", "-format=json"]);
        assert!(!p.has("format"));
        assert_eq!(p.late_flags(&[]), ["-format=json"]);
        assert!(p.late_flags(FLAGS).is_empty());

        let p = parse(&[FLAGS], &argv(&["-force=false", "--", "-x"])).unwrap();
        assert!(p.has("force") && !p.bool("force"));
        assert_eq!(p.args, vec!["-x"]);

        let p = parse(&[FLAGS], &argv(&["-", "a"])).unwrap();
        assert_eq!(p.args, vec!["-", "a"]);
    }

    #[test]
    fn flag_errors() {
        assert_eq!(
            parse(&[FLAGS], &argv(&["-bogus", "x"])).unwrap_err().0,
            "flag provided but not defined: -bogus"
        );
        assert!(parse(&[FLAGS], &argv(&["-format"])).is_err());
        assert!(parse(&[FLAGS], &argv(&["-force=maybe"])).is_err());
        let p = parse(&[FLAGS], &argv(&["a", "b"])).unwrap();
        assert_eq!(
            p.expect_args(1, 1).unwrap_err().0,
            "Too many arguments (expected 1, got 2)"
        );
        assert_eq!(
            p.expect_args(3, 3).unwrap_err().0,
            "Not enough arguments (expected 3, got 2)"
        );
    }

    #[test]
    fn kv_data_forms() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v.txt");
        std::fs::write(&file, "from-file").unwrap();
        let json = dir.path().join("d.json");
        std::fs::write(&json, r#"{"j": 1, "k": ["x"]}"#).unwrap();
        let args = vec![
            "a=1".to_string(),
            "b=x=y".to_string(),
            format!("c=@{}", file.display()),
            format!("@{}", json.display()),
            "a=2".to_string(),
            "d=-".to_string(),
        ];
        let mut stdin = "piped".as_bytes();
        let m = parse_kv_data(&args, &mut stdin).unwrap();
        assert_eq!(m["a"], serde_json::json!(["1", "2"]));
        assert_eq!(m["b"], "x=y");
        assert_eq!(m["c"], "from-file");
        assert_eq!(m["j"], 1);
        assert_eq!(m["d"], "piped");

        let mut stdin = r#"{"x": {"y": true}}"#.as_bytes();
        let m = parse_kv_data(&["-".to_string()], &mut stdin).unwrap();
        assert_eq!(m["x"]["y"], true);

        let mut stdin = "p=1\n\nq = 2\n".as_bytes();
        let m = parse_kv_data(&["-".to_string()], &mut stdin).unwrap();
        assert_eq!(m["p"], "1");
        assert_eq!(m["q"], "2");

        let err = parse_kv_data(&["b".to_string()], &mut "".as_bytes()).unwrap_err();
        assert_eq!(
            err,
            "invalid key/value pair \"b\": format must be key=value"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("90").unwrap(), 90);
        assert_eq!(parse_duration_secs("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration_secs("7d").unwrap(), 604800);
        assert_eq!(parse_duration_secs("1.5h").unwrap(), 5400);
        assert_eq!(parse_duration_secs("1500ms").unwrap(), 1);
        assert!(parse_duration_secs("1x").is_err());
        assert!(parse_duration_secs("h").is_err());
        assert!(parse_duration_secs("").is_err());
    }
}

//! Rendering of responses the way the vault CLI prints them: aligned `Key/Value` tables,
//! Go's `%v` notation for nested values, human durations, `== Header ==` banners, and the
//! JSON shape of the Go client's `Secret` struct for `-format=json`.

use std::io::{IsTerminal, Write};

use serde_json::{Map, Value, json};

use crate::args::UsageError;

mod yaml;

/// The `-format` values the CLI understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

impl Format {
    /// `-format` wins over `VAULT_FORMAT` (or `BAO_FORMAT`); the default is a table.
    pub fn resolve(flag: Option<&str>) -> Result<Format, UsageError> {
        let env = std::env::var("VAULT_FORMAT")
            .ok()
            .or_else(|| std::env::var("BAO_FORMAT").ok());
        let chosen = flag
            .map(str::to_string)
            .or(env)
            .unwrap_or_else(|| "table".to_string());
        match chosen.to_ascii_lowercase().as_str() {
            "table" | "" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "yaml" | "yml" => Ok(Format::Yaml),
            other => Err(UsageError(format!("Invalid output format: {other}"))),
        }
    }
}

impl Format {
    pub fn is_table(self) -> bool {
        self == Format::Table
    }

    /// A value as this structured format's document (JSON for a table: callers print
    /// tables themselves).
    pub fn document(self, v: &Value) -> String {
        match self {
            Format::Yaml => yaml::to_yaml(v).trim_end().to_string(),
            Format::Json | Format::Table => json_text(v),
        }
    }
}

/// Writes to stdout; a closed pipe is not worth a panic.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Writes a line to stdout.
pub fn outln(text: &str) {
    out(&format!("{text}\n"));
}

/// Writes a line to stderr.
pub fn errln(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Prints a single raw value (`-field`, `-token-only`): with a newline only on a terminal,
/// so `$(lessor read -field=x ...)` captures exactly the value.
pub fn raw_value(text: &str) {
    if std::io::stdout().is_terminal() {
        outln(text);
    } else {
        out(text);
    }
}

/// Pretty JSON with two-space indentation, as `-format=json` prints it.
pub fn json_text(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".to_string())
}

/// Go's `%v` rendering of a decoded JSON value.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_value(&map[k.as_str()])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's `%q` of a string list: `["a" "b"]`.
pub fn go_quoted_list(v: Option<&Value>) -> String {
    let items: Vec<String> = v
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|s| serde_json::to_string(&Value::String(go_value(s))).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    format!("[{}]", items.join(" "))
}

/// A duration in seconds as vault prints it: `768h`, `1h30m`, `1m40s`, `0s`.
pub fn human_duration(secs: i64) -> String {
    if secs == 0 {
        return "0s".to_string();
    }
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    // Go prints "1h0m0s"; vault trims the zero tails.
    let mut text = if h > 0 {
        format!("{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    };
    if text.ends_with("m0s") {
        text.truncate(text.len() - 2);
    }
    if text.ends_with("h0m") {
        text.truncate(text.len() - 2);
    }
    format!("{sign}{text}")
}

fn human_duration_value(v: &Value) -> String {
    match v
        .as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    {
        Some(n) => human_duration(n),
        None => go_value(v),
    }
}

/// Aligns rows into columns: the first row is the header, underlined with dashes; cells are
/// separated by four spaces; an empty cell shows `n/a`.
pub fn table(rows: &[Vec<String>]) -> String {
    let Some(header) = rows.first() else {
        return String::new();
    };
    let underline: Vec<String> = header.iter().map(|h| "-".repeat(h.len())).collect();
    let mut all: Vec<Vec<String>> = vec![header.clone(), underline];
    for row in &rows[1..] {
        all.push(
            row.iter()
                .map(|c| {
                    if c.is_empty() {
                        "n/a".to_string()
                    } else {
                        c.clone()
                    }
                })
                .collect(),
        );
    }
    let cols = all.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            all.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in &all {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count() + 4;
                line.push_str(&" ".repeat(pad));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// A two-column `Key/Value` table.
pub fn kv_table(pairs: &[(String, String)]) -> String {
    let mut rows = vec![vec!["Key".to_string(), "Value".to_string()]];
    rows.extend(pairs.iter().map(|(k, v)| vec![k.clone(), v.clone()]));
    table(&rows)
}

/// The rows of a data map, sorted by key; TTL-looking numbers become durations.
pub fn data_pairs(data: &Map<String, Value>) -> Vec<(String, String)> {
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let v = &data[k.as_str()];
            let looks_like_ttl =
                k == "ttl" || k == "period" || k.ends_with("_ttl") || k.ends_with("_period");
            let text = if looks_like_ttl && v.is_number() {
                human_duration_value(v)
            } else {
                go_value(v)
            };
            (k.clone(), text)
        })
        .collect()
}

/// `== Header ==` padded with equal signs to `total_len` characters.
pub fn pad_equal_signs(header: &str, total_len: usize) -> String {
    let mut signs = total_len as i64 - (header.len() as i64 + 2);
    if signs <= 0 {
        signs = 4;
    }
    if signs % 2 != 0 {
        signs += 1;
    }
    let side = "=".repeat((signs / 2) as usize);
    format!("{side} {header} {side}")
}

/// A banner sized for a table of the given map: the longest key plus the table's gutter and
/// the width of "Value".
pub fn header_for_map(header: &str, data: &Map<String, Value>) -> String {
    let longest = data.keys().map(String::len).max().unwrap_or(0);
    pad_equal_signs(header, longest + 4 + 5)
}

/// The Go client's `Secret` as `-format=json` prints it: fixed key order, no server-only keys.
pub fn secret_json(secret: &Value) -> Value {
    let get = |k: &str| secret.get(k).cloned();
    let mut out = Map::new();
    out.insert(
        "request_id".into(),
        get("request_id").unwrap_or_else(|| json!("")),
    );
    out.insert(
        "lease_id".into(),
        get("lease_id").unwrap_or_else(|| json!("")),
    );
    out.insert(
        "lease_duration".into(),
        get("lease_duration").unwrap_or_else(|| json!(0)),
    );
    out.insert(
        "renewable".into(),
        get("renewable").unwrap_or_else(|| json!(false)),
    );
    out.insert("data".into(), get("data").unwrap_or(Value::Null));
    let warnings = get("warnings").filter(|w| w.as_array().is_some_and(|a| !a.is_empty()));
    out.insert("warnings".into(), warnings.unwrap_or(Value::Null));
    if let Some(auth) = secret.get("auth").filter(|a| a.is_object()) {
        out.insert("auth".into(), auth_json(auth));
    }
    if let Some(wrap) = secret.get("wrap_info").filter(|w| w.is_object()) {
        let mut w = Map::new();
        for key in ["token", "accessor", "ttl", "creation_time", "creation_path"] {
            w.insert(key.into(), wrap.get(key).cloned().unwrap_or(Value::Null));
        }
        w.insert(
            "wrapped_accessor".into(),
            wrap.get("wrapped_accessor")
                .cloned()
                .unwrap_or_else(|| json!("")),
        );
        out.insert("wrap_info".into(), Value::Object(w));
    }
    Value::Object(out)
}

fn auth_json(auth: &Value) -> Value {
    let mut out = Map::new();
    for key in [
        "client_token",
        "accessor",
        "policies",
        "token_policies",
        "identity_policies",
        "metadata",
        "orphan",
        "entity_id",
        "lease_duration",
        "renewable",
        "mfa_requirement",
    ] {
        out.insert(key.into(), auth.get(key).cloned().unwrap_or(Value::Null));
    }
    Value::Object(out)
}

/// The `Key/Value` rows of a secret in table form: lease, auth, then data.
pub fn secret_pairs(secret: &Value) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let lease_duration = secret
        .get("lease_duration")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let lease_id = secret.get("lease_id").and_then(Value::as_str).unwrap_or("");
    if lease_duration > 0 {
        if lease_id.is_empty() {
            pairs.push(("refresh_interval".into(), human_duration(lease_duration)));
        } else {
            pairs.push(("lease_id".into(), lease_id.to_string()));
            pairs.push(("lease_duration".into(), human_duration(lease_duration)));
            let renewable = secret.get("renewable").cloned().unwrap_or(json!(false));
            pairs.push(("lease_renewable".into(), go_value(&renewable)));
        }
    }
    if let Some(auth) = secret.get("auth").filter(|a| a.is_object()) {
        pairs.extend(auth_pairs(auth));
    }
    if let Some(wrap) = secret.get("wrap_info").filter(|w| w.is_object()) {
        pairs.extend(wrap_pairs(wrap));
    }
    if let Some(data) = secret.get("data").and_then(Value::as_object) {
        pairs.extend(data_pairs(data));
    }
    pairs
}

/// A wrapped response's rows; vault spells these keys with a trailing colon.
fn wrap_pairs(wrap: &Value) -> Vec<(String, String)> {
    let s = |k: &str| wrap.get(k).map(go_value).unwrap_or_default();
    let mut pairs = vec![
        ("wrapping_token:".to_string(), s("token")),
        ("wrapping_accessor:".to_string(), s("accessor")),
        (
            "wrapping_token_ttl:".to_string(),
            wrap.get("ttl")
                .map(human_duration_value)
                .unwrap_or_default(),
        ),
        (
            "wrapping_token_creation_time:".to_string(),
            go_time(&s("creation_time")),
        ),
        (
            "wrapping_token_creation_path:".to_string(),
            s("creation_path"),
        ),
    ];
    let wrapped = s("wrapped_accessor");
    if !wrapped.is_empty() {
        pairs.push(("wrapped_accessor:".to_string(), wrapped));
    }
    pairs
}

/// An RFC 3339 UTC time as Go's `time.Time` prints it (`2006-01-02 15:04:05.999 +0000 UTC`).
fn go_time(rfc3339: &str) -> String {
    match rfc3339.strip_suffix('Z') {
        Some(t) => format!("{} +0000 UTC", t.replacen('T', " ", 1)),
        None => rfc3339.to_string(),
    }
}

fn auth_pairs(auth: &Value) -> Vec<(String, String)> {
    let s = |k: &str| auth.get(k).map(go_value).unwrap_or_default();
    let duration = auth
        .get("lease_duration")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut pairs = vec![
        ("token".to_string(), s("client_token")),
        ("token_accessor".to_string(), s("accessor")),
        (
            "token_duration".to_string(),
            if duration == 0 {
                "∞".to_string()
            } else {
                human_duration(duration)
            },
        ),
        ("token_renewable".to_string(), s("renewable")),
        (
            "token_policies".to_string(),
            go_quoted_list(auth.get("token_policies")),
        ),
        (
            "identity_policies".to_string(),
            go_quoted_list(auth.get("identity_policies")),
        ),
        ("policies".to_string(), go_quoted_list(auth.get("policies"))),
    ];
    if let Some(meta) = auth.get("metadata").and_then(Value::as_object) {
        let mut keys: Vec<&String> = meta.keys().collect();
        keys.sort();
        for k in keys {
            pairs.push((format!("token_meta_{k}"), go_value(&meta[k.as_str()])));
        }
    }
    pairs
}

/// The value `-field=NAME` selects from a secret: the lease, auth and wrapping names the
/// table shows, else a key of `data`. None if the secret has no such field.
pub fn secret_field<'a>(secret: &'a Value, field: &str) -> Option<&'a Value> {
    let auth = secret.get("auth").filter(|a| a.is_object());
    let wrap = secret.get("wrap_info").filter(|w| w.is_object());
    let (source, key) = match field {
        "refresh_interval" | "lease_duration" => (Some(secret), "lease_duration"),
        "lease_id" => (Some(secret), "lease_id"),
        "lease_renewable" => (Some(secret), "renewable"),
        "token" if auth.is_some() => (auth, "client_token"),
        "token_accessor" if auth.is_some() => (auth, "accessor"),
        "token_duration" if auth.is_some() => (auth, "lease_duration"),
        "token_renewable" if auth.is_some() => (auth, "renewable"),
        "token_policies" | "identity_policies" | "policies" if auth.is_some() => (auth, field),
        "wrapping_token" if wrap.is_some() => (wrap, "token"),
        "wrapping_accessor" if wrap.is_some() => (wrap, "accessor"),
        "wrapping_token_ttl" if wrap.is_some() => (wrap, "ttl"),
        "wrapping_token_creation_time" if wrap.is_some() => (wrap, "creation_time"),
        "wrapping_token_creation_path" if wrap.is_some() => (wrap, "creation_path"),
        "wrapped_accessor" if wrap.is_some() => (wrap, "wrapped_accessor"),
        _ => (secret.get("data"), field),
    };
    source.and_then(|s| s.get(key))
}

/// One `-field` value as printed: Go's `%v` text in table format, else a document.
pub fn field_text(format: Format, v: &Value) -> String {
    match format {
        Format::Table => go_value(v),
        Format::Json => json_text(v),
        Format::Yaml => yaml::to_yaml(v),
    }
}

/// The warnings block printed under a table.
pub fn warnings_text(secret: &Value) -> Option<String> {
    let list = secret.get("warnings")?.as_array()?;
    if list.is_empty() {
        return None;
    }
    let mut text = String::from("WARNING! The following warnings were returned from Vault:\n\n");
    for w in list {
        for line in word_wrap(&format!("* {}", go_value(w)), 76) {
            text.push_str(&format!("  {line}\n"));
        }
    }
    Some(text)
}

/// Breaks text at spaces into lines of at most `width` characters (a longer word keeps its
/// own line), as the CLI wraps warnings and help.
pub fn word_wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        for word in paragraph.split(' ').filter(|w| !w.is_empty()) {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_values() {
        assert_eq!(go_value(&json!(null)), "<nil>");
        assert_eq!(go_value(&json!({"b": "two", "a": 1})), "map[a:1 b:two]");
        assert_eq!(go_value(&json!(["x", true, [1]])), "[x true [1]]");
        assert_eq!(
            go_quoted_list(Some(&json!(["default", "p1"]))),
            r#"["default" "p1"]"#
        );
        assert_eq!(go_quoted_list(None), "[]");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(2764800), "768h");
        assert_eq!(human_duration(5400), "1h30m");
        assert_eq!(human_duration(100), "1m40s");
        assert_eq!(human_duration(3605), "1h0m5s");
        assert_eq!(human_duration(45), "45s");
    }

    #[test]
    fn tables_align_like_vault() {
        let t = kv_table(&[
            ("a".into(), "1".into()),
            ("custom_metadata".into(), "<nil>".into()),
            ("deletion_time".into(), "".into()),
        ]);
        assert_eq!(
            t,
            "Key                Value\n---                -----\na                  1\ncustom_metadata    <nil>\ndeletion_time      n/a\n"
        );
    }

    #[test]
    fn warnings_wrap_at_80_columns() {
        let s = json!({"warnings": ["Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use."]});
        assert_eq!(
            warnings_text(&s).unwrap(),
            "WARNING! The following warnings were returned from Vault:\n\n  * Invalid path for a versioned K/V secrets engine. See the API docs for the\n  appropriate API endpoints to use.\n"
        );
    }

    #[test]
    fn wrapped_responses() {
        let s = json!({"lease_duration": 0, "data": null, "wrap_info": {
            "token": "s.w", "accessor": "acc", "ttl": 300,
            "creation_time": "2026-11-21T10:08:29.824564966Z", "creation_path": "secret/data/zz",
            "wrapped_accessor": ""}});
        let pairs = secret_pairs(&s);
        assert_eq!(pairs.len(), 5);
        assert_eq!(pairs[0], ("wrapping_token:".to_string(), "s.w".to_string()));
        assert_eq!(pairs[2].1, "5m");
        assert_eq!(pairs[3].1, "2026-11-21 10:08:29.824564966 +0000 UTC");
        assert_eq!(secret_field(&s, "wrapping_token"), Some(&json!("s.w")));
        assert!(secret_json(&s).get("wrap_info").is_some());
    }

    #[test]
    fn banners() {
        assert_eq!(
            pad_equal_signs("Secret Path", "secret/data/foo".len()),
            "= Secret Path ="
        );
        let m = |keys: &[&str]| {
            keys.iter()
                .map(|k| (k.to_string(), Value::Null))
                .collect::<Map<_, _>>()
        };
        assert_eq!(header_for_map("Data", &m(&["a", "b"])), "== Data ==");
        assert_eq!(
            header_for_map("Data", &m(&["averyveryverylongkey"])),
            "============ Data ============"
        );
        assert_eq!(
            header_for_map("Metadata", &m(&["custom_metadata", "version"])),
            "======= Metadata ======="
        );
    }

    #[test]
    fn secret_rendering() {
        let s = json!({
            "request_id": "r", "lease_id": "", "lease_duration": 2764800, "renewable": false,
            "data": {"a": "b", "creation_ttl": 0, "ttl": 3600}, "mount_type": "kv",
            "wrap_info": null, "warnings": null, "auth": null
        });
        assert_eq!(
            secret_pairs(&s),
            vec![
                ("refresh_interval".to_string(), "768h".to_string()),
                ("a".to_string(), "b".to_string()),
                ("creation_ttl".to_string(), "0s".to_string()),
                ("ttl".to_string(), "1h".to_string()),
            ]
        );
        let j = secret_json(&s);
        let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "request_id",
                "lease_id",
                "lease_duration",
                "renewable",
                "data",
                "warnings"
            ]
        );
        assert_eq!(secret_field(&s, "a"), Some(&json!("b")));
        assert_eq!(secret_field(&s, "refresh_interval"), Some(&json!(2764800)));
        assert_eq!(field_text(Format::Table, &json!(["x", "y"])), "[x y]");
        assert_eq!(field_text(Format::Json, &json!("x")), "\"x\"");
        assert_eq!(field_text(Format::Yaml, &json!(["x"])), "- x\n");
        assert_eq!(secret_field(&s, "nope"), None);

        let t = json!({"lease_duration": 0, "auth": {
            "client_token": "s.x", "accessor": "acc", "lease_duration": 3600, "renewable": true,
            "policies": ["default"], "token_policies": ["default"], "metadata": {"a": "b"}}});
        let pairs = secret_pairs(&t);
        assert_eq!(pairs[0], ("token".to_string(), "s.x".to_string()));
        assert_eq!(pairs[2], ("token_duration".to_string(), "1h".to_string()));
        assert_eq!(
            pairs[4],
            ("token_policies".to_string(), r#"["default"]"#.to_string())
        );
        assert_eq!(
            pairs[5],
            ("identity_policies".to_string(), "[]".to_string())
        );
        assert_eq!(pairs[7], ("token_meta_a".to_string(), "b".to_string()));
        assert_eq!(secret_field(&t, "token"), Some(&json!("s.x")));
    }
}

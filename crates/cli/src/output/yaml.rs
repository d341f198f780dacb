//! `-format=yaml`: block-style YAML with sorted keys, two-space indentation and lists at
//! their key's indentation, the layout the vault CLI's YAML library produces. Strings are
//! quoted only when a YAML reader would otherwise take them for something else.

use serde_json::Value;

/// Renders a value as a YAML document (ending with a newline).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => object(&mut out, v, 0),
        Value::Array(a) if !a.is_empty() => array(&mut out, a, 0),
        other => {
            out.push_str(&inline(other, 0));
            out.push('\n');
        }
    }
    out
}

fn pad(n: usize) -> String {
    " ".repeat(n)
}

fn object(out: &mut String, v: &Value, indent: usize) {
    let Some(map) = v.as_object() else {
        return;
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for k in keys {
        let value = &map[k.as_str()];
        out.push_str(&format!("{}{}:", pad(indent), scalar(k)));
        match value {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                object(out, value, indent + 2);
            }
            // A list sits at its key's indentation.
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                array(out, a, indent);
            }
            other => {
                out.push(' ');
                out.push_str(&inline(other, indent + 2));
                out.push('\n');
            }
        }
    }
}

fn array(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        match item {
            Value::Object(m) if !m.is_empty() => {
                // The first key goes on the dash's line: render at indent + 2, then put the
                // dash in place of the first line's leading spaces.
                let mut block = String::new();
                object(&mut block, item, indent + 2);
                out.push_str(&pad(indent));
                out.push_str("- ");
                out.push_str(&block[indent + 2..]);
            }
            Value::Array(a) if !a.is_empty() => {
                let mut block = String::new();
                array(&mut block, a, indent + 2);
                out.push_str(&pad(indent));
                out.push_str("- ");
                out.push_str(&block[indent + 2..]);
            }
            other => {
                out.push_str(&format!("{}- {}\n", pad(indent), inline(other, indent + 2)));
            }
        }
    }
}

/// A value that fits after `key: ` (a multi-line string becomes a literal block indented to
/// `block_indent`).
fn inline(v: &Value, block_indent: usize) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Object(_) => "{}".to_string(),
        Value::Array(_) => "[]".to_string(),
        Value::String(s) if s.contains('\n') => literal_block(s, block_indent),
        Value::String(s) => scalar(s),
    }
}

fn literal_block(s: &str, indent: usize) -> String {
    let chomp = if !s.ends_with('\n') {
        "-"
    } else if s.ends_with("\n\n") {
        "+"
    } else {
        ""
    };
    // Content that starts with a space or a blank line needs an explicit indentation.
    let indicator = if s.starts_with(' ') || s.starts_with('\n') {
        "2"
    } else {
        ""
    };
    let body = s.strip_suffix('\n').unwrap_or(s);
    let mut out = format!("|{indicator}{chomp}");
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad(indent));
            out.push_str(line);
        }
    }
    out
}

/// A single-line string, quoted when needed.
fn scalar(s: &str) -> String {
    if s.is_empty() || reads_as_other_type(s) {
        return serde_json::to_string(s).unwrap_or_default();
    }
    let first = s.chars().next().unwrap_or(' ');
    let needs_quotes = "-?:,[]{}#&*!|>'\"%@` ".contains(first)
        || s.ends_with(' ')
        || s.ends_with(':')
        || s.contains(": ")
        || s.contains(" #")
        || s.chars().any(|c| c.is_control());
    if needs_quotes {
        if s.chars().any(|c| c.is_control()) {
            return serde_json::to_string(s).unwrap_or_default();
        }
        return format!("'{}'", s.replace('\'', "''"));
    }
    s.to_string()
}

/// Booleans, nulls, numbers and timestamps of YAML 1.1, which a reader would not take as
/// strings.
fn reads_as_other_type(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "yes", "n", "no", "true", "false", "on", "off", "null", "~",
    ];
    if WORDS.contains(&s.to_ascii_lowercase().as_str()) {
        return true;
    }
    let digits = s.trim_start_matches(['+', '-']);
    let numeric = !digits.is_empty()
        && (digits.parse::<f64>().is_ok()
            || digits.starts_with("0x") && i64::from_str_radix(&digits[2..], 16).is_ok()
            || matches!(digits, ".inf" | ".Inf" | ".nan" | ".NaN"));
    let b = s.as_bytes();
    let date = b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit);
    numeric || date
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layout_matches_the_vault_cli() {
        let v = json!({
            "request_id": "9e0d5f69-fc07",
            "data": {"data": {"t": "true", "n": "12", "m": "a: b", "h": "#x", "q": "it's",
                              "e": "", "sp": " lead", "multi": "line1\nline2"},
                     "metadata": {"created_time": "2026-11-21T10:09:17Z", "custom_metadata": null,
                                  "version": 1, "destroyed": false}},
            "keys": ["default", "root"],
            "warnings": null,
            "empty": {}, "none": []
        });
        let expected = "\
data:
  data:
    e: \"\"
    h: '#x'
    m: 'a: b'
    multi: |-
      line1
      line2
    \"n\": \"12\"
    q: it's
    sp: ' lead'
    t: \"true\"
  metadata:
    created_time: \"2026-11-21T10:09:17Z\"
    custom_metadata: null
    destroyed: false
    version: 1
empty: {}
keys:
- default
- root
none: []
request_id: 9e0d5f69-fc07
warnings: null
";
        assert_eq!(to_yaml(&v), expected);
    }

    #[test]
    fn lists_of_maps_and_blocks() {
        let v =
            json!({"leases": [{"lease_id": "a/1", "error": "x"}], "policy": "\n# c\npath {}\n"});
        assert_eq!(
            to_yaml(&v),
            "leases:\n- error: x\n  lease_id: a/1\npolicy: |2\n\n  # c\n  path {}\n"
        );
        assert_eq!(to_yaml(&json!(["a", "b"])), "- a\n- b\n");
    }
}

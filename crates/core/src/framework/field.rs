//! Typed fields with Vault's weak typing: the CLI sends every value as a string, hvac sends
//! `null` for "not given", lists may be comma-separated. Parsing happens once, here; every
//! failure becomes the same 400 `Field validation failed: ...`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::duration;
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Str,
    Bool,
    Int,
    /// Non-negative duration in seconds.
    Duration,
    /// Duration that may be negative (JWT leeways, `-1` = off).
    SignedDuration,
    /// A list from an array or a comma-separated string (trimmed, empties dropped).
    CommaList,
    /// A list from an array or a single string (no comma splitting).
    List,
    /// A JSON object.
    Map,
    /// `{"k":"v"}` or `["k=v", ...]` or `"k=v,k2=v2"`.
    KvPairs,
    /// Anything, unparsed.
    Any,
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub kind: FieldType,
    pub default: Option<Value>,
    pub required: bool,
    pub description: &'static str,
}

impl Field {
    pub const fn new(name: &'static str, kind: FieldType, description: &'static str) -> Self {
        Field {
            name,
            kind,
            default: None,
            required: false,
            description,
        }
    }

    pub fn default(mut self, v: Value) -> Self {
        self.default = Some(v);
        self
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
}

/// Shorthands for declaring fields.
pub fn str(name: &'static str, d: &'static str) -> Field {
    Field::new(name, FieldType::Str, d)
}
pub fn bool(name: &'static str, d: &'static str) -> Field {
    Field::new(name, FieldType::Bool, d)
}
pub fn int(name: &'static str, d: &'static str) -> Field {
    Field::new(name, FieldType::Int, d)
}
pub fn dur(name: &'static str, d: &'static str) -> Field {
    Field::new(name, FieldType::Duration, d)
}
pub fn list(name: &'static str, d: &'static str) -> Field {
    Field::new(name, FieldType::CommaList, d)
}
pub fn map(name: &'static str, d: &'static str) -> Field {
    Field::new(name, FieldType::Map, d)
}
pub fn kv(name: &'static str, d: &'static str) -> Field {
    Field::new(name, FieldType::KvPairs, d)
}
pub fn any(name: &'static str, d: &'static str) -> Field {
    Field::new(name, FieldType::Any, d)
}

/// One parsed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Str(String),
    Bool(bool),
    Int(i64),
    Secs(i64),
    List(Vec<String>),
    Map(Map<String, Value>),
    Kv(BTreeMap<String, String>),
    Any(Value),
}

fn validation(name: &str, msg: impl std::fmt::Display) -> Error {
    Error::bad(format!(
        "Field validation failed: error converting input {msg} for field \"{name}\""
    ))
}

fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Parses one raw value as `kind`. `Ok(None)` when the value means "not supplied" (`null`).
pub fn parse(name: &str, kind: FieldType, v: &Value) -> Result<Option<Parsed>> {
    if v.is_null() && kind != FieldType::Any {
        return Ok(None);
    }
    let bad = |v: &Value| validation(name, v);
    let parsed = match kind {
        FieldType::Any => Parsed::Any(v.clone()),
        FieldType::Str => Parsed::Str(as_string(v).ok_or_else(|| bad(v))?),
        FieldType::Bool => Parsed::Bool(match v {
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_i64().map(|i| i != 0).ok_or_else(|| bad(v))?,
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "1" | "t" | "true" => true,
                "0" | "f" | "false" | "" => false,
                _ => return Err(bad(v)),
            },
            _ => return Err(bad(v)),
        }),
        FieldType::Int => Parsed::Int(match v {
            Value::Number(n) => match n.as_i64() {
                Some(i) => i,
                None => n.as_f64().map(|f| f as i64).ok_or_else(|| bad(v))?,
            },
            Value::String(s) if s.trim().is_empty() => 0,
            Value::String(s) => s.trim().parse::<i64>().map_err(|_| bad(v))?,
            _ => return Err(bad(v)),
        }),
        FieldType::Duration | FieldType::SignedDuration => {
            let signed = kind == FieldType::SignedDuration;
            Parsed::Secs(duration::parse_value(v, signed).map_err(|e| validation(name, e))?)
        }
        FieldType::CommaList | FieldType::List => Parsed::List(match v {
            Value::Array(items) => items
                .iter()
                .map(|i| as_string(i).ok_or_else(|| bad(i)))
                .collect::<Result<_>>()?,
            Value::String(s) if kind == FieldType::CommaList => s
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect(),
            Value::String(s) if s.is_empty() => Vec::new(),
            other => vec![as_string(other).ok_or_else(|| bad(other))?],
        }),
        FieldType::Map => Parsed::Map(match v {
            Value::Object(m) => m.clone(),
            Value::String(s) if s.trim().is_empty() => Map::new(),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => m,
                _ => return Err(bad(v)),
            },
            _ => return Err(bad(v)),
        }),
        FieldType::KvPairs => Parsed::Kv(parse_kv(v).ok_or_else(|| bad(v))?),
    };
    Ok(Some(parsed))
}

fn parse_kv(v: &Value) -> Option<BTreeMap<String, String>> {
    let pair = |s: &str| -> Option<(String, String)> {
        let (k, val) = s.split_once('=')?;
        Some((k.trim().to_string(), val.trim().to_string()))
    };
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| Some((k.clone(), as_string(v)?)))
            .collect(),
        Value::Array(items) => items.iter().map(|i| pair(i.as_str()?)).collect(),
        Value::String(s) if s.trim().is_empty() => Some(BTreeMap::new()),
        Value::String(s) => s.split(',').map(pair).collect(),
        _ => None,
    }
}

/// The parsed fields of one request, with typed getters. Defaults declared on the field
/// apply when the request left a field out.
#[derive(Debug, Clone, Default)]
pub struct FieldData {
    values: BTreeMap<String, Parsed>,
    defaults: BTreeMap<String, Parsed>,
    /// The request's data as sent (for engines that store arbitrary keys, like KV).
    pub raw: Map<String, Value>,
}

impl FieldData {
    /// Parses `raw` against `fields`; captures from the path are already merged into `raw`.
    /// Returns the data and the names of keys no field declares.
    pub fn parse(fields: &[Field], raw: Map<String, Value>) -> Result<(FieldData, Vec<String>)> {
        let mut out = FieldData {
            raw,
            ..Default::default()
        };
        for f in fields {
            if let Some(v) = out.raw.get(f.name)
                && let Some(p) = parse(f.name, f.kind, v)?
            {
                out.values.insert(f.name.to_string(), p);
            }
            if let Some(d) = &f.default
                && let Some(p) = parse(f.name, f.kind, d)?
            {
                out.defaults.insert(f.name.to_string(), p);
            }
        }
        let unknown = out
            .raw
            .keys()
            .filter(|k| !fields.iter().any(|f| f.name == *k))
            .cloned()
            .collect();
        Ok((out, unknown))
    }

    /// Builds field data directly (tests, internal calls).
    pub fn from_pairs(pairs: Vec<(&str, Parsed)>) -> Self {
        FieldData {
            values: pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            ..Default::default()
        }
    }

    /// Checks that every required field is present.
    pub fn check_required(&self, fields: &[Field]) -> Result<()> {
        for f in fields.iter().filter(|f| f.required) {
            if !self.values.contains_key(f.name) {
                return Err(Error::bad(format!("missing required field \"{}\"", f.name)));
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&Parsed> {
        self.values.get(name).or_else(|| self.defaults.get(name))
    }

    /// True when the request itself supplied the field (defaults don't count).
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            Parsed::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn string(&self, name: &str) -> String {
        self.str(name).unwrap_or_default().to_string()
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.get(name)? {
            Parsed::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get(name)? {
            Parsed::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Duration in whole seconds (signed for signed fields).
    pub fn secs(&self, name: &str) -> Option<i64> {
        match self.get(name)? {
            Parsed::Secs(s) => Some(*s),
            _ => None,
        }
    }

    /// A non-negative duration; 0 when unset.
    pub fn duration(&self, name: &str) -> Duration {
        Duration::from_secs(self.secs(name).unwrap_or(0).max(0) as u64)
    }

    pub fn list(&self, name: &str) -> Option<&[String]> {
        match self.get(name)? {
            Parsed::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn list_or_empty(&self, name: &str) -> Vec<String> {
        self.list(name).map(<[String]>::to_vec).unwrap_or_default()
    }

    pub fn map(&self, name: &str) -> Option<&Map<String, Value>> {
        match self.get(name)? {
            Parsed::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn kv(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        match self.get(name)? {
            Parsed::Kv(m) => Some(m),
            _ => None,
        }
    }

    pub fn any(&self, name: &str) -> Option<&Value> {
        match self.get(name)? {
            Parsed::Any(v) => Some(v),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn weak_typing() {
        let fields = vec![
            bool("b", ""),
            int("i", ""),
            dur("t", ""),
            list("l", ""),
            kv("tags", ""),
            str("s", "").default(json!("dflt")),
        ];
        let raw = json!({"b": "true", "i": "42", "t": "1h", "l": "a, b,,c", "tags": ["k=v", "x=y"],
            "extra": 1});
        let (d, unknown) = FieldData::parse(&fields, raw.as_object().cloned().unwrap()).unwrap();
        assert_eq!(d.bool("b"), Some(true));
        assert_eq!(d.int("i"), Some(42));
        assert_eq!(d.secs("t"), Some(3600));
        assert_eq!(d.list("l").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            d.kv("tags").unwrap().get("x").map(String::as_str),
            Some("y")
        );
        assert_eq!(d.str("s"), Some("dflt"));
        assert!(!d.is_set("s"));
        assert_eq!(unknown, vec!["extra".to_string()]);
    }

    #[test]
    fn null_is_unset_and_bad_types_fail() {
        let fields = vec![int("i", ""), bool("b", "")];
        let (d, _) =
            FieldData::parse(&fields, json!({"i": null}).as_object().cloned().unwrap()).unwrap();
        assert!(!d.is_set("i"));
        for bad in [json!({"i": "x"}), json!({"b": "maybe"}), json!({"i": [1]})] {
            let e = FieldData::parse(&fields, bad.as_object().cloned().unwrap()).unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(e.to_string().starts_with("Field validation failed"), "{e}");
        }
    }
}

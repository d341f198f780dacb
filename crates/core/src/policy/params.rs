//! Parameter constraints of a matched rule (`required_parameters`, `denied_parameters`,
//! `allowed_parameters`) checked against a request's data, with Vault's value matching: string
//! values match globs (`foo*`, `*foo`, `*foo*`), a list or comma-separated string matches
//! element by element, an empty list matches anything.

use serde_json::{Map, Value};

use super::parse::Permissions;

/// True when `data` satisfies the parameter rules of `perms`.
pub(super) fn parameters_allowed(perms: &Permissions, data: &Map<String, Value>) -> bool {
    if perms
        .required_parameters
        .iter()
        .any(|p| !data.contains_key(&p.to_lowercase()))
    {
        return false;
    }
    if data.is_empty() {
        return true;
    }

    let denied = &perms.denied_parameters;
    if !denied.is_empty() {
        if denied.contains_key("*") {
            return false;
        }
        let hit = data.iter().any(|(name, value)| {
            denied
                .get(&name.to_lowercase())
                .is_some_and(|list| value_in_denied_list(value, list))
        });
        if hit {
            return false;
        }
    }

    let allowed = &perms.allowed_parameters;
    if allowed.is_empty() {
        return true;
    }
    let allowed_all = allowed.contains_key("*");
    if allowed_all && allowed.len() == 1 {
        return true;
    }
    data.iter()
        .all(|(name, value)| match allowed.get(&name.to_lowercase()) {
            Some(list) => value_in_allowed_list(value, list),
            None => allowed_all,
        })
}

fn value_in_allowed_list(value: &Value, list: &[Value]) -> bool {
    if list.is_empty() || value_in_list(value, list) {
        return true;
    }
    // Every element of a list value must be permitted.
    match elements(value) {
        Some(items) => items.iter().all(|v| value_in_list(v, list)),
        None => false,
    }
}

fn value_in_denied_list(value: &Value, list: &[Value]) -> bool {
    if list.is_empty() || value_in_list(value, list) {
        return true;
    }
    // Any forbidden element of a list value forbids the whole value.
    match elements(value) {
        Some(items) => items.iter().any(|v| value_in_list(v, list)),
        None => false,
    }
}

/// The elements of a list value, or of a string read as a comma-separated list (the field may
/// be one; matching it whole would let `"ok,forbidden"` through a denied list).
fn elements(value: &Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(items) => Some(items.clone()),
        Value::String(s) if s.is_empty() => Some(Vec::new()),
        Value::String(s) => Some(
            s.split(',')
                .map(|part| Value::String(part.trim().to_string()))
                .collect(),
        ),
        _ => None,
    }
}

fn value_in_list(value: &Value, list: &[Value]) -> bool {
    list.iter().any(|item| match (item, value) {
        (Value::Null, _) | (_, Value::Null) => item == value,
        (Value::String(pattern), Value::String(v)) => glob_match(pattern, v),
        (Value::String(_), _) => false,
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        _ => item == value,
    })
}

/// Vault's policy value glob: a leading and/or trailing `*`, nothing in between.
fn glob_match(pattern: &str, value: &str) -> bool {
    if pattern.len() < 2 {
        return pattern == value;
    }
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(_), Some(_)) => value.contains(&pattern[1..pattern.len() - 1]),
        (Some(suffix), None) => value.ends_with(suffix),
        (None, Some(prefix)) => value.starts_with(prefix),
        (None, None) => pattern == value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn perms(allowed: Value, denied: Value, required: &[&str]) -> Permissions {
        let to_map = |v: Value| {
            v.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_array().unwrap().clone()))
                .collect()
        };
        Permissions {
            allowed_parameters: to_map(allowed),
            denied_parameters: to_map(denied),
            required_parameters: required.iter().map(|s| s.to_string()).collect(),
            ..Permissions::default()
        }
    }

    fn data(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn policy_params_glob() {
        assert!(glob_match("foo*", "foobar"));
        assert!(glob_match("*bar", "foobar"));
        assert!(glob_match("*oba*", "foobar"));
        assert!(!glob_match("*x*", "foobar"));
        assert!(glob_match("*", "*"));
        assert!(!glob_match("*", "anything"));
        assert!(glob_match("exact", "exact"));
    }

    #[test]
    fn policy_params_table() {
        let none = json!({});
        let cases: Vec<(Permissions, Value, bool)> = vec![
            // No constraints.
            (
                perms(none.clone(), none.clone(), &[]),
                json!({"a": 1}),
                true,
            ),
            // Required.
            (
                perms(none.clone(), none.clone(), &["a"]),
                json!({"a": 1}),
                true,
            ),
            (
                perms(none.clone(), none.clone(), &["a"]),
                json!({"b": 1}),
                false,
            ),
            (perms(none.clone(), none.clone(), &["a"]), json!({}), false),
            // Allowed: listed keys only, values constrained, empty list = any value.
            (
                perms(json!({"a": []}), none.clone(), &[]),
                json!({"a": "x"}),
                true,
            ),
            (
                perms(json!({"a": []}), none.clone(), &[]),
                json!({"b": "x"}),
                false,
            ),
            (perms(json!({"a": []}), none.clone(), &[]), json!({}), true),
            (
                perms(json!({"a": ["x", "y*"]}), none.clone(), &[]),
                json!({"a": "ya"}),
                true,
            ),
            (
                perms(json!({"a": ["x"]}), none.clone(), &[]),
                json!({"a": "z"}),
                false,
            ),
            (
                perms(json!({"a": ["x", "y"]}), none.clone(), &[]),
                json!({"a": ["x", "y"]}),
                true,
            ),
            (
                perms(json!({"a": ["x", "y"]}), none.clone(), &[]),
                json!({"a": "x,y"}),
                true,
            ),
            (
                perms(json!({"a": ["x"]}), none.clone(), &[]),
                json!({"a": ["x", "z"]}),
                false,
            ),
            (
                perms(json!({"a": [1, 2]}), none.clone(), &[]),
                json!({"a": 2}),
                true,
            ),
            (
                perms(json!({"a": [1]}), none.clone(), &[]),
                json!({"a": "1"}),
                false,
            ),
            (
                perms(json!({"a": []}), none.clone(), &[]),
                json!({"A": "x"}),
                true,
            ),
            // `*` allows any other key; listed keys stay constrained.
            (
                perms(json!({"*": []}), none.clone(), &[]),
                json!({"q": 1}),
                true,
            ),
            (
                perms(json!({"*": [], "a": ["x"]}), none.clone(), &[]),
                json!({"q": 1}),
                true,
            ),
            (
                perms(json!({"*": [], "a": ["x"]}), none.clone(), &[]),
                json!({"a": "y"}),
                false,
            ),
            // Denied.
            (
                perms(none.clone(), json!({"a": []}), &[]),
                json!({"a": "x"}),
                false,
            ),
            (
                perms(none.clone(), json!({"a": []}), &[]),
                json!({"b": "x"}),
                true,
            ),
            (
                perms(none.clone(), json!({"a": ["bad*"]}), &[]),
                json!({"a": "good"}),
                true,
            ),
            (
                perms(none.clone(), json!({"a": ["bad*"]}), &[]),
                json!({"a": "badly"}),
                false,
            ),
            (
                perms(none.clone(), json!({"a": ["bad"]}), &[]),
                json!({"a": "ok,bad"}),
                false,
            ),
            (
                perms(none.clone(), json!({"a": ["bad"]}), &[]),
                json!({"a": ["ok", "bad"]}),
                false,
            ),
            (
                perms(none.clone(), json!({"*": []}), &[]),
                json!({"b": "x"}),
                false,
            ),
            (perms(none.clone(), json!({"*": []}), &[]), json!({}), true),
            // Denied wins over allowed.
            (
                perms(json!({"a": []}), json!({"a": ["x"]}), &[]),
                json!({"a": "x"}),
                false,
            ),
        ];
        for (i, (p, d, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                parameters_allowed(&p, &data(d.clone())),
                want,
                "case {i}: {d}"
            );
        }
    }
}

//! Policy text to `Policy`: HCL (v1 style: repeated `path "<pattern>" { ... }` blocks) or the
//! equivalent JSON, optionally base64-encoded. Parsing happens once, when a policy is written or
//! first loaded; requests only ever see the compiled `Acl`.
//!
//! Both syntaxes are first reduced to the same intermediate form, a list of
//! `(pattern, JSON object)` pairs in document order, so that one function validates rules
//! whichever syntax they came in. Repeated patterns within one policy are kept as separate
//! rules; the ACL compiler unions them like rules from different policies.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::capabilities::Capabilities;
use crate::{Error, Result};

/// A parsed ACL policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Store name (trimmed, lower-case); a `name` key inside the text is ignored.
    pub name: String,
    /// The policy text as written (after base64 decoding), returned by reads.
    pub raw: String,
    pub rules: Vec<PathRule>,
}

/// One `path "<pattern>" { ... }` block.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRule {
    /// The pattern with one leading `/` removed; `*`/`+` are interpreted by the ACL compiler.
    pub pattern: String,
    /// The pattern uses identity templating (`{{identity.entity.id}}`); such rules only apply
    /// to tokens with an identity entity, which lessor does not issue, so the ACL skips them.
    pub templated: bool,
    pub permissions: Permissions,
}

/// What a rule grants, and the constraints on how.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Permissions {
    pub capabilities: Capabilities,
    /// Parameter (lower-cased) -> permitted values; an empty list permits any value, key `*`
    /// permits any parameter. Empty map: no constraint.
    pub allowed_parameters: HashMap<String, Vec<Value>>,
    /// Parameter (lower-cased) -> forbidden values; an empty list forbids any value, key `*`
    /// forbids every parameter.
    pub denied_parameters: HashMap<String, Vec<Value>>,
    pub required_parameters: Vec<String>,
    pub min_wrapping_ttl: Option<Duration>,
    pub max_wrapping_ttl: Option<Duration>,
}

/// Keys a path block may hold. `mfa_methods` and `control_group` are accepted (Vault
/// Enterprise policies carry them) and ignored.
const PATH_KEYS: [&str; 10] = [
    "comment",
    "policy",
    "capabilities",
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "control_group",
];

fn parse_error(msg: impl std::fmt::Display) -> Error {
    Error::bad(format!("failed to parse policy: {msg}"))
}

/// Undoes the optional base64 wrapping clients may apply to policy text. Text that is not
/// valid standard base64 of UTF-8 is taken as it is (HCL and JSON never are).
pub fn decode_policy_text(text: &str) -> String {
    match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
        Ok(bytes) if !text.trim().is_empty() => match String::from_utf8(bytes) {
            Ok(decoded) => decoded,
            Err(_) => text.to_string(),
        },
        _ => text.to_string(),
    }
}

/// Parses policy text (HCL, JSON, or either base64-encoded) into a `Policy` named `name`.
pub fn parse_policy(name: &str, text: &str) -> Result<Policy> {
    parse_decoded(name, decode_policy_text(text))
}

/// Parses text already free of base64 wrapping (as stored), so it is never decoded twice.
pub(super) fn parse_decoded(name: &str, raw: String) -> Result<Policy> {
    check_nesting(&raw)?;
    let entries = if looks_like_json(&raw) {
        json_entries(&raw)?
    } else {
        hcl_entries(&raw)?
    };
    let rules = entries
        .into_iter()
        .map(|(pattern, body)| parse_rule(&pattern, &body))
        .collect::<Result<Vec<_>>>()?;
    Ok(Policy {
        name: name.trim().to_lowercase(),
        raw,
        rules,
    })
}

/// Deepest bracket nesting a policy may have. Real policies use three or four levels; the
/// bound keeps the recursive parsers far from the end of the stack on hostile input.
const MAX_NESTING: usize = 64;

/// Rejects text whose brackets nest deeper than `MAX_NESTING`. Brackets inside strings count
/// too, which only makes the bound stricter by what a string leaves unclosed.
fn check_nesting(text: &str) -> Result<()> {
    let mut depth = 0usize;
    for b in text.bytes() {
        match b {
            b'[' | b'{' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(parse_error("nesting too deep"));
                }
            }
            b']' | b'}' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn looks_like_json(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

type Entries = Vec<(String, Map<String, Value>)>;

fn json_entries(text: &str) -> Result<Entries> {
    let doc: Value = serde_json::from_str(text).map_err(parse_error)?;
    let Value::Object(top) = doc else {
        return Err(parse_error("does not contain a root object"));
    };
    let mut entries = Vec::new();
    for (key, value) in top {
        match key.as_str() {
            "name" => {}
            "path" => push_path_value(&mut entries, value)?,
            other => return Err(parse_error(format!("invalid key \"{other}\""))),
        }
    }
    Ok(entries)
}

/// `path` as an object of pattern -> body, or (HCL's JSON flavour) a list of such objects.
fn push_path_value(entries: &mut Entries, value: Value) -> Result<()> {
    match value {
        Value::Object(paths) => {
            for (pattern, body) in paths {
                push_body(entries, pattern, body)?;
            }
            Ok(())
        }
        Value::Array(items) => items
            .into_iter()
            .try_for_each(|item| push_path_value(entries, item)),
        _ => Err(parse_error("path must be an object")),
    }
}

fn push_body(entries: &mut Entries, pattern: String, body: Value) -> Result<()> {
    match body {
        Value::Object(map) => {
            entries.push((pattern, map));
            Ok(())
        }
        // A list of bodies for one pattern is one body split up (HCL's JSON flavour).
        Value::Array(items) => {
            let mut merged = Map::new();
            for item in items {
                match item {
                    Value::Object(map) => merged.extend(map),
                    _ => {
                        return Err(parse_error(format!(
                            "path \"{pattern}\": must be an object"
                        )));
                    }
                }
            }
            entries.push((pattern, merged));
            Ok(())
        }
        _ => Err(parse_error(format!(
            "path \"{pattern}\": must be an object"
        ))),
    }
}

fn hcl_entries(text: &str) -> Result<Entries> {
    let body = hcl::parse(text).map_err(parse_error)?;
    let mut entries = Vec::new();
    for structure in body.into_inner() {
        match structure {
            hcl::Structure::Attribute(attr) => match attr.key.as_str() {
                "name" => {}
                "path" => push_path_value(&mut entries, expr_to_json(attr.expr)?)?,
                other => return Err(parse_error(format!("invalid key \"{other}\""))),
            },
            hcl::Structure::Block(block) => match block.identifier.as_str() {
                "name" => {}
                "path" => {
                    let mut labels = block.labels.into_iter();
                    let (Some(label), None) = (labels.next(), labels.next()) else {
                        return Err(parse_error("path block needs exactly one pattern"));
                    };
                    let body = body_to_json(block.body)?;
                    entries.push((label.into_inner(), body));
                }
                other => return Err(parse_error(format!("invalid key \"{other}\""))),
            },
        }
    }
    Ok(entries)
}

/// A block body as a JSON object: attributes by key, nested blocks as (label-nested) objects,
/// which is how HCL v1 decodes `allowed_parameters { ... }` and `control_group { ... }`.
fn body_to_json(body: hcl::Body) -> Result<Map<String, Value>> {
    let mut map = Map::new();
    for structure in body.into_inner() {
        match structure {
            hcl::Structure::Attribute(attr) => {
                map.insert(attr.key.into_inner(), expr_to_json(attr.expr)?);
            }
            hcl::Structure::Block(block) => {
                let mut value = Value::Object(body_to_json(block.body)?);
                for label in block.labels.into_iter().rev() {
                    let mut wrapper = Map::new();
                    wrapper.insert(label.into_inner(), value);
                    value = Value::Object(wrapper);
                }
                let key = block.identifier.into_inner();
                match (map.get_mut(&key), value) {
                    (Some(Value::Object(existing)), Value::Object(more)) => existing.extend(more),
                    (_, value) => {
                        map.insert(key, value);
                    }
                }
            }
        }
    }
    Ok(map)
}

/// Literal HCL expressions as JSON. Policies are data: variables, function calls and
/// operators are rejected rather than evaluated.
fn expr_to_json(expr: hcl::Expression) -> Result<Value> {
    use hcl::Expression as E;
    Ok(match expr {
        E::Null => Value::Null,
        E::Bool(b) => Value::Bool(b),
        E::Number(n) => number_to_json(&n),
        E::String(s) => Value::String(s),
        E::TemplateExpr(t) => Value::String(t.to_string()),
        E::Parenthesis(inner) => expr_to_json(*inner)?,
        E::Array(items) => Value::Array(
            items
                .into_iter()
                .map(expr_to_json)
                .collect::<Result<Vec<_>>>()?,
        ),
        E::Object(object) => {
            let mut map = Map::new();
            for (key, value) in object {
                let key = match key {
                    hcl::ObjectKey::Identifier(ident) => ident.into_inner(),
                    hcl::ObjectKey::Expression(expr) => match expr_to_json(expr)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    },
                    _ => return Err(parse_error("unsupported object key")),
                };
                map.insert(key, expr_to_json(value)?);
            }
            Value::Object(map)
        }
        _ => {
            return Err(parse_error(
                "unsupported expression: only literal values are allowed",
            ));
        }
    })
}

fn number_to_json(n: &hcl::Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::from(i)
    } else if let Some(u) = n.as_u64() {
        Value::from(u)
    } else {
        n.as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number)
    }
}

/// Validates one path block and turns it into a rule.
fn parse_rule(key: &str, body: &Map<String, Value>) -> Result<PathRule> {
    let in_path = |msg: String| parse_error(format!("path \"{key}\": {msg}"));

    if let Some(bad) = body.keys().find(|k| !PATH_KEYS.contains(&k.as_str())) {
        return Err(in_path(format!("invalid key \"{bad}\"")));
    }

    let pattern = key.strip_prefix('/').unwrap_or(key).to_string();
    if pattern.contains("+*") {
        return Err(parse_error(format!(
            "path \"{pattern}\": invalid use of wildcards ('+*' is forbidden)"
        )));
    }
    let templated = check_templating(&pattern)?;

    let mut names = string_list(body.get("capabilities"))
        .ok_or_else(|| in_path("capabilities must be a list of strings".into()))?;
    if let Some(legacy) = body.get("policy") {
        let Value::String(legacy) = legacy else {
            return Err(in_path("policy must be a string".into()));
        };
        let implied: &[&str] = match legacy.as_str() {
            "" => &[],
            "deny" => &["deny"],
            "read" => &["read", "list"],
            "write" => &["create", "read", "update", "delete", "list"],
            "sudo" => &["create", "read", "update", "delete", "list", "sudo"],
            other => return Err(in_path(format!("invalid policy \"{other}\""))),
        };
        names.extend(implied.iter().map(|s| s.to_string()));
    }

    let mut permissions = Permissions::default();
    for name in &names {
        match Capabilities::from_name(name) {
            // A deny rule carries nothing else: its constraints could never apply.
            Some(Capabilities::DENY) => {
                permissions.capabilities = Capabilities::DENY;
                return Ok(PathRule {
                    pattern,
                    templated,
                    permissions,
                });
            }
            Some(cap) => permissions.capabilities |= cap,
            None => return Err(in_path(format!("invalid capability \"{name}\""))),
        }
    }

    let in_pattern =
        |what: &str, msg: String| parse_error(format!("path \"{pattern}\": {what}: {msg}"));
    permissions.allowed_parameters = parameter_map(body.get("allowed_parameters"))
        .map_err(|m| in_pattern("allowed_parameters", m))?;
    permissions.denied_parameters = parameter_map(body.get("denied_parameters"))
        .map_err(|m| in_pattern("denied_parameters", m))?;
    let required = string_list(body.get("required_parameters"))
        .ok_or_else(|| in_pattern("required_parameters", "must be a list of strings".into()))?;
    for name in &required {
        if name.contains('*') {
            return Err(in_pattern(
                "required_parameters",
                format!("parameter key \"{name}\": wildcard is not permitted here"),
            ));
        }
    }
    permissions.required_parameters = required;

    permissions.min_wrapping_ttl = wrapping_ttl(body.get("min_wrapping_ttl"))
        .map_err(|e| parse_error(format!("error parsing min_wrapping_ttl: {e}")))?;
    permissions.max_wrapping_ttl = wrapping_ttl(body.get("max_wrapping_ttl"))
        .map_err(|e| parse_error(format!("error parsing max_wrapping_ttl: {e}")))?;
    if let (Some(min), Some(max)) = (permissions.min_wrapping_ttl, permissions.max_wrapping_ttl)
        && max < min
    {
        return Err(parse_error(
            "max_wrapping_ttl cannot be less than min_wrapping_ttl",
        ));
    }

    Ok(PathRule {
        pattern,
        templated,
        permissions,
    })
}

/// A list of strings; a lone string counts as a one-element list (HCL v1 decodes it so).
/// `None` when the value has another shape; a missing value is an empty list.
fn string_list(value: Option<&Value>) -> Option<Vec<String>> {
    match value {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::String(s)) => Some(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(_) => None,
    }
}

/// `allowed_parameters`/`denied_parameters`: parameter -> list of values. Keys are lower-cased
/// (matching is case-insensitive on names); a wildcard key may only be `*` itself.
fn parameter_map(
    value: Option<&Value>,
) -> std::result::Result<HashMap<String, Vec<Value>>, String> {
    let mut out = HashMap::new();
    let objects: Vec<&Map<String, Value>> = match value {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Object(map)) => vec![map],
        // HCL's JSON flavour may split one object into a list of objects.
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_object().ok_or("must be a map"))
            .collect::<std::result::Result<_, _>>()?,
        Some(_) => return Err("must be a map".into()),
    };
    for map in objects {
        for (key, values) in map {
            if key.contains('*') && key != "*" {
                return Err(format!(
                    "parameter key \"{key}\" cannot contain non-tail wildcards"
                ));
            }
            let values = match values {
                Value::Null => Vec::new(),
                Value::Array(items) => items.clone(),
                scalar => vec![scalar.clone()],
            };
            out.insert(key.to_lowercase(), values);
        }
    }
    Ok(out)
}

/// A wrapping TTL: seconds as a number or a duration string; zero means unset.
fn wrapping_ttl(value: Option<&Value>) -> std::result::Result<Option<Duration>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    let secs = crate::duration::parse_value(value, false)?;
    Ok(u64::try_from(secs)
        .ok()
        .filter(|s| *s > 0)
        .map(Duration::from_secs))
}

/// Checks `{{...}}` identity templates in a pattern: true when it has any; an error when one is
/// unterminated or names something other than identity data.
fn check_templating(pattern: &str) -> Result<bool> {
    let mut rest = pattern;
    let mut found = false;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(parse_error(format!(
                "failed to validate policy templating: unterminated template in \"{pattern}\""
            )));
        };
        let name = after[..end].trim();
        if !(name.starts_with("identity.entity.") || name.starts_with("identity.groups.")) {
            return Err(parse_error(format!(
                "failed to validate policy templating: invalid template \"{name}\""
            )));
        }
        found = true;
        rest = &after[end + 2..];
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(p: &Policy, i: usize) -> Vec<&'static str> {
        p.rules[i].permissions.capabilities.names()
    }

    #[test]
    fn policy_parse_hcl_blocks_in_order() {
        let p = parse_policy(
            " Dev ",
            r#"
            name = "ignored"
            # comment
            path "secret/*" {
              capabilities = ["read", "list"]
            }
            path "/secret/foo" { capabilities = ["create", "update",] }
            path "secret/foo" { capabilities = ["delete"] }
            "#,
        )
        .unwrap();
        assert_eq!(p.name, "dev");
        assert_eq!(p.rules.len(), 3);
        assert_eq!(p.rules[0].pattern, "secret/*");
        assert_eq!(caps(&p, 0), ["list", "read"]);
        assert_eq!(p.rules[1].pattern, "secret/foo");
        assert_eq!(caps(&p, 1), ["create", "update"]);
        assert_eq!(p.rules[2].pattern, "secret/foo");
    }

    #[test]
    fn policy_parse_json_equals_hcl() {
        let hcl = r#"
            path "secret/data/*" {
              capabilities = ["create", "read"]
              allowed_parameters = {
                "Foo" = ["bar", "baz*"]
                "*"   = []
              }
              denied_parameters = { "zip" = [] }
              required_parameters = ["foo"]
              min_wrapping_ttl = "1s"
              max_wrapping_ttl = 90
            }
            path "auth/token/create" { policy = "write" }
        "#;
        let json = r#"{
            "path": {
              "secret/data/*": {
                "capabilities": ["create", "read"],
                "allowed_parameters": {"Foo": ["bar", "baz*"], "*": []},
                "denied_parameters": {"zip": []},
                "required_parameters": ["foo"],
                "min_wrapping_ttl": "1s",
                "max_wrapping_ttl": 90
              },
              "auth/token/create": {"policy": "write"}
            }
        }"#;
        let a = parse_policy("p", hcl).unwrap();
        let b = parse_policy("p", json).unwrap();
        assert_eq!(a.rules, b.rules);
        let perms = &a.rules[0].permissions;
        assert_eq!(perms.allowed_parameters["foo"].len(), 2);
        assert!(perms.allowed_parameters["*"].is_empty());
        assert_eq!(perms.required_parameters, ["foo"]);
        assert_eq!(perms.min_wrapping_ttl, Some(Duration::from_secs(1)));
        assert_eq!(perms.max_wrapping_ttl, Some(Duration::from_secs(90)));
        assert_eq!(caps(&a, 1), ["create", "delete", "list", "read", "update"]);
    }

    #[test]
    fn policy_parse_json_list_flavour() {
        let p = parse_policy(
            "p",
            r#"{"path": [{"a/*": [{"capabilities": ["read"]}]}, {"b": {"policy": "sudo"}}]}"#,
        )
        .unwrap();
        assert_eq!(p.rules.len(), 2);
        assert_eq!(caps(&p, 0), ["read"]);
        assert_eq!(
            caps(&p, 1),
            ["create", "delete", "list", "read", "sudo", "update"]
        );
    }

    #[test]
    fn policy_parse_legacy_policies() {
        let p = parse_policy(
            "p",
            r#"
            path "a" { policy = "deny" }
            path "b" { policy = "read" }
            path "c" { policy = "write" }
            path "d" { policy = "sudo" }
            "#,
        )
        .unwrap();
        assert_eq!(caps(&p, 0), ["deny"]);
        assert_eq!(caps(&p, 1), ["list", "read"]);
        assert_eq!(caps(&p, 2), ["create", "delete", "list", "read", "update"]);
        assert_eq!(
            caps(&p, 3),
            ["create", "delete", "list", "read", "sudo", "update"]
        );
        let err = parse_policy("p", r#"path "a" { policy = "admin" }"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"failed to parse policy: path "a": invalid policy "admin""#
        );
    }

    #[test]
    fn policy_parse_deny_drops_everything_else() {
        let p = parse_policy(
            "p",
            r#"path "a" {
                capabilities = ["read", "deny", "update"]
                allowed_parameters = { "x" = [] }
            }"#,
        )
        .unwrap();
        assert_eq!(p.rules[0].permissions.capabilities, Capabilities::DENY);
        assert!(p.rules[0].permissions.allowed_parameters.is_empty());
    }

    #[test]
    fn policy_parse_base64_input() {
        let text = r#"path "secret/*" { capabilities = ["read"] }"#;
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        let p = parse_policy("p", &encoded).unwrap();
        assert_eq!(p.raw, text);
        assert_eq!(p.rules, parse_policy("p", text).unwrap().rules);
        let json = r#"{"path":{"secret/*":{"capabilities":["read"]}}}"#;
        let encoded = base64::engine::general_purpose::STANDARD.encode(json);
        assert_eq!(parse_policy("p", &encoded).unwrap().rules.len(), 1);
    }

    #[test]
    fn policy_parse_errors_are_400_with_vault_wording() {
        let cases = [
            (
                r#"path "secret/*" { capabilities = ["read", "scan"] }"#,
                r#"failed to parse policy: path "secret/*": invalid capability "scan""#,
            ),
            (
                r#"path "/secret/+*" { capabilities = ["read"] }"#,
                r#"failed to parse policy: path "secret/+*": invalid use of wildcards ('+*' is forbidden)"#,
            ),
            (
                r#"path "a" { capability = ["read"] }"#,
                r#"failed to parse policy: path "a": invalid key "capability""#,
            ),
            (
                r#"paths "a" { capabilities = ["read"] }"#,
                r#"failed to parse policy: invalid key "paths""#,
            ),
            (
                r#"path "a" {
                    capabilities = ["read"]
                    allowed_parameters = { "a*" = [] }
                }"#,
                r#"failed to parse policy: path "a": allowed_parameters: parameter key "a*" cannot contain non-tail wildcards"#,
            ),
            (
                r#"path "a" {
                    capabilities = ["read"]
                    min_wrapping_ttl = 60
                    max_wrapping_ttl = 30
                }"#,
                "failed to parse policy: max_wrapping_ttl cannot be less than min_wrapping_ttl",
            ),
            (
                r#"path "a/{{nope}}" { capabilities = ["read"] }"#,
                r#"failed to parse policy: failed to validate policy templating: invalid template "nope""#,
            ),
            (
                r#"path "a" { capabilities = [read] }"#,
                "failed to parse policy: unsupported expression: only literal values are allowed",
            ),
        ];
        for (text, want) in cases {
            let err = parse_policy("p", text).unwrap_err();
            assert_eq!(err.status(), 400, "{text}");
            assert_eq!(err.to_string(), want, "{text}");
        }
        for bad in ["path \"a\" {", "{\"path\": ", "{\"path\": 3}"] {
            let err = parse_policy("p", bad).unwrap_err();
            assert_eq!(err.status(), 400);
            assert!(
                err.to_string().starts_with("failed to parse policy: "),
                "{err}"
            );
        }
    }

    #[test]
    fn policy_parse_real_world_hcl() {
        let p = parse_policy(
            "p",
            r#"
            // Line comment
            /* Block
               comment */
            path "secret/data/{{identity.entity.name}}/*" {
              capabilities = ["create", "update", "read", "delete"]
            }
            path "secret/metadata/*" {
              capabilities = [
                "list",
              ]
            }
            path "auth/approle/role/+/secret-id" {
              capabilities = ["update"]
              min_wrapping_ttl = "1m"
              max_wrapping_ttl = 3600
            }
            path "sys/policies/acl/*" {
              capabilities = ["create", "read", "update", "delete", "list", "sudo"]
              allowed_parameters = {
                "policy" = []
                "name" = ["dev-*", "*-ops"]
              }
              denied_parameters = {
                "*" = []
              }
            }
            path "sys/mounts/*" {
              capabilities = ["create", "update"]
              allowed_parameters {
                type = ["kv"]
              }
            }
            "#,
        )
        .unwrap();
        assert_eq!(p.rules.len(), 5);
        assert!(p.rules[0].templated);
        assert_eq!(caps(&p, 1), ["list"]);
        assert_eq!(
            p.rules[2].permissions.min_wrapping_ttl,
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            p.rules[3].permissions.allowed_parameters["name"],
            vec![Value::from("dev-*"), Value::from("*-ops")]
        );
        assert!(p.rules[3].permissions.denied_parameters["*"].is_empty());
        assert_eq!(
            p.rules[4].permissions.allowed_parameters["type"],
            vec![Value::from("kv")]
        );
    }

    #[test]
    fn policy_parse_rejects_deep_nesting() {
        let deep = format!(
            "path \"a\" {{ capabilities = {}{} }}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let err = parse_policy("p", &deep).unwrap_err();
        assert_eq!(err.to_string(), "failed to parse policy: nesting too deep");
        let deep_json = format!(
            "{{\"path\": {}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(parse_policy("p", &deep_json).unwrap_err().status(), 400);
    }

    #[test]
    fn policy_parse_templated_and_empty() {
        let p = parse_policy(
            "p",
            r#"path "identity/entity/id/{{identity.entity.id}}" { capabilities = ["read"] }"#,
        )
        .unwrap();
        assert!(p.rules[0].templated);
        assert!(parse_policy("p", "").unwrap().rules.is_empty());
        assert!(parse_policy("p", "# nothing\n").unwrap().rules.is_empty());
        let p = parse_policy("p", r#"path "a" {}"#).unwrap();
        assert!(p.rules[0].permissions.capabilities.is_empty());
    }
}

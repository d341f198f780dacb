//! Audit entries: the JSON shape of one request or response line, and the salting of it.
//!
//! An entry is built once per device, because each device hashes with its own salt and has
//! its own `hmac_accessor` / `log_raw` / `elide_list_responses` settings. Tokens, accessors
//! and every string leaf of request and response data are replaced by
//! `hmac-sha256:<hex>`; paths, policies, metadata and lease ids stay readable so a log can be
//! analysed without the salt.

use std::borrow::Cow;
use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::logical::{AuthSpec, Caller, Request, Response};

/// Request data keys left readable: lease ids name a lease, they do not grant anything
/// (they are readable in paths and responses too), and keeping them plain lets the lease
/// report correlate a revocation with the issue.
const PLAIN_DATA_KEYS: &[&str] = &["lease_id"];

/// `hmac-sha256:<hex>` of `input` under `salt`.
pub fn hmac_hex(salt: &[u8], input: &str) -> String {
    Keyed::new(salt).hash(input)
}

/// A device's HMAC, keyed once: each hash clones the keyed state instead of keying again.
#[derive(Clone)]
pub struct Keyed(Option<Hmac<Sha256>>);

impl Keyed {
    pub fn new(salt: &[u8]) -> Keyed {
        // HMAC takes a key of any length, so keying cannot fail.
        Keyed(Hmac::<Sha256>::new_from_slice(salt).ok())
    }

    /// `hmac-sha256:<hex>` of `input`.
    pub fn hash(&self, input: &str) -> String {
        let Some(mut mac) = self.0.clone() else {
            return "hmac-sha256:".to_string();
        };
        mac.update(input.as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// How one device salts an entry.
pub struct Salting<'a> {
    pub key: &'a Keyed,
    pub log_raw: bool,
    pub hmac_accessor: bool,
    pub elide_list_responses: bool,
}

/// What the core knows of the token that made the request.
#[derive(Default)]
pub struct TokenInfo<'a> {
    pub caller: Option<&'a Caller>,
    pub token_type: &'a str,
    pub token_ttl: i64,
}

/// Everything an entry is built from.
pub struct Record<'a> {
    pub req: &'a Request,
    pub token: TokenInfo<'a>,
    pub time: &'a str,
}

/// A string as the device logs it: hashed unless raw or empty.
fn salted<'a>(s: &Salting<'_>, v: &'a str) -> Cow<'a, str> {
    if s.log_raw || v.is_empty() {
        Cow::Borrowed(v)
    } else {
        Cow::Owned(s.key.hash(v))
    }
}

fn salted_accessor<'a>(s: &Salting<'_>, v: &'a str) -> Cow<'a, str> {
    if s.hmac_accessor {
        salted(s, v)
    } else {
        Cow::Borrowed(v)
    }
}

/// Serializes a value with every string leaf salted, without building a salted copy.
struct Leaves<'a> {
    v: &'a Value,
    s: &'a Salting<'a>,
}

impl Serialize for Leaves<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        match self.v {
            Value::String(x) => ser.serialize_str(&salted(self.s, x)),
            Value::Array(items) => {
                let mut seq = ser.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&Leaves { v, s: self.s })?;
                }
                seq.end()
            }
            Value::Object(m) => {
                let mut map = ser.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, &Leaves { v, s: self.s })?;
                }
                map.end()
            }
            other => other.serialize(ser),
        }
    }
}

/// Request or response data: string leaves salted except `PLAIN_DATA_KEYS`; with
/// `elide_keys`, a `keys` list is written as its length.
struct Data<'a> {
    m: &'a Map<String, Value>,
    s: &'a Salting<'a>,
    elide_keys: bool,
}

impl Serialize for Data<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = ser.serialize_map(Some(self.m.len()))?;
        for (k, v) in self.m {
            if PLAIN_DATA_KEYS.contains(&k.as_str()) {
                map.serialize_entry(k, v)?;
            } else if let (true, "keys", Value::Array(keys)) = (self.elide_keys, k.as_str(), v) {
                map.serialize_entry(k, &keys.len())?;
            } else {
                map.serialize_entry(k, &Leaves { v, s: self.s })?;
            }
        }
        map.end()
    }
}

#[derive(Serialize)]
struct PolicyResults {
    allowed: bool,
}

#[derive(Serialize)]
struct AuthBlock<'a> {
    client_token: Cow<'a, str>,
    accessor: Cow<'a, str>,
    display_name: &'a str,
    policies: &'a [String],
    token_policies: &'a [String],
    metadata: Option<&'a BTreeMap<String, String>>,
    entity_id: &'a str,
    token_type: &'a str,
    token_ttl: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_results: Option<PolicyResults>,
    #[serde(skip_serializing_if = "Option::is_none")]
    renewable: Option<bool>,
}

#[derive(Serialize)]
struct RequestBlock<'a> {
    id: &'a str,
    operation: &'static str,
    mount_point: &'a str,
    mount_type: &'a str,
    mount_accessor: &'a str,
    client_token: Cow<'a, str>,
    client_token_accessor: Cow<'a, str>,
    path: &'a str,
    data: Option<Data<'a>>,
    remote_address: String,
    remote_port: u16,
}

#[derive(Serialize)]
struct SecretBlock<'a> {
    lease_id: &'a str,
    lease_duration: u64,
    renewable: bool,
}

#[derive(Serialize)]
struct ResponseBlock<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Data<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<SecretBlock<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<AuthBlock<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<&'a [String]>,
    mount_type: &'a str,
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

fn auth_of_caller(s: &Salting<'_>, r: &Record<'_>) -> String {
    let Some(c) = r.token.caller else {
        return "null".to_string();
    };
    to_json(&AuthBlock {
        client_token: salted(s, r.req.client_token.as_deref().unwrap_or("")),
        accessor: salted_accessor(s, &c.accessor),
        display_name: &c.display_name,
        policies: &c.policies,
        token_policies: &c.policies,
        metadata: (!c.metadata.is_empty()).then_some(&c.metadata),
        entity_id: &c.entity_id,
        token_type: r.token.token_type,
        token_ttl: r.token.token_ttl,
        policy_results: Some(PolicyResults { allowed: true }),
        renewable: None,
    })
}

fn request_json(s: &Salting<'_>, r: &Record<'_>) -> String {
    let req = r.req;
    let accessor = r.token.caller.map(|c| c.accessor.as_str()).unwrap_or("");
    to_json(&RequestBlock {
        id: &req.id,
        operation: req.operation.as_str(),
        mount_point: &req.mount_point,
        mount_type: &req.mount_type,
        mount_accessor: &req.mount_accessor,
        client_token: salted(s, req.client_token.as_deref().unwrap_or("")),
        client_token_accessor: salted_accessor(s, accessor),
        path: &req.path,
        data: (!req.data.is_empty()).then_some(Data {
            m: &req.data,
            s,
            elide_keys: false,
        }),
        remote_address: req
            .remote_addr
            .map(|a| a.ip().to_string())
            .unwrap_or_default(),
        remote_port: req.remote_addr.map(|a| a.port()).unwrap_or(0),
    })
}

fn response_auth<'a>(s: &Salting<'_>, a: &'a AuthSpec) -> AuthBlock<'a> {
    AuthBlock {
        client_token: salted(s, &a.client_token),
        accessor: salted_accessor(s, &a.accessor),
        display_name: &a.display_name,
        policies: &a.policies,
        token_policies: &a.token_policies,
        metadata: (!a.metadata.is_empty()).then_some(&a.metadata),
        entity_id: &a.entity_id,
        token_type: if a.token_type.is_empty() {
            "service"
        } else {
            a.token_type.as_str()
        },
        token_ttl: a.lease_duration as i64,
        policy_results: None,
        renewable: Some(a.renewable),
    }
}

fn response_json(s: &Salting<'_>, resp: &Response) -> String {
    if let Some(raw) = &resp.raw {
        // Raw bodies (`sys/health`, ...) carry no secrets of a request, but salt them anyway.
        let null = Value::Null;
        let body = raw.body.as_ref().unwrap_or(&null);
        return format!("{{\"data\":{}}}", to_json(&Leaves { v: body, s }));
    }
    to_json(&ResponseBlock {
        data: resp.data.as_ref().map(|m| Data {
            m,
            s,
            elide_keys: s.elide_list_responses,
        }),
        secret: (!resp.lease_id.is_empty()).then_some(SecretBlock {
            lease_id: &resp.lease_id,
            lease_duration: resp.lease_duration,
            renewable: resp.renewable,
        }),
        auth: resp.auth.as_ref().map(|a| response_auth(s, a)),
        warnings: (!resp.warnings.is_empty()).then_some(resp.warnings.as_slice()),
        mount_type: &resp.mount_type,
    })
}

/// The salted `auth` and `request` blocks of one request for one device, serialized once:
/// the request entry and the response entry both carry them unchanged.
#[derive(Debug, Clone)]
pub struct Parts {
    pub auth: String,
    pub request: String,
}

pub fn parts(s: &Salting<'_>, r: &Record<'_>) -> Parts {
    Parts {
        auth: auth_of_caller(s, r),
        request: request_json(s, r),
    }
}

/// One entry as a JSON object (no newline). `response` is `Some` for response entries
/// (`Some(None)`: a request that failed or answered 204).
pub fn entry_json(time: &str, p: &Parts, response: Option<Option<String>>, error: &str) -> String {
    let quoted = |v: &str| Value::String(v.to_string()).to_string();
    let resp_len = response
        .as_ref()
        .and_then(|r| r.as_ref())
        .map_or(4, String::len);
    let mut out = String::with_capacity(p.auth.len() + p.request.len() + resp_len + 128);
    out.push_str("{\"time\":");
    out.push_str(&quoted(time));
    out.push_str(if response.is_some() {
        ",\"type\":\"response\",\"auth\":"
    } else {
        ",\"type\":\"request\",\"auth\":"
    });
    out.push_str(&p.auth);
    out.push_str(",\"request\":");
    out.push_str(&p.request);
    if let Some(r) = response {
        out.push_str(",\"response\":");
        out.push_str(r.as_deref().unwrap_or("null"));
    }
    out.push_str(",\"error\":");
    out.push_str(&quoted(error));
    out.push('}');
    out
}

/// The salted `response` block of a response entry, serialized.
pub fn response_block(s: &Salting<'_>, resp: Option<&Response>) -> Option<String> {
    resp.map(|x| response_json(s, x))
}

/// The request entry, written before the backend runs.
pub fn request_entry(s: &Salting<'_>, r: &Record<'_>, error: Option<&str>) -> Value {
    let line = entry_json(r.time, &parts(s, r), None, error.unwrap_or(""));
    serde_json::from_str(&line).unwrap_or(Value::Null)
}

/// The response entry, written before the reply leaves.
pub fn response_entry(
    s: &Salting<'_>,
    r: &Record<'_>,
    resp: Option<&Response>,
    error: Option<&str>,
) -> Value {
    let line = entry_json(
        r.time,
        &parts(s, r),
        Some(response_block(s, resp)),
        error.unwrap_or(""),
    );
    serde_json::from_str(&line).unwrap_or(Value::Null)
}

/// JSONx (IBM's XML rendering of JSON), as the `jsonx` format writes it.
pub fn jsonx(v: &Value) -> String {
    let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    jsonx_value(&mut out, None, v, true);
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn jsonx_value(out: &mut String, name: Option<&str>, v: &Value, root: bool) {
    let ns = if root {
        r#" xmlns:json="http://www.ibm.com/xmlns/prod/2009/jsonx""#
    } else {
        ""
    };
    let attr = name
        .map(|n| format!(r#" name="{}""#, xml_escape(n)))
        .unwrap_or_default();
    let (tag, body) = match v {
        Value::Null => ("null", None),
        Value::Bool(b) => ("boolean", Some(b.to_string())),
        Value::Number(n) => ("number", Some(n.to_string())),
        Value::String(s) => ("string", Some(xml_escape(s))),
        Value::Array(items) => {
            out.push_str(&format!("<json:array{attr}{ns}>"));
            for i in items {
                jsonx_value(out, None, i, false);
            }
            out.push_str("</json:array>");
            return;
        }
        Value::Object(m) => {
            out.push_str(&format!("<json:object{attr}{ns}>"));
            for (k, x) in m {
                jsonx_value(out, Some(k), x, false);
            }
            out.push_str("</json:object>");
            return;
        }
    };
    match body {
        Some(b) => out.push_str(&format!("<json:{tag}{attr}{ns}>{b}</json:{tag}>")),
        None => out.push_str(&format!("<json:{tag}{attr}{ns}/>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logical::Operation;
    use serde_json::json;

    #[test]
    fn hashes_tokens_and_data_but_not_paths_or_lease_ids() {
        let mut req = Request::new(Operation::Update, "secret/data/app").with_token("hvs.abc");
        req.data.insert("password".into(), json!("hunter2"));
        req.data.insert("lease_id".into(), json!("aws/creds/r/x"));
        req.data.insert("nested".into(), json!({"a": ["b", 1]}));
        let caller = Caller {
            accessor: "acc".into(),
            policies: vec!["default".into()],
            ..Default::default()
        };
        let r = Record {
            req: &req,
            token: TokenInfo {
                caller: Some(&caller),
                token_type: "service",
                token_ttl: 0,
            },
            time: "t",
        };
        let s = Salting {
            key: &Keyed::new(b"salt"),
            log_raw: false,
            hmac_accessor: true,
            elide_list_responses: false,
        };
        let e = request_entry(&s, &r, None);
        let text = e.to_string();
        assert!(!text.contains("hvs.abc") && !text.contains("hunter2"));
        assert!(!text.contains("\"acc\""));
        assert_eq!(e["request"]["path"], "secret/data/app");
        assert_eq!(e["request"]["data"]["lease_id"], "aws/creds/r/x");
        assert_eq!(
            e["request"]["data"]["password"],
            hmac_hex(b"salt", "hunter2")
        );
        assert_eq!(e["request"]["data"]["nested"]["a"][1], 1);
        assert_eq!(e["auth"]["policies"][0], "default");

        let raw = Salting {
            key: &Keyed::new(b"salt"),
            log_raw: true,
            hmac_accessor: true,
            elide_list_responses: false,
        };
        assert_eq!(
            request_entry(&raw, &r, None)["request"]["data"]["password"],
            "hunter2"
        );
        let plain_acc = Salting {
            key: &Keyed::new(b"salt"),
            log_raw: false,
            hmac_accessor: false,
            elide_list_responses: false,
        };
        assert_eq!(
            request_entry(&plain_acc, &r, None)["auth"]["accessor"],
            "acc"
        );
    }

    #[test]
    fn elides_lists_and_renders_jsonx() {
        let req = Request::new(Operation::List, "secret/metadata/");
        let r = Record {
            req: &req,
            token: TokenInfo::default(),
            time: "t",
        };
        let mut m = Map::new();
        m.insert("keys".into(), json!(["a", "b"]));
        let resp = Response::data(m);
        let s = Salting {
            key: &Keyed::new(b"k"),
            log_raw: false,
            hmac_accessor: true,
            elide_list_responses: true,
        };
        let e = response_entry(&s, &r, Some(&resp), None);
        assert_eq!(e["response"]["data"]["keys"], 2);
        let x = jsonx(&json!({"a": "<b>", "n": null}));
        assert!(x.contains(r#"<json:string name="a">&lt;b&gt;</json:string>"#));
        assert!(x.contains(r#"<json:null name="n"/>"#));
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use crate::logical::Operation;
    use serde_json::json;

    /// `cargo test --release -p lessor-core --lib audit::format::timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn entry_cost() {
        let mut req = Request::new(Operation::Update, "auth/token/create")
            .with_token("hvs.abcdefghijklmnopqrstuvwx");
        req.data.insert("ttl".into(), json!("1h"));
        req.data.insert("policies".into(), json!(["default"]));
        let caller = Caller {
            accessor: "acc123456789012345678901".into(),
            policies: vec!["root".into()],
            display_name: "root".into(),
            ..Default::default()
        };
        let resp = Response {
            auth: Some(AuthSpec {
                client_token: "hvs.zyxwvutsrqponmlkjihgfedc".into(),
                accessor: "acc2".into(),
                policies: vec!["default".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let key = Keyed::new(b"0123456789abcdef0123456789abcdef");
        let s = Salting {
            key: &key,
            log_raw: false,
            hmac_accessor: true,
            elide_list_responses: false,
        };
        let n = 20_000;
        let t0 = std::time::Instant::now();
        for _ in 0..n {
            let time = crate::audit::now_rfc3339_nano();
            let r = Record {
                req: &req,
                token: TokenInfo {
                    caller: Some(&caller),
                    token_type: "service",
                    token_ttl: 0,
                },
                time: &time,
            };
            let p = parts(&s, &r);
            let a = entry_json(r.time, &p, None, "");
            let b = entry_json(r.time, &p, Some(response_block(&s, Some(&resp))), "");
            std::hint::black_box((a, b));
        }
        let per = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
        let t1 = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(key.hash("hvs.abcdefghijklmnopqrstuvwx"));
        }
        let per_hash = t1.elapsed().as_secs_f64() * 1e6 / n as f64;
        let t2 = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(crate::audit::now_rfc3339_nano());
        }
        let per_time = t2.elapsed().as_secs_f64() * 1e6 / n as f64;
        eprintln!(
            "both entries: {per:.2} us; one hmac: {per_hash:.2} us; one timestamp: {per_time:.2} us"
        );
    }
}

//! The TokenReview call: the cluster confirms that the JWT is valid, for which service
//! account, and for which audiences. Any doubt is a refusal; the reason goes to the log
//! (never the token), the client gets Vault's bare `permission denied`.

use lessor_auth_common::http;
use lessor_core::{Error, Result};
use serde_json::{Value, json};

use crate::sa::ServiceAccount;

const PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

/// What the review must confirm.
pub struct Review<'a> {
    pub host: &'a str,
    pub ca_pem: &'a str,
    /// The bearer of the call: the reviewer JWT, or the client's own JWT.
    pub bearer: &'a str,
    pub jwt: &'a str,
    pub audience: &'a str,
}

fn refused(reason: impl std::fmt::Display) -> Error {
    tracing::info!(%reason, "kubernetes login refused by the token review");
    Error::PermissionDenied
}

/// Calls TokenReview and checks its answer against `sa`.
pub async fn confirm(r: &Review<'_>, sa: &ServiceAccount) -> Result<()> {
    let client = http::client(r.ca_pem)?;
    let audiences: Vec<&str> = if r.audience.is_empty() {
        Vec::new()
    } else {
        vec![r.audience]
    };
    let body = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": r.jwt, "audiences": audiences},
    });
    let resp = client
        .post(format!("{}{PATH}", r.host))
        .bearer_auth(r.bearer)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| refused(format!("calling the TokenReview API: {e}")))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| refused(format!("reading the TokenReview answer: {e}")))?;
    if !status.is_success() {
        return Err(refused(format!(
            "the TokenReview API answered {}",
            status.as_u16()
        )));
    }
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| refused(format!("parsing the TokenReview answer: {e}")))?;
    let st = v.get("status").cloned().unwrap_or(Value::Null);
    if st.get("authenticated").and_then(Value::as_bool) != Some(true) {
        let why = st
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("not authenticated");
        return Err(refused(format!("lookup failed: {why}")));
    }
    let username = st.pointer("/user/username").and_then(Value::as_str);
    let want = format!("system:serviceaccount:{}:{}", sa.namespace, sa.name);
    if username != Some(want.as_str()) {
        return Err(refused(
            "the reviewed token belongs to another service account",
        ));
    }
    let uid = st
        .pointer("/user/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !sa.uid.is_empty() && uid != sa.uid {
        return Err(refused(
            "the reviewed token has another service-account uid",
        ));
    }
    if !r.audience.is_empty() {
        let confirmed = st
            .get("audiences")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(r.audience)));
        if !confirmed {
            return Err(refused(
                "the reviewed token is not valid for the role's audience",
            ));
        }
    }
    Ok(())
}

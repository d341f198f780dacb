//! Roles: what kind of AWS credential a name issues and with which policies. CRUD and LIST
//! on `roles/`, with the validation and messages Vault gives.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use lessor_core::framework::field::{self, FieldData};
use lessor_core::framework::{Ctx, Path, PathHandler};
use lessor_core::logical::{Operation, Response, obj};
use lessor_core::{Error, Result};
use lessor_storage::Storage;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{load_json, store_json};

pub const IAM_USER: &str = "iam_user";
pub const ASSUMED_ROLE: &str = "assumed_role";
pub const FEDERATION_TOKEN: &str = "federation_token";
pub const SESSION_TOKEN: &str = "session_token";
const STS_TYPES: [&str; 3] = [ASSUMED_ROLE, FEDERATION_TOKEN, SESSION_TOKEN];
const LEGACY_WARNING: &str =
    "Detected use of legacy role or policy parameter. Please upgrade to use the new parameters.";
const USER_PATH_RE: &str = r"^/([\x21-\x7F]{0,510}/)?$";

/// Pattern of role names, as in the path regexes.
pub const NAME_RE: &str = r"(?P<name>\w(([\w.@-]+)?\w)?)";

/// One stored role.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Role {
    pub credential_types: Vec<String>,
    pub policy_arns: Vec<String>,
    pub policy_document: String,
    pub role_arns: Vec<String>,
    pub iam_groups: Vec<String>,
    pub iam_tags: BTreeMap<String, String>,
    pub session_tags: BTreeMap<String, String>,
    pub external_id: String,
    pub default_sts_ttl: i64,
    pub max_sts_ttl: i64,
    pub user_path: String,
    pub permissions_boundary_arn: String,
    pub mfa_serial_number: String,
    pub invalid_data: String,
}

impl Role {
    pub fn has(&self, t: &str) -> bool {
        self.credential_types.iter().any(|c| c == t)
    }

    fn has_sts(&self) -> bool {
        STS_TYPES.iter().any(|t| self.has(t))
    }

    /// Every problem with the role, worded as Vault words them.
    pub fn problems(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.credential_types.is_empty() {
            errs.push("did not supply credential_type".to_string());
        }
        for t in &self.credential_types {
            if t != IAM_USER && !STS_TYPES.contains(&t.as_str()) {
                errs.push(format!("unrecognized credential type: {t}"));
            }
        }
        let sts_list = format!("{ASSUMED_ROLE}, {FEDERATION_TOKEN}, and {SESSION_TOKEN}");
        if self.default_sts_ttl != 0 && !self.has_sts() {
            errs.push(format!(
                "default_sts_ttl parameter only valid for {sts_list} credential types"
            ));
        }
        if self.max_sts_ttl != 0 && !self.has_sts() {
            errs.push(format!(
                "max_sts_ttl parameter only valid for {sts_list} credential types"
            ));
        }
        if self.max_sts_ttl > 0 && self.default_sts_ttl > self.max_sts_ttl {
            errs.push(
                r#""default_sts_ttl" value must be less than or equal to "max_sts_ttl" value"#
                    .to_string(),
            );
        }
        if !self.user_path.is_empty() {
            if !self.has(IAM_USER) {
                errs.push(format!(
                    "user_path parameter only valid for {IAM_USER} credential type"
                ));
            }
            let ok = regex::Regex::new(USER_PATH_RE).is_ok_and(|re| re.is_match(&self.user_path));
            if !ok {
                errs.push(format!(
                    "the specified value for user_path is invalid. It must match {USER_PATH_RE:?} regexp"
                ));
            }
        }
        if !self.permissions_boundary_arn.is_empty() {
            if !self.has(IAM_USER) {
                errs.push(format!(
                    "cannot supply permissions_boundary_arn when credential_type isn't {IAM_USER}"
                ));
            }
            if let Err(e) = check_policy_arn(&self.permissions_boundary_arn) {
                errs.push(format!("invalid permissions_boundary_arn parameter: {e}"));
            }
        }
        if !self.role_arns.is_empty() && !self.has(ASSUMED_ROLE) {
            errs.push(format!(
                "cannot supply role_arns when credential_type isn't {ASSUMED_ROLE}"
            ));
        }
        if self.has(ASSUMED_ROLE) && self.role_arns.is_empty() {
            errs.push(format!(
                "role_arns is required when credential_type is {ASSUMED_ROLE}"
            ));
        }
        if !self.mfa_serial_number.is_empty() && !self.has(SESSION_TOKEN) {
            errs.push(format!(
                "cannot supply mfa_serial_number when credential_type isn't {SESSION_TOKEN}"
            ));
        }
        if !self.session_tags.is_empty() && !self.has(ASSUMED_ROLE) {
            errs.push(format!(
                "cannot supply session_tags when credential_type isn't {ASSUMED_ROLE}"
            ));
        }
        if !self.external_id.is_empty() && !self.has(ASSUMED_ROLE) {
            errs.push(format!(
                "cannot supply external_id when credential_type isn't {ASSUMED_ROLE}"
            ));
        }
        if !self.iam_tags.is_empty() && !self.has(IAM_USER) {
            errs.push(format!(
                "cannot supply iam_tags when credential_type isn't {IAM_USER}"
            ));
        }
        if self.has(SESSION_TOKEN)
            && (!self.policy_arns.is_empty() || !self.policy_document.is_empty())
        {
            errs.push(format!(
                "cannot supply a policy or role when using credential_type {SESSION_TOKEN}"
            ));
        }
        errs
    }

    /// The read shape: `credential_type` comma-joined, unset lists `null`.
    pub fn to_data(&self) -> serde_json::Map<String, Value> {
        let list = |v: &Vec<String>| if v.is_empty() { Value::Null } else { json!(v) };
        let map = |m: &BTreeMap<String, String>| if m.is_empty() { Value::Null } else { json!(m) };
        obj([
            ("credential_type", json!(self.credential_types.join(","))),
            ("policy_arns", list(&self.policy_arns)),
            ("role_arns", list(&self.role_arns)),
            ("policy_document", json!(self.policy_document)),
            ("iam_groups", list(&self.iam_groups)),
            ("iam_tags", map(&self.iam_tags)),
            ("session_tags", map(&self.session_tags)),
            ("external_id", json!(self.external_id)),
            ("default_sts_ttl", json!(self.default_sts_ttl)),
            ("max_sts_ttl", json!(self.max_sts_ttl)),
            ("user_path", json!(self.user_path)),
            (
                "permissions_boundary_arn",
                json!(self.permissions_boundary_arn),
            ),
            ("mfa_serial_number", json!(self.mfa_serial_number)),
        ])
    }
}

/// Vault's `%q` of a multi-error: `"1 error occurred:\n\t* ...\n\n"`.
pub fn validation_error(errs: &[String]) -> Error {
    let head = if errs.len() == 1 {
        "1 error occurred:".to_string()
    } else {
        format!("{} errors occurred:", errs.len())
    };
    let body: String = errs.iter().map(|e| format!("\n\t* {e}")).collect();
    let text = format!("{head}{body}\n\n");
    let quoted = serde_json::to_string(&text).unwrap_or_default();
    Error::bad(format!("error(s) validating supplied role data: {quoted}"))
}

fn check_policy_arn(arn: &str) -> std::result::Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "iam" {
        return Err(format!("invalid ARN {arn:?}"));
    }
    if !parts[5].starts_with("policy/") {
        return Err(format!("ARN {arn:?} is not an IAM policy ARN"));
    }
    Ok(())
}

fn role_key(name: &str) -> String {
    format!("role/{name}")
}

pub async fn load(s: &Arc<dyn Storage>, name: &str) -> Result<Option<Role>> {
    load_json(s, &role_key(name)).await
}

/// Compacts a JSON policy document; invalid JSON is an error.
fn compact_policy(doc: &str) -> Result<String> {
    if doc.trim().is_empty() {
        return Ok(String::new());
    }
    let v: Value = serde_json::from_str(doc)
        .map_err(|e| Error::bad(format!("cannot parse policy document: {e}")))?;
    serde_json::to_string(&v).map_err(|e| Error::internal(e.to_string()))
}

pub fn paths() -> Vec<Path> {
    vec![
        Path::new("roles/?", Arc::new(ListRoles)).ops(&[Operation::List]),
        Path::new(&format!("roles/{NAME_RE}"), Arc::new(RolePath))
            .fields(vec![
                field::str("name", "Name of the role"),
                field::list("credential_type", "Type of credential to retrieve"),
                field::list("role_arns", "ARNs of AWS roles allowed to be assumed"),
                field::list("policy_arns", "ARNs of AWS managed policies"),
                field::str("policy_document", "JSON-encoded IAM policy document"),
                field::list("iam_groups", "Names of IAM groups"),
                field::kv("iam_tags", "IAM tags of generated users"),
                field::kv("session_tags", "Session tags of assumed roles"),
                field::str("external_id", "External ID for AssumeRole"),
                field::dur("default_sts_ttl", "Default TTL of STS credentials"),
                field::dur("max_sts_ttl", "Max allowed TTL of STS credentials"),
                field::str("user_path", "Path of generated IAM users"),
                field::str(
                    "permissions_boundary_arn",
                    "Permissions boundary of IAM users",
                ),
                field::str("mfa_serial_number", "MFA device for session tokens"),
                field::str("policy", "Legacy: a policy document"),
                field::str("arn", "Legacy: a role or policy ARN"),
                field::bool("revoke_leases", "Revoke the role's leases on delete"),
            ])
            .ops(&[Operation::Read, Operation::Update, Operation::Delete])
            .existence(),
    ]
}

struct ListRoles;

#[async_trait]
impl PathHandler for ListRoles {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        _d: &FieldData,
    ) -> Result<Option<Response>> {
        Response::list(ctx.storage.list("role/").await?)
    }
}

struct RolePath;

#[async_trait]
impl PathHandler for RolePath {
    async fn exists(&self, ctx: &Ctx<'_>, d: &FieldData) -> Result<bool> {
        Ok(load(ctx.storage, &d.string("name")).await?.is_some())
    }

    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let name = d.string("name");
        match op {
            Operation::Read => match load(ctx.storage, &name).await? {
                Some(r) => Ok(Some(Response::data(r.to_data()))),
                None => Err(Error::NotFound),
            },
            Operation::Delete => {
                if d.bool("revoke_leases").unwrap_or(false) {
                    for prefix in ["creds", "sts"] {
                        ctx.revoke_prefix(&format!("{prefix}/{name}")).await?;
                    }
                }
                ctx.storage.delete(&role_key(&name)).await?;
                Ok(None)
            }
            _ => write(ctx, &name, d).await,
        }
    }
}

async fn write(ctx: &Ctx<'_>, name: &str, d: &FieldData) -> Result<Option<Response>> {
    let existing = load(ctx.storage, name).await?;
    let mut r = existing.clone().unwrap_or_default();
    let mut warnings = Vec::new();
    if let Some(v) = d.list("credential_type") {
        r.credential_types = v.to_vec();
    }
    if let Some(v) = d.list("policy_arns") {
        r.policy_arns = v.to_vec();
    }
    if let Some(v) = d.str("policy_document") {
        r.policy_document = compact_policy(v)?;
    }
    if let Some(v) = d.list("role_arns") {
        r.role_arns = v.to_vec();
    }
    if let Some(v) = d.list("iam_groups") {
        r.iam_groups = v.to_vec();
    }
    if let Some(v) = d.kv("iam_tags") {
        r.iam_tags = v.clone();
    }
    if let Some(v) = d.kv("session_tags") {
        r.session_tags = v.clone();
    }
    if let Some(v) = d.str("external_id") {
        r.external_id = v.to_string();
    }
    if let Some(v) = d.secs("default_sts_ttl") {
        r.default_sts_ttl = v;
    }
    if let Some(v) = d.secs("max_sts_ttl") {
        r.max_sts_ttl = v;
    }
    if let Some(v) = d.str("permissions_boundary_arn") {
        r.permissions_boundary_arn = v.to_string();
    }
    if let Some(v) = d.str("mfa_serial_number") {
        r.mfa_serial_number = v.to_string();
    }
    let legacy_policy = d.str("policy").filter(|s| !s.is_empty());
    let legacy_arn = d.str("arn").filter(|s| !s.is_empty());
    if legacy_policy.is_some() || legacy_arn.is_some() {
        if d.is_set("credential_type")
            || d.is_set("policy_arns")
            || d.is_set("policy_document")
            || d.is_set("role_arns")
        {
            return Err(Error::bad(
                "cannot mix legacy policy or arn parameters with credential_type, policy_arns, policy_document or role_arns",
            ));
        }
        if legacy_policy.is_some() && legacy_arn.is_some() {
            return Err(Error::bad("only one of policy or arn should be provided"));
        }
        warnings.push(LEGACY_WARNING.to_string());
        if let Some(p) = legacy_policy {
            r.policy_document = compact_policy(p)?;
            r.credential_types = vec![IAM_USER.into(), FEDERATION_TOKEN.into()];
        }
        if let Some(a) = legacy_arn {
            if a.contains(":role/") {
                r.role_arns = vec![a.to_string()];
                r.credential_types = vec![ASSUMED_ROLE.into()];
            } else {
                r.policy_arns = vec![a.to_string()];
                r.credential_types = vec![IAM_USER.into()];
            }
        }
    }
    match d.str("user_path") {
        Some(v) => r.user_path = v.to_string(),
        None if r.user_path.is_empty() && r.has(IAM_USER) => r.user_path = "/".into(),
        None => {}
    }
    let errs = r.problems();
    if !errs.is_empty() {
        return Err(validation_error(&errs));
    }
    store_json(ctx.storage, &role_key(name), &r).await?;
    if warnings.is_empty() {
        Ok(None)
    } else {
        Ok(Some(Response {
            warnings,
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let r = Role {
            credential_types: vec![IAM_USER.into()],
            role_arns: vec!["arn:aws:iam::1:role/x".into()],
            ..Default::default()
        };
        let e = validation_error(&r.problems()).to_string();
        assert_eq!(
            e,
            r#"error(s) validating supplied role data: "1 error occurred:\n\t* cannot supply role_arns when credential_type isn't assumed_role\n\n""#
        );
    }

    #[test]
    fn boundaries_and_paths() {
        let r = Role {
            credential_types: vec![IAM_USER.into()],
            permissions_boundary_arn: "arn:aws:iam::123456789012:policy/b".into(),
            user_path: "/team/".into(),
            ..Default::default()
        };
        assert!(r.problems().is_empty());
        let bad = Role {
            user_path: "nope".into(),
            permissions_boundary_arn: "arn:aws:iam::1:role/x".into(),
            ..r
        };
        assert_eq!(bad.problems().len(), 2);
    }
}

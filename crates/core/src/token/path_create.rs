//! `auth/token/create`, `create-orphan` and `create/<role>`: who may mint what.
//!
//! The rules are Vault's: a child's policies are a subset of its parent's unless the parent
//! is root or the request has sudo; a role with allowed/disallowed lists replaces that
//! rule; orphans, custom ids and periodic tokens need root or sudo (except through
//! `create-orphan` or an orphan role); `root` comes only from a root parent.

use std::sync::Arc;

use async_trait::async_trait;

use super::entry::{NON_ASSIGNABLE, display_name, glob_match, sanitize_policies};
use super::params::{CreateParams, TtlLimits};
use super::role::TokenRole;
use super::store::{TokenStore, min_nonzero};
use super::{ROLE_NAME, caller_of};
use crate::framework::field::{bool, dur, int, kv, list, str};
use crate::framework::{Ctx, FieldData, Path, PathHandler};
use crate::logical::{Caller, Operation, Response};
use crate::{Error, Result};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    Orphan,
    Role,
}

struct Create {
    store: Arc<TokenStore>,
    kind: Kind,
}

pub(super) fn paths(store: &Arc<TokenStore>) -> Vec<Path> {
    let make = |pattern: &str, kind| {
        Path::new(
            pattern,
            Arc::new(Create {
                store: store.clone(),
                kind,
            }),
        )
        .fields(fields())
        .ops(&[Operation::Update])
        .help("Create a token.")
    };
    vec![
        make("create", Kind::Normal),
        make("create-orphan", Kind::Orphan),
        make(&format!("create/{ROLE_NAME}"), Kind::Role),
    ]
}

fn fields() -> Vec<crate::framework::Field> {
    vec![
        str("role_name", "Name of the role to create the token against."),
        str("id", "Value for the token (root or sudo only)."),
        list("policies", "Policies of the token."),
        kv("meta", "Arbitrary string metadata."),
        bool("no_parent", "Create an orphan token (root or sudo only)."),
        bool("no_default_policy", "Do not add the default policy."),
        bool("renewable", "Whether the token can be renewed.").default(true.into()),
        dur("ttl", "Time to live of the token."),
        dur("lease", "Deprecated alias of ttl."),
        dur("explicit_max_ttl", "Hard cap on the token's lifetime."),
        dur(
            "period",
            "Renewal period of a periodic token (root or sudo only).",
        ),
        str("display_name", "Name associated with the token."),
        int("num_uses", "Maximum number of uses; 0 = unlimited."),
        str("type", "Token type: service (batch tokens are not issued)."),
        str("entity_alias", "Entity alias (token roles only)."),
    ]
}

/// Checks a requested or role token type.
fn check_type(t: &str) -> Result<()> {
    match t {
        "" | "service" | "default" | "default-service" => Ok(()),
        "batch" | "default-batch" => Err(Error::bad("batch tokens are not supported")),
        _ => Err(Error::bad("invalid 'token_type' value")),
    }
}

fn check_custom_id(id: &str) -> Result<()> {
    for prefix in ["hvs.", "hvb.", "s.", "b."] {
        if id.starts_with(prefix) {
            return Err(Error::bad(format!(
                "custom token ID cannot have the '{prefix}' prefix"
            )));
        }
    }
    if id.contains('.') {
        return Err(Error::bad("custom token ID cannot have a '.' in the value"));
    }
    Ok(())
}

/// A list as Go's `%q` prints it: `["a" "b"]`.
fn go_quoted(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", inner.join(" "))
}

/// The final, sanitized policies of the new token.
fn choose_policies(
    requested: &[String],
    no_default: bool,
    parent: &[String],
    sudo: bool,
    role: Option<&TokenRole>,
) -> Result<Vec<String>> {
    let mut add_default = false;
    let chosen: Vec<String> = match role.filter(|r| r.restricts_policies()) {
        Some(r) => {
            let local_default =
                !no_default && !r.token_no_default_policy && !r.disallows("default");
            let mut fin = if requested.is_empty() {
                Vec::new()
            } else {
                sanitize_policies(requested, local_default)
            };
            if !r.allowed_policies.is_empty() || !r.allowed_policies_glob.is_empty() {
                let allowed = sanitize_policies(&r.allowed_policies, local_default);
                if fin.is_empty() {
                    fin = allowed;
                } else if fin.iter().any(|p| {
                    !allowed.contains(p)
                        && !r.allowed_policies_glob.iter().any(|g| glob_match(g, p))
                }) {
                    return Err(Error::bad(format!(
                        "token policies ({}) must be subset of the role's allowed policies ({}) or glob policies ({})",
                        go_quoted(&fin),
                        go_quoted(&allowed),
                        go_quoted(&r.allowed_policies_glob)
                    )));
                }
            } else if fin.is_empty() {
                fin = sanitize_policies(parent, local_default);
            }
            if let Some(bad) = fin.iter().find(|p| r.disallows(p)) {
                return Err(Error::bad(format!(
                    "token policy \"{bad}\" is disallowed by this role"
                )));
            }
            fin
        }
        None if requested.is_empty() => sanitize_policies(parent, false),
        None if !sudo => {
            let want = sanitize_policies(requested, false);
            let have = sanitize_policies(parent, false);
            if !want.iter().all(|p| have.contains(p)) {
                return Err(Error::bad("child policies must be subset of parent"));
            }
            add_default = !no_default && parent.iter().any(|p| p == "default");
            want
        }
        None => {
            add_default = !no_default;
            requested.to_vec()
        }
    };
    let mut policies = sanitize_policies(&chosen, add_default);
    if no_default {
        policies.retain(|p| p != "default");
    }
    if let Some(p) = policies
        .iter()
        .find(|p| NON_ASSIGNABLE.contains(&p.as_str()))
    {
        return Err(Error::bad(format!("cannot assign policy \"{p}\"")));
    }
    if policies.iter().any(|p| p == "root") && !parent.iter().any(|p| p == "root") {
        return Err(Error::bad(
            "root tokens may not be created without parent token being root",
        ));
    }
    Ok(policies)
}

impl Create {
    async fn role(&self, d: &FieldData) -> Result<Option<TokenRole>> {
        if self.kind != Kind::Role {
            return Ok(None);
        }
        let name = d.string("role_name");
        match self.store.get_role(&name).await? {
            Some(r) => Ok(Some(r)),
            None => Err(Error::bad(format!("unknown role {name}"))),
        }
    }

    /// The parent's id hash, or empty for an orphan.
    fn parent(&self, d: &FieldData, caller: &Caller, role: Option<&TokenRole>) -> Result<String> {
        let sudo = caller.sudo || caller.is_root;
        if self.kind == Kind::Orphan || role.is_some_and(|r| r.orphan) {
            return Ok(String::new());
        }
        if d.bool("no_parent").unwrap_or(false) {
            if !sudo {
                return Err(Error::bad(
                    "root or sudo privileges required to create orphan token",
                ));
            }
            return Ok(String::new());
        }
        Ok(caller.token_id_hash.clone())
    }
}

#[async_trait]
impl PathHandler for Create {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        _op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        let caller = caller_of(ctx)?;
        let sudo = caller.sudo || caller.is_root;
        let role = self.role(d).await?;
        let role = role.as_ref();

        let num_uses = d.int("num_uses").unwrap_or(0);
        if num_uses < 0 {
            return Err(Error::bad("number of uses cannot be negative"));
        }
        check_type(&d.string("type"))?;
        if let Some(r) = role {
            check_type(&r.token_type)?;
        }
        let alias = d.string("entity_alias");
        if !alias.is_empty() {
            match role {
                None => {
                    return Err(Error::bad(
                        "'entity_alias' is only allowed in combination with token role",
                    ));
                }
                Some(r) if !r.allows_entity_alias(&alias) => {
                    return Err(Error::bad("invalid 'entity_alias' value"));
                }
                Some(_) => {}
            }
        }
        let parent = self.parent(d, caller, role)?;
        let id = d.str("id").filter(|s| !s.is_empty()).map(str::to_string);
        if let Some(id) = &id {
            if !sudo {
                return Err(Error::bad(
                    "root or sudo privileges required to specify token id",
                ));
            }
            check_custom_id(id)?;
        }
        let requested_period = d.secs("period").unwrap_or(0).max(0);
        if requested_period > 0 && !sudo {
            return Err(Error::bad(
                "root or sudo privileges required to create periodic token",
            ));
        }

        let no_default = d.bool("no_default_policy").unwrap_or(false)
            || role.is_some_and(|r| r.token_no_default_policy);
        let policies = choose_policies(
            &d.list_or_empty("policies"),
            no_default,
            &caller.policies,
            sudo,
            role,
        )?;

        let mut path = String::from("auth/token/create");
        if let Some(r) = role {
            path = format!("{path}/{}", r.name);
            if !r.path_suffix.is_empty() {
                path = format!("{path}/{}", r.path_suffix);
            }
        }
        let explicit_max = d.secs("explicit_max_ttl").unwrap_or(0).max(0);
        let ttl = match d.secs("ttl").unwrap_or(0) {
            0 => d.secs("lease").unwrap_or(0),
            t => t,
        };
        let mut params = CreateParams {
            id,
            policies,
            add_default_policy: false,
            meta: d.kv("meta").cloned().unwrap_or_default(),
            display_name: display_name(&d.string("display_name")),
            path,
            parent,
            ttl: ttl.max(0),
            max_ttl: 0,
            explicit_max_ttl: min_nonzero(
                explicit_max,
                role.map_or(0, TokenRole::effective_explicit_max_ttl),
            ),
            period: min_nonzero(
                requested_period,
                role.map_or(0, TokenRole::effective_period),
            ),
            num_uses: min_nonzero(num_uses, role.map_or(0, |r| r.token_num_uses)),
            renewable: d.bool("renewable").unwrap_or(true) && role.is_none_or(|r| r.renewable),
            role: role.map(|r| r.name.clone()).unwrap_or_default(),
            bound_cidrs: role
                .map(TokenRole::effective_bound_cidrs)
                .unwrap_or_default(),
            entity_id: String::new(),
            ..Default::default()
        };
        let warning = params.apply_ttl(TtlLimits::from(ctx.system), self.store.now())?;
        let (token, entry) = self.store.create(params).await?;
        let mut resp = Response {
            auth: Some(entry.auth(&token, entry.creation_ttl)),
            ..Default::default()
        };
        resp.warnings.extend(warning);
        Ok(Some(resp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn inherit_and_subset() {
        let parent = v(&["a", "b", "default"]);
        assert_eq!(
            choose_policies(&[], false, &parent, false, None).unwrap(),
            parent
        );
        assert_eq!(
            choose_policies(&v(&["a"]), false, &parent, false, None).unwrap(),
            v(&["a", "default"])
        );
        assert_eq!(
            choose_policies(&v(&["a"]), true, &parent, false, None).unwrap(),
            v(&["a"])
        );
        let e = choose_policies(&v(&["c"]), false, &parent, false, None).unwrap_err();
        assert_eq!(e.to_string(), "child policies must be subset of parent");
        assert_eq!(
            choose_policies(&v(&["c"]), false, &parent, true, None).unwrap(),
            v(&["c", "default"])
        );
        let e = choose_policies(&v(&["root"]), false, &parent, true, None).unwrap_err();
        assert!(e.to_string().starts_with("root tokens may not be created"));
        let e = choose_policies(&v(&["response-wrapping"]), false, &v(&["root"]), true, None)
            .unwrap_err();
        assert_eq!(e.to_string(), "cannot assign policy \"response-wrapping\"");
        assert_eq!(
            choose_policies(&[], false, &v(&["root"]), true, None).unwrap(),
            v(&["root"])
        );
    }

    #[test]
    fn custom_ids() {
        assert!(check_custom_id("plain-id").is_ok());
        assert_eq!(
            check_custom_id("hvs.x").unwrap_err().to_string(),
            "custom token ID cannot have the 'hvs.' prefix"
        );
        assert_eq!(
            check_custom_id("a.b").unwrap_err().to_string(),
            "custom token ID cannot have a '.' in the value"
        );
    }
}

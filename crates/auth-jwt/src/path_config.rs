//! `config`: where keys come from. Exactly one source; URLs are fetched and checked before
//! the config is stored, so a typo fails the write, not every later login.

use std::sync::Arc;

use async_trait::async_trait;
use lessor_core::framework::field::{self, FieldData};
use lessor_core::framework::{Ctx, Path, PathHandler};
use lessor_core::logical::{Operation, Response};
use lessor_core::{Error, Result};

use crate::State;
use crate::config::{self, Config};
use crate::keys::{discover, fetch_jwks, valid_pem_key};

struct ConfigPath(Arc<State>);

pub fn path(state: &Arc<State>) -> Path {
    Path::new("config", Arc::new(ConfigPath(state.clone())))
        .fields(vec![
            field::str("oidc_discovery_url", "The OIDC issuer URL (discovery)."),
            field::str(
                "oidc_discovery_ca_pem",
                "CA certificates (PEM) for the discovery URL.",
            ),
            field::str("oidc_client_id", "OIDC client id."),
            field::str(
                "oidc_client_secret",
                "OIDC client secret (never read back).",
            ),
            field::str("jwks_url", "A JWKS URL."),
            field::str("jwks_ca_pem", "CA certificates (PEM) for the JWKS URL."),
            field::list(
                "jwt_validation_pubkeys",
                "PEM public keys that verify tokens.",
            ),
            field::list("jwt_supported_algs", "Signing algorithms accepted."),
            field::str("bound_issuer", "The issuer (iss) tokens must carry."),
            field::str("default_role", "The role of logins that name none."),
            field::map("provider_config", "Provider-specific settings."),
            field::str("namespace_in_state", "Unused; accepted for compatibility."),
        ])
        .ops(&[Operation::Read, Operation::Update])
        .help("Configures how tokens are verified.")
}

#[async_trait]
impl PathHandler for ConfigPath {
    async fn handle(
        &self,
        ctx: &Ctx<'_>,
        op: Operation,
        d: &FieldData,
    ) -> Result<Option<Response>> {
        if op == Operation::Read {
            let c = config::get(ctx.storage).await?.ok_or(Error::NotFound)?;
            return Ok(Some(Response::data(c.read_data())));
        }
        let mut c = config::get(ctx.storage).await?.unwrap_or_default();
        for (name, slot) in [
            ("oidc_discovery_url", &mut c.oidc_discovery_url),
            ("oidc_discovery_ca_pem", &mut c.oidc_discovery_ca_pem),
            ("oidc_client_id", &mut c.oidc_client_id),
            ("oidc_client_secret", &mut c.oidc_client_secret),
            ("jwks_url", &mut c.jwks_url),
            ("jwks_ca_pem", &mut c.jwks_ca_pem),
            ("bound_issuer", &mut c.bound_issuer),
            ("default_role", &mut c.default_role),
        ] {
            if let Some(v) = d.str(name) {
                *slot = v.trim().to_string();
            }
        }
        if let Some(v) = d.list("jwt_validation_pubkeys") {
            c.jwt_validation_pubkeys = v.to_vec();
        }
        if let Some(v) = d.list("jwt_supported_algs") {
            c.jwt_supported_algs = v.to_vec();
        }
        if let Some(v) = d.map("provider_config") {
            c.provider_config = v.clone();
        }
        check(&mut c).await?;
        config::put(ctx.storage, &c).await?;
        self.0.keys.clear();
        Ok(None)
    }
}

/// Validates the config, fetching its URLs.
async fn check(c: &mut Config) -> Result<()> {
    let sources = [
        !c.jwt_validation_pubkeys.is_empty(),
        !c.jwks_url.is_empty(),
        !c.oidc_discovery_url.is_empty(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err(Error::bad(
            "exactly one of 'jwt_validation_pubkeys', 'jwks_url' or 'oidc_discovery_url' must be set",
        ));
    }
    c.algorithms()?;
    c.discovered_issuer.clear();
    if !c.jwt_validation_pubkeys.is_empty() {
        if let Some(i) = c
            .jwt_validation_pubkeys
            .iter()
            .position(|p| !valid_pem_key(p))
        {
            return Err(Error::bad(format!(
                "error parsing public key {i}: not a PEM RSA, EC or Ed25519 public key"
            )));
        }
    } else if !c.jwks_url.is_empty() {
        fetch_jwks(&c.jwks_url, &c.jwks_ca_pem)
            .await
            .map_err(|e| Error::bad(format!("error checking jwks URL: {e}")))?;
    } else {
        let (issuer, _) = discover(&c.oidc_discovery_url, &c.oidc_discovery_ca_pem)
            .await
            .map_err(|e| Error::bad(format!("error checking oidc discovery URL: {e}")))?;
        c.discovered_issuer = issuer;
    }
    Ok(())
}

//! JWT logins through the framework's dispatch against real keys and a real HTTP issuer on
//! 127.0.0.1: every algorithm accepted, every broken token refused with a 400 that says why,
//! key rotation at the JWKS endpoint picked up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Issuer, Signer, now};
use jsonwebtoken::Algorithm;
use lessor_auth_common::testing::{Mount, Reply};
use lessor_auth_jwt::Jwt;
use lessor_core::clock::SystemClock;
use serde_json::{Value, json};

async fn mount() -> Mount {
    mount_with(Duration::ZERO).await
}

/// A mount whose unknown key ids refetch the key set at most every `min_refetch`.
async fn mount_with(min_refetch: Duration) -> Mount {
    let backend = Jwt::with_options(Arc::new(SystemClock), min_refetch);
    Mount::new(Arc::new(backend), "jwt", "jwt").await.unwrap()
}

/// A jwt role bound to audience `api`, user claim `sub`.
async fn role(m: &Mount, name: &str, extra: Value) {
    let mut body = json!({"role_type": "jwt", "bound_audiences": "api", "user_claim": "sub",
        "token_policies": "dev", "token_ttl": "10m"});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    let r = m.write(&format!("role/{name}"), body).await;
    assert_eq!(r.status, 204, "{r:?}");
}

fn claims(iss: &str) -> Value {
    json!({"iss": iss, "sub": "alice", "aud": "api", "iat": now(), "exp": now() + 300,
        "email": "alice@example.com", "team": "blue"})
}

async fn login(m: &Mount, role: &str, jwt: &str) -> Reply {
    m.write("login", json!({"role": role, "jwt": jwt})).await
}

fn assert_refused(r: &Reply, needle: &str) {
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.error.contains(needle),
        "expected {needle:?} in {:?}",
        r.error
    );
}

#[tokio::test]
async fn jwks_accepts_every_supported_algorithm() {
    let rsa = Signer::rsa("rsa", Algorithm::RS256);
    let (es256, es384, ed) = (
        Signer::es256("ec"),
        Signer::es384("ec384"),
        Signer::ed25519("ed"),
    );
    let issuer = Issuer::start(&[&rsa, &es256, &es384, &ed]).await;
    let m = mount().await;
    let c = m
        .write(
            "config",
            json!({"jwks_url": issuer.jwks_url(), "bound_issuer": "https://idp"}),
        )
        .await;
    assert_eq!(c.status, 204, "{c:?}");
    role(&m, "dev", json!({"claim_mappings": {"email": "email"}})).await;

    let signers = [
        rsa.with_alg(Algorithm::RS256),
        rsa.with_alg(Algorithm::RS384),
        rsa.with_alg(Algorithm::RS512),
        es256,
        es384,
        ed,
    ];
    for s in &signers {
        let r = login(&m, "dev", &s.sign(&claims("https://idp"))).await;
        assert_eq!(r.status, 200, "{:?}: {r:?}", s.alg);
        let a = r.auth.unwrap();
        assert_eq!(a.display_name, "jwt-alice");
        assert_eq!(a.token_policies, ["dev"]);
        assert_eq!(a.ttl.as_secs(), 600);
        assert_eq!(a.metadata.get("role").map(String::as_str), Some("dev"));
        assert_eq!(
            a.metadata.get("email").map(String::as_str),
            Some("alice@example.com")
        );
    }
    // The key set was fetched at config write and once for the logins, not per login.
    assert!(issuer.fetches() <= 2, "{}", issuer.fetches());
}

#[tokio::test]
async fn broken_tokens_are_refused_with_reasons() {
    let key = Signer::rsa("k1", Algorithm::RS256);
    let stranger = Signer::rsa("k1", Algorithm::RS256);
    let issuer = Issuer::start(&[&key]).await;
    let m = mount().await;
    m.write(
        "config",
        json!({"jwks_url": issuer.jwks_url(), "bound_issuer": "https://idp"}),
    )
    .await;
    role(
        &m,
        "dev",
        json!({"bound_claims": {"team": ["blue", "green"]}}),
    )
    .await;
    let ok = claims("https://idp");
    assert_eq!(login(&m, "dev", &key.sign(&ok)).await.status, 200);

    let with = |k: &str, v: Value| {
        let mut c = ok.clone();
        c[k] = v;
        c
    };
    let cases = [
        (
            key.sign(&with("exp", json!(now() - 3600))),
            "token is expired",
        ),
        (
            key.sign(&with("aud", json!("other"))),
            "invalid audience (aud) claim",
        ),
        (
            key.sign(&with("iss", json!("https://evil"))),
            "invalid issuer (iss) claim",
        ),
        (
            key.sign(&with("team", json!("red"))),
            "does not match any associated bound claim values",
        ),
        (key.sign(&with("nbf", json!(now() + 3600))), "not valid yet"),
        (stranger.sign(&ok), "signature is invalid"),
        (key.sign_as("nope", &ok), "no key with id \"nope\""),
    ];
    for (jwt, needle) in &cases {
        assert_refused(&login(&m, "dev", jwt).await, needle);
    }
    // Every refusal of the claims says so in the same words.
    let r = login(&m, "dev", &key.sign(&with("exp", json!(now() - 3600)))).await;
    assert!(
        r.error.starts_with("error validating claims: "),
        "{}",
        r.error
    );
    let r = login(&m, "dev", &stranger.sign(&ok)).await;
    assert!(
        r.error.starts_with("error validating token: "),
        "{}",
        r.error
    );

    // An unsigned token, however well-formed its claims.
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&ok.to_string())
    );
    assert_refused(&login(&m, "dev", &none).await, "alg \"none\"");
    assert_refused(&login(&m, "dev", "garbage").await, "malformed JWT");
    // HMAC tokens are never accepted, whatever their secret.
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &ok,
        &jsonwebtoken::EncodingKey::from_secret(b"s"),
    )
    .unwrap();
    assert_refused(&login(&m, "dev", &hs).await, "not allowed");
}

#[tokio::test]
async fn key_rotation_at_the_jwks_endpoint_is_picked_up() {
    let old = Signer::es256("old");
    let new = Signer::ed25519("new");
    let issuer = Issuer::start(&[&old]).await;
    let m = mount().await;
    m.write("config", json!({"jwks_url": issuer.jwks_url()}))
        .await;
    role(&m, "dev", json!({})).await;
    let c = claims("anyone");
    assert_eq!(login(&m, "dev", &old.sign(&c)).await.status, 200);
    let before = issuer.fetches();

    issuer.publish(&[&new]);
    let r = login(&m, "dev", &new.sign(&c)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(issuer.fetches(), before + 1);
    // The retired key no longer verifies anything.
    assert_refused(
        &login(&m, "dev", &old.sign(&c)).await,
        "no key with id \"old\"",
    );
}

#[tokio::test]
async fn oidc_discovery_finds_the_keys_and_the_issuer() {
    let key = Signer::rsa("d1", Algorithm::RS256);
    let issuer = Issuer::start(&[&key]).await;
    let m = mount().await;
    let c = m
        .write(
            "config",
            json!({"oidc_discovery_url": issuer.base, "default_role": "dev"}),
        )
        .await;
    assert_eq!(c.status, 204, "{c:?}");
    role(&m, "dev", json!({})).await;
    // No role named: the default role.
    let r = m
        .write("login", json!({"jwt": key.sign(&claims(&issuer.base))}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // Discovery alone does not bind the issuer (as in Vault); bound_issuer does.
    let elsewhere = key.sign(&claims("https://elsewhere"));
    assert_eq!(login(&m, "dev", &elsewhere).await.status, 200);
    let c = m
        .write(
            "config",
            json!({"oidc_discovery_url": issuer.base, "bound_issuer": issuer.base}),
        )
        .await;
    assert_eq!(c.status, 204, "{c:?}");
    assert_refused(&login(&m, "dev", &elsewhere).await, "invalid issuer");
    assert_eq!(
        login(&m, "dev", &key.sign(&claims(&issuer.base)))
            .await
            .status,
        200
    );
    let read = m.read("config").await;
    assert_eq!(read.data["oidc_discovery_url"], json!(issuer.base));
    assert!(read.data.get("oidc_client_secret").is_none());
}

#[tokio::test]
async fn static_public_keys() {
    let rsa = Signer::rsa("a", Algorithm::RS256);
    let (ec, ed) = (Signer::es256("b"), Signer::ed25519("c"));
    let m = mount().await;
    let c = m
        .write(
            "config",
            json!({"jwt_validation_pubkeys": [rsa.public_pem, ec.public_pem, ed.public_pem],
                "jwt_supported_algs": ["RS256", "ES256", "EdDSA"]}),
        )
        .await;
    assert_eq!(c.status, 204, "{c:?}");
    role(&m, "dev", json!({})).await;
    for s in [&rsa, &ec, &ed] {
        assert_eq!(login(&m, "dev", &s.sign(&claims("x"))).await.status, 200);
    }
    // RS384 is not among the allowed algorithms.
    let r = login(
        &m,
        "dev",
        &rsa.with_alg(Algorithm::RS384).sign(&claims("x")),
    )
    .await;
    assert_refused(&r, "not allowed");
    let other = Signer::es256("b");
    assert_refused(
        &login(&m, "dev", &other.sign(&claims("x"))).await,
        "signature",
    );
}

#[tokio::test]
async fn config_is_validated_at_write() {
    let m = mount().await;
    let r = m.write("config", json!({"bound_issuer": "x"})).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error,
        "exactly one of 'jwt_validation_pubkeys', 'jwks_url' or 'oidc_discovery_url' must be set"
    );
    let r = m
        .write(
            "config",
            json!({"jwks_url": "http://127.0.0.1:9/jwks", "oidc_discovery_url": "http://x"}),
        )
        .await;
    assert_eq!(r.status, 400);
    // Nothing listens on port 9 (discard): the fetch fails and the write with it.
    let r = m
        .write("config", json!({"jwks_url": "http://127.0.0.1:9/jwks"}))
        .await;
    assert_refused(&r, "error checking jwks URL");
    let r = m
        .write(
            "config",
            json!({"oidc_discovery_url": "http://127.0.0.1:9"}),
        )
        .await;
    assert_refused(&r, "error checking oidc discovery URL");
    let r = m
        .write("config", json!({"jwt_validation_pubkeys": ["not a key"]}))
        .await;
    assert_refused(&r, "error parsing public key");
    let r = m
        .write(
            "config",
            json!({"jwt_validation_pubkeys": [Signer::es256("k").public_pem],
                "jwt_supported_algs": "HS256"}),
        )
        .await;
    assert_refused(&r, "invalid jwt_supported_algs");
    assert_eq!(m.read("config").await.status, 404);
}

#[tokio::test]
async fn roles() {
    let key = Signer::es256("k");
    let m = mount().await;
    m.write(
        "config",
        json!({"jwt_validation_pubkeys": [key.public_pem]}),
    )
    .await;
    // The default role type is oidc, which needs redirect URIs and cannot log in with a JWT.
    let r = m.write("role/web", json!({"user_claim": "sub"})).await;
    assert_refused(&r, "allowed_redirect_uris");
    let r = m
        .write(
            "role/web",
            json!({"user_claim": "sub", "allowed_redirect_uris": "http://localhost/cb",
                "bound_audiences": "api"}),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_refused(
        &login(&m, "web", &key.sign(&claims("x"))).await,
        "role with oidc role_type is not allowed",
    );
    let r = m
        .write(
            "role/bare",
            json!({"role_type": "jwt", "user_claim": "sub"}),
        )
        .await;
    assert_refused(&r, "at least one bound constraint");
    let r = m
        .write(
            "role/nouser",
            json!({"role_type": "jwt", "bound_subject": "s"}),
        )
        .await;
    assert_refused(&r, "user claim");

    role(
        &m,
        "dev",
        json!({"expiration_leeway": -1, "clock_skew_leeway": "0",
        "bound_claims_type": "glob", "bound_claims": {"team": "bl*"}}),
    )
    .await;
    let read = m.read("role/dev").await;
    assert_eq!(read.status, 200);
    assert_eq!(read.data["role_type"], json!("jwt"));
    assert_eq!(read.data["bound_audiences"], json!(["api"]));
    assert_eq!(read.data["expiration_leeway"], json!(-1));
    assert_eq!(read.data["not_before_leeway"], json!(150));
    assert_eq!(read.data["token_ttl"], json!(600));
    assert_eq!(read.data["bound_claims"], json!({"team": "bl*"}));
    assert_eq!(login(&m, "dev", &key.sign(&claims("x"))).await.status, 200);

    let mut keys = m.list("role/").await.data["keys"].clone();
    keys.as_array_mut().unwrap().sort_by_key(|v| v.to_string());
    assert_eq!(keys, json!(["dev", "web"]));
    assert_eq!(m.delete("role/dev").await.status, 204);
    assert_refused(
        &login(&m, "dev", &key.sign(&claims("x"))).await,
        "could not be found",
    );
    // A user claim missing from the token.
    role(&m, "mail", json!({"user_claim": "upn"})).await;
    assert_refused(
        &login(&m, "mail", &key.sign(&claims("x"))).await,
        "claim \"upn\" not found in token",
    );
}

#[tokio::test]
async fn unknown_key_ids_do_not_hammer_the_issuer() {
    let key = Signer::es256("real");
    let issuer = Issuer::start(&[&key]).await;
    let m = mount_with(Duration::from_secs(60)).await;
    m.write("config", json!({"jwks_url": issuer.jwks_url()}))
        .await;
    role(&m, "dev", json!({})).await;
    assert_eq!(login(&m, "dev", &key.sign(&claims("x"))).await.status, 200);
    let before = issuer.fetches();
    for i in 0..5 {
        let r = login(
            &m,
            "dev",
            &key.sign_as(&format!("forged-{i}"), &claims("x")),
        )
        .await;
        assert_refused(&r, "no key with id");
    }
    assert_eq!(issuer.fetches(), before);
}

#[tokio::test]
async fn renewal_rereads_the_role() {
    let m = mount().await;
    role(&m, "ren", json!({"token_max_ttl": "1h"})).await;
    let mut auth = lessor_core::logical::AuthSpec {
        policies: vec!["dev".into()],
        ..Default::default()
    };
    auth.internal.insert("role".into(), json!("ren"));
    let g = m.renew_auth(&auth).await.unwrap().unwrap();
    assert_eq!((g.ttl.as_secs(), g.max_ttl.as_secs()), (600, 3600));
    role(&m, "ren", json!({"token_policies": "other"})).await;
    let e = m.renew_auth(&auth).await.unwrap_err();
    assert_eq!(e.to_string(), "policies have changed, not renewing");
    m.delete("role/ren").await;
    let e = m.renew_auth(&auth).await.unwrap_err();
    assert_eq!(
        (e.status(), e.to_string()),
        (400, "role could not be found".to_string())
    );
    // A token whose login stored no role keeps its terms.
    auth.internal.clear();
    assert!(m.renew_auth(&auth).await.unwrap().is_none());
}

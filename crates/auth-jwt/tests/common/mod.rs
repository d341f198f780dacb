//! Real keys (RSA, EC P-256/P-384, Ed25519), tokens signed with them, and a small HTTP
//! server on 127.0.0.1 serving a JWKS and an OIDC discovery document the test can change.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rand::rngs::OsRng;
use serde_json::{Value, json};

/// A signing key with its public forms.
pub struct Signer {
    pub kid: String,
    pub alg: Algorithm,
    enc: EncodingKey,
    pub jwk: Value,
    pub public_pem: String,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Signer {
    pub fn rsa(kid: &str, alg: Algorithm) -> Signer {
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
        let public = key.to_public_key();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        Signer {
            kid: kid.into(),
            alg,
            enc: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            jwk: json!({"kty": "RSA", "kid": kid, "use": "sig",
                "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())}),
            public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
        }
    }

    pub fn es256(kid: &str) -> Signer {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let key = p256::SecretKey::random(&mut OsRng);
        let point = key.public_key().to_encoded_point(false);
        Signer {
            kid: kid.into(),
            alg: Algorithm::ES256,
            enc: EncodingKey::from_ec_pem(key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes())
                .unwrap(),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
                "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())}),
            public_pem: key.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
        }
    }

    pub fn es384(kid: &str) -> Signer {
        use p384::elliptic_curve::sec1::ToEncodedPoint;
        let key = p384::SecretKey::random(&mut OsRng);
        let point = key.public_key().to_encoded_point(false);
        Signer {
            kid: kid.into(),
            alg: Algorithm::ES384,
            enc: EncodingKey::from_ec_pem(key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes())
                .unwrap(),
            jwk: json!({"kty": "EC", "crv": "P-384", "kid": kid, "use": "sig",
                "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())}),
            public_pem: key.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
        }
    }

    pub fn ed25519(kid: &str) -> Signer {
        let key = ed25519_dalek::SigningKey::generate(&mut OsRng);
        let public = key.verifying_key();
        Signer {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            enc: EncodingKey::from_ed_pem(key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes())
                .unwrap(),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig",
                "x": b64(public.as_bytes())}),
            public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
        }
    }

    /// The same key signing with another algorithm of its family (RS384, RS512).
    pub fn with_alg(&self, alg: Algorithm) -> Signer {
        Signer {
            kid: self.kid.clone(),
            alg,
            enc: self.enc.clone(),
            jwk: self.jwk.clone(),
            public_pem: self.public_pem.clone(),
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &self.enc).unwrap()
    }

    /// Signed with this key but claiming another key id.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(&h, claims, &self.enc).unwrap()
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[derive(Clone)]
struct Shared {
    jwks: Arc<parking_lot::Mutex<Value>>,
    base: String,
    fetches: Arc<AtomicUsize>,
}

/// The issuer's HTTP server: `/jwks` and `/.well-known/openid-configuration`.
pub struct Issuer {
    pub base: String,
    shared: Shared,
}

impl Issuer {
    pub async fn start(keys: &[&Signer]) -> Issuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = Shared {
            jwks: Arc::new(parking_lot::Mutex::new(Value::Null)),
            base: base.clone(),
            fetches: Arc::new(AtomicUsize::new(0)),
        };
        let app = axum::Router::new()
            .route(
                "/jwks",
                get(|State(s): State<Shared>| async move {
                    s.fetches.fetch_add(1, Ordering::SeqCst);
                    Json(s.jwks.lock().clone())
                }),
            )
            .route(
                "/.well-known/openid-configuration",
                get(|State(s): State<Shared>| async move {
                    Json(
                        json!({"issuer": s.base, "jwks_uri": format!("{}/jwks", s.base),
                        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"]}),
                    )
                }),
            )
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let issuer = Issuer { base, shared };
        issuer.publish(keys);
        issuer
    }

    /// Replaces the published key set.
    pub fn publish(&self, keys: &[&Signer]) {
        let keys: Vec<Value> = keys.iter().map(|k| k.jwk.clone()).collect();
        *self.shared.jwks.lock() = json!({ "keys": keys });
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.base)
    }

    pub fn fetches(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }
}

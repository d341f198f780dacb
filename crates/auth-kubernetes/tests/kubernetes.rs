//! Kubernetes logins through the framework's dispatch, against a TokenReview stand-in on
//! 127.0.0.1 that really verifies the service-account JWT it is sent with a key of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lessor_auth_common::testing::{Mount, Reply};
use lessor_auth_kubernetes::Kubernetes;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rand::rngs::OsRng;
use serde_json::{Map, Value, json};

/// The cluster's service-account signing key.
struct Key {
    enc: EncodingKey,
    public_pem: String,
}

impl Key {
    fn new() -> Key {
        let k = p256::SecretKey::random(&mut OsRng);
        Key {
            enc: EncodingKey::from_ec_pem(k.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes())
                .unwrap(),
            public_pem: k.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &self.enc).unwrap()
    }
}

fn legacy(ns: &str, name: &str) -> Value {
    json!({"iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": ns,
        "kubernetes.io/serviceaccount/service-account.name": name,
        "kubernetes.io/serviceaccount/service-account.uid": format!("uid-{name}"),
        "kubernetes.io/serviceaccount/secret.name": format!("{name}-token-abc"),
        "sub": format!("system:serviceaccount:{ns}:{name}")})
}

fn projected(ns: &str, name: &str, aud: &str) -> Value {
    json!({"iss": "https://kubernetes.default.svc", "aud": [aud],
        "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": name, "uid": format!("uid-{name}")}},
        "sub": format!("system:serviceaccount:{ns}:{name}")})
}

#[derive(Clone)]
struct Cluster {
    public_pem: String,
    bearers: Arc<parking_lot::Mutex<Vec<String>>>,
    /// When set, calls with another bearer get 401.
    require_bearer: Option<String>,
}

/// The TokenReview API: verifies the token with the cluster key and reports who it is.
async fn token_review(
    State(c): State<Cluster>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    c.bearers.lock().push(bearer.clone());
    if c.require_bearer.as_ref().is_some_and(|b| *b != bearer) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"kind": "Status"})));
    }
    let token = body
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let wanted: Vec<String> = body
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let key = DecodingKey::from_ec_pem(c.public_pem.as_bytes()).unwrap();
    let mut v = Validation::new(Algorithm::ES256);
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let unauthenticated = |why: &str| {
        (
            StatusCode::CREATED,
            Json(json!({"kind": "TokenReview",
            "status": {"authenticated": false, "error": why}})),
        )
    };
    let Ok(data) = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v) else {
        return unauthenticated("invalid bearer token");
    };
    let claims = data.claims;
    let token_aud: Vec<String> = match claims.get("aud") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => vec!["https://kubernetes.default.svc".into()],
    };
    let audiences: Vec<String> = if wanted.is_empty() {
        token_aud
    } else {
        wanted
            .into_iter()
            .filter(|w| token_aud.contains(w))
            .collect()
    };
    if audiences.is_empty() {
        return unauthenticated("token audiences is invalid for the target audiences");
    }
    let uid = claims
        .get("kubernetes.io/serviceaccount/service-account.uid")
        .or_else(|| {
            claims
                .get("kubernetes.io")
                .and_then(|k| k.pointer("/serviceaccount/uid"))
        })
        .cloned()
        .unwrap_or(Value::Null);
    (
        StatusCode::CREATED,
        Json(
            json!({"kind": "TokenReview", "status": {"authenticated": true,
            "user": {"username": claims["sub"], "uid": uid, "groups": ["system:serviceaccounts"]},
            "audiences": audiences}}),
        ),
    )
}

async fn start_cluster(key: &Key, require_bearer: Option<&str>) -> (String, Cluster) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    let c = Cluster {
        public_pem: key.public_pem.clone(),
        bearers: Arc::default(),
        require_bearer: require_bearer.map(String::from),
    };
    let app = axum::Router::new()
        .route(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            post(token_review),
        )
        .with_state(c.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (host, c)
}

async fn mount(host: &str, extra: Value) -> Mount {
    let m = Mount::new(Arc::new(Kubernetes::new()), "kubernetes", "kubernetes")
        .await
        .unwrap();
    // No pod CA or token exists where the tests run, so the local fallback finds nothing.
    let mut body = json!({"kubernetes_host": host});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    let r = m.write("config", body).await;
    assert_eq!(r.status, 204, "{r:?}");
    m
}

async fn login(m: &Mount, role: &str, jwt: &str) -> Reply {
    m.write("login", json!({"role": role, "jwt": jwt})).await
}

#[tokio::test]
async fn legacy_token_logs_in_with_the_reviewer_jwt() {
    let key = Key::new();
    let (host, cluster) = start_cluster(&key, Some("reviewer-jwt")).await;
    let m = mount(&host, json!({"token_reviewer_jwt": "reviewer-jwt"})).await;
    let r = m
        .write(
            "role/app",
            json!({"bound_service_account_names": "web", "bound_service_account_namespaces": "prod",
                "token_policies": "app", "token_ttl": "15m"}),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = login(&m, "app", &key.sign(&legacy("prod", "web"))).await;
    assert_eq!(r.status, 200, "{r:?}");
    let a = r.auth.unwrap();
    assert_eq!(a.display_name, "kubernetes-prod-web");
    assert_eq!(a.token_policies, ["app"]);
    assert_eq!(a.ttl.as_secs(), 900);
    let meta = |k: &str| a.metadata.get(k).cloned().unwrap_or_default();
    assert_eq!(meta("role"), "app");
    assert_eq!(meta("service_account_name"), "web");
    assert_eq!(meta("service_account_namespace"), "prod");
    assert_eq!(meta("service_account_uid"), "uid-web");
    assert_eq!(meta("service_account_secret_name"), "web-token-abc");
    assert_eq!(cluster.bearers.lock().as_slice(), ["reviewer-jwt"]);

    // The reviewer JWT is never read back.
    let c = m.read("config").await;
    assert_eq!(c.data["kubernetes_host"], json!(host));
    assert_eq!(c.data["token_reviewer_jwt_set"], json!(true));
    assert!(!c.data.to_string().contains("reviewer-jwt"));
}

#[tokio::test]
async fn projected_token_uses_its_own_jwt_and_the_role_audience() {
    let key = Key::new();
    let (host, cluster) = start_cluster(&key, None).await;
    let m = mount(&host, json!({})).await;
    m.write(
        "role/vault",
        json!({"bound_service_account_names": "web", "bound_service_account_namespaces": "prod",
            "audience": "lessor"}),
    )
    .await;
    let jwt = key.sign(&projected("prod", "web", "lessor"));
    let r = login(&m, "vault", &jwt).await;
    assert_eq!(r.status, 200, "{r:?}");
    // Without a reviewer JWT the client's own JWT is the bearer.
    assert_eq!(cluster.bearers.lock().last(), Some(&jwt));
    // A token for another audience is refused by the review.
    let r = login(&m, "vault", &key.sign(&projected("prod", "web", "other"))).await;
    assert_eq!(r.status, 403, "{r:?}");
}

#[tokio::test]
async fn bindings_with_globs() {
    let key = Key::new();
    let (host, _) = start_cluster(&key, None).await;
    let m = mount(&host, json!({})).await;
    m.write(
        "role/teams",
        json!({"bound_service_account_names": ["app-*", "worker"],
            "bound_service_account_namespaces": "team-*"}),
    )
    .await;
    m.write(
        "role/anyname",
        json!({"bound_service_account_names": "*", "bound_service_account_namespaces": "ops"}),
    )
    .await;
    for (role, ns, name) in [
        ("teams", "team-a", "app-1"),
        ("teams", "team-b", "worker"),
        ("anyname", "ops", "whatever"),
    ] {
        let r = login(&m, role, &key.sign(&legacy(ns, name))).await;
        assert_eq!(r.status, 200, "{role} {ns}/{name}: {r:?}");
    }
    for (role, ns, name, msg) in [
        (
            "teams",
            "team-a",
            "db",
            "service account name not authorized",
        ),
        ("teams", "prod", "app-1", "namespace not authorized"),
        ("anyname", "dev", "x", "namespace not authorized"),
    ] {
        let r = login(&m, role, &key.sign(&legacy(ns, name))).await;
        assert_eq!(r.status, 403, "{role} {ns}/{name}: {r:?}");
        assert_eq!(r.error, msg);
    }
}

#[tokio::test]
async fn refusals() {
    let key = Key::new();
    let stranger = Key::new();
    let (host, _) = start_cluster(&key, None).await;
    let m = mount(&host, json!({})).await;
    m.write(
        "role/app",
        json!({"bound_service_account_names": "web", "bound_service_account_namespaces": "prod"}),
    )
    .await;
    let r = login(&m, "nope", &key.sign(&legacy("prod", "web"))).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error, "invalid role name \"nope\"");
    // Forged by another key: the claims bind, but the cluster does not confirm it.
    let r = login(&m, "app", &stranger.sign(&legacy("prod", "web"))).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(login(&m, "app", "not-a-jwt").await.status, 400);

    // With pem_keys the forgery is caught before any review.
    let m = mount(&host, json!({"pem_keys": [key.public_pem]})).await;
    m.write(
        "role/app",
        json!({"bound_service_account_names": "web", "bound_service_account_namespaces": "prod"}),
    )
    .await;
    assert_eq!(
        login(&m, "app", &key.sign(&legacy("prod", "web")))
            .await
            .status,
        200
    );
    let r = login(&m, "app", &stranger.sign(&legacy("prod", "web"))).await;
    assert_eq!(r.status, 400);
    assert!(r.error.contains("pem_keys"), "{}", r.error);

    // The API unreachable: refused, not an error page.
    let m = mount("http://127.0.0.1:9", json!({})).await;
    m.write(
        "role/app",
        json!({"bound_service_account_names": "web", "bound_service_account_namespaces": "prod"}),
    )
    .await;
    assert_eq!(
        login(&m, "app", &key.sign(&legacy("prod", "web")))
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn role_validation_and_read_back() {
    let m = mount("http://127.0.0.1:9", json!({})).await;
    for (body, msg) in [
        (
            json!({"bound_service_account_namespaces": "a"}),
            "bound_service_account_names",
        ),
        (
            json!({"bound_service_account_names": "a"}),
            "bound_service_account_namespaces",
        ),
        (
            json!({"bound_service_account_names": "*", "bound_service_account_namespaces": "*"}),
            "can not both be",
        ),
        (
            json!({"bound_service_account_names": "a", "bound_service_account_namespaces": "b",
                "alias_name_source": "x"}),
            "alias_name_source",
        ),
    ] {
        let r = m.write("role/bad", body).await;
        assert_eq!(r.status, 400);
        assert!(r.error.contains(msg), "{}", r.error);
    }
    m.write(
        "role/ok",
        json!({"bound_service_account_names": "a,b", "bound_service_account_namespaces": ["n"],
            "token_period": "1h", "token_bound_cidrs": "127.0.0.0/8"}),
    )
    .await;
    let r = m.read("role/ok").await;
    assert_eq!(r.data["bound_service_account_names"], json!(["a", "b"]));
    assert_eq!(r.data["token_period"], json!(3600));
    assert_eq!(r.data["alias_name_source"], json!("serviceaccount_uid"));
    assert_eq!(m.list("role").await.data["keys"], json!(["ok"]));
    let c = m.write("config", json!({})).await;
    assert_eq!(c.status, 400);
    let c = m
        .write(
            "config",
            json!({"kubernetes_host": "https://k", "disable_local_ca_jwt": true}),
        )
        .await;
    assert_eq!(c.status, 400);
    assert!(
        c.error.contains("kubernetes_ca_cert must be given"),
        "{}",
        c.error
    );
    let c = m
        .write(
            "config",
            json!({"kubernetes_host": "https://k", "kubernetes_ca_cert": "junk"}),
        )
        .await;
    assert_eq!(c.status, 400);
}

#[tokio::test]
async fn renewal_rereads_the_role() {
    let m = mount("http://127.0.0.1:9", json!({})).await;
    let role = |policies: &str| {
        json!({"bound_service_account_names": "*", "bound_service_account_namespaces": "ns",
            "token_policies": policies, "token_ttl": 90, "token_period": 0})
    };
    let r = m.write("role/ren", role("p")).await;
    assert!(r.status < 300, "{r:?}");
    let mut auth = lessor_core::logical::AuthSpec {
        policies: vec!["p".into()],
        ..Default::default()
    };
    auth.internal.insert("role".into(), json!("ren"));
    let g = m.renew_auth(&auth).await.unwrap().unwrap();
    assert_eq!(g.ttl.as_secs(), 90);
    m.write("role/ren", role("q")).await;
    let e = m.renew_auth(&auth).await.unwrap_err();
    assert_eq!(e.to_string(), "policies have changed, not renewing");
    m.delete("role/ren").await;
    let e = m.renew_auth(&auth).await.unwrap_err();
    assert_eq!(e.to_string(), "role ren does not exist during renewal");
}

//! The server in-process on a loopback port, driven by a third-party client (vaultrs) and by
//! raw HTTP: the envelope and status codes real clients depend on.

// Tests and their helpers may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use lessor_core::core::{Core, CoreConfig};
use lessor_server::{AppState, router};
use serde_json::{Value, json};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

struct Server {
    addr: SocketAddr,
    _task: tokio::task::JoinHandle<()>,
}

async fn start() -> Server {
    let storage = Arc::new(lessor_storage::inmem::InMem::new());
    let core = Core::new(storage, CoreConfig::default(), lessor_server::factories());
    core.dev_init(Some("root")).await.unwrap();
    let app = router(AppState {
        core,
        max_request_size: lessor_server::config::DEFAULT_MAX_REQUEST_SIZE,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Server { addr, _task: task }
}

fn client(s: &Server, token: &str) -> VaultClient {
    VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(format!("http://{}", s.addr))
            .token(token)
            .build()
            .unwrap(),
    )
    .unwrap()
}

async fn raw(
    s: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} /v1/{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("X-Vault-Token: {t}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    // Bodies may be chunked; take the JSON object between the first '{' and the last '}'.
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) => serde_json::from_str(&body[a..=b]).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, content_type, json)
}

#[tokio::test]
async fn vaultrs_sys_kv_tokens_and_policies() {
    let s = start().await;
    let root = client(&s, "root");

    let health = vaultrs::sys::health(&root).await.unwrap();
    assert!(health.initialized && !health.sealed);
    let seal = vaultrs::sys::status(&root).await.unwrap();
    assert!(matches!(seal, vaultrs::sys::ServerStatus::OK));

    // KV v2 at secret/ in dev mode.
    let mut data = std::collections::HashMap::new();
    data.insert("user", "alice");
    vaultrs::kv2::set(&root, "secret", "app", &data)
        .await
        .unwrap();
    let read: std::collections::HashMap<String, String> =
        vaultrs::kv2::read(&root, "secret", "app").await.unwrap();
    assert_eq!(read["user"], "alice");
    let meta = vaultrs::kv2::read_metadata(&root, "secret", "app")
        .await
        .unwrap();
    assert_eq!(meta.current_version, 1);
    let keys = vaultrs::kv2::list(&root, "secret", "").await.unwrap();
    assert_eq!(keys, vec!["app"]);

    // A policy and a token holding it: reads its path, 403 elsewhere.
    vaultrs::sys::policy::set(
        &root,
        "app-read",
        r#"path "secret/data/app" { capabilities = ["read"] }"#,
    )
    .await
    .unwrap();
    let created = vaultrs::token::new(
        &root,
        Some(
            &mut vaultrs::api::token::requests::CreateTokenRequestBuilder::default()
                .policies(vec!["app-read".into()])
                .ttl("1h"),
        ),
    )
    .await
    .unwrap();
    let limited = client(&s, &created.client_token);
    let read: std::collections::HashMap<String, String> =
        vaultrs::kv2::read(&limited, "secret", "app").await.unwrap();
    assert_eq!(read["user"], "alice");
    let denied = vaultrs::kv2::set(&limited, "secret", "other", &data).await;
    assert!(denied.is_err());
    let me = vaultrs::token::lookup_self(&limited).await.unwrap();
    assert_eq!(me.policies, vec!["app-read", "default"]);
    assert!(me.ttl > 3500 && me.ttl <= 3600);

    vaultrs::token::revoke(&root, &created.client_token)
        .await
        .unwrap();
    assert!(vaultrs::token::lookup_self(&limited).await.is_err());

    // Mounts: enable KV v1, list, disable.
    vaultrs::sys::mount::enable(&root, "kv1", "kv", None)
        .await
        .unwrap();
    let mounts = vaultrs::sys::mount::list(&root).await.unwrap();
    assert!(mounts.contains_key("kv1/"));
    vaultrs::sys::mount::disable(&root, "kv1").await.unwrap();
}

#[tokio::test]
async fn raw_http_envelope_and_errors() {
    let s = start().await;
    // Full envelope on a read.
    let (status, ct, body) = raw(&s, "GET", "sys/mounts", Some("root"), None).await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    for key in [
        "request_id",
        "lease_id",
        "renewable",
        "lease_duration",
        "data",
        "wrap_info",
        "warnings",
        "auth",
        "mount_type",
    ] {
        assert!(body.get(key).is_some(), "missing {key}");
    }
    assert!(body["secret/"].is_object(), "legacy top-level copy");
    // 204 for empty success.
    let (status, _, _) = raw(
        &s,
        "POST",
        "sys/policies/acl/x",
        Some("root"),
        Some(json!({"policy": "path \"a\" { capabilities = [\"read\"] }"})),
    )
    .await;
    assert_eq!(status, 204);
    // 404 {"errors":[]} for a missing read and an empty list.
    let (status, _, body) = raw(&s, "GET", "secret/data/nope", Some("root"), None).await;
    assert_eq!((status, body), (404, json!({"errors": []})));
    let (status, _, body) = raw(&s, "LIST", "secret/metadata/nope/", Some("root"), None).await;
    assert_eq!((status, body), (404, json!({"errors": []})));
    // Missing and wrong tokens: 403.
    let (status, ct, body) = raw(&s, "GET", "sys/mounts", None, None).await;
    assert_eq!((status, ct.as_str()), (403, "application/json"));
    assert!(body["errors"].is_array());
    let (status, _, _) = raw(&s, "GET", "sys/mounts", Some("hvs.nope"), None).await;
    assert_eq!(status, 403);
    // Unknown path, bad JSON, wrong types, unsupported method.
    let (status, _, _) = raw(&s, "GET", "nowhere/x", Some("root"), None).await;
    assert_eq!(status, 404);
    let (status, _, body) = raw(&s, "POST", "auth/token/create", Some("root"), None).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = raw(
        &s,
        "POST",
        "auth/token/create",
        Some("root"),
        Some(json!({"ttl": "abc"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = raw(&s, "PATCH", "secret/data/x", Some("root"), Some(json!({}))).await;
    assert_eq!(status, 415);
    let (status, _, _) = raw(&s, "GET", "sys/seal", Some("root"), None).await;
    assert_eq!(status, 405);
}

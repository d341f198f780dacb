//! Test support: a moto server from the project's venv, with an admin key bootstrapped in
//! its free calls. Tests skip themselves when `moto_server` is not installed.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::config::RootConfig;
use crate::sdk::Clients;

pub struct Moto(std::process::Child, pub u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_moto() -> Option<Moto> {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
    if !bin.exists() {
        eprintln!("skipped: {} not found", bin.display());
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = std::process::Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let m = Moto(child, port);
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(m);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

pub async fn admin(port: u16) -> Clients {
    let mut cfg = RootConfig {
        access_key: "bootstrap".into(),
        secret_key: "bootstrap".into(),
        iam_endpoint: format!("http://127.0.0.1:{port}"),
        sts_endpoint: format!("http://127.0.0.1:{port}"),
        max_retries: 0,
        ..RootConfig::unset()
    };
    let boot = crate::sdk::build(&cfg).await;
    boot.iam
        .create_user()
        .user_name("admin")
        .send()
        .await
        .unwrap();
    let policy =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    boot.iam
        .put_user_policy()
        .user_name("admin")
        .policy_name("all")
        .policy_document(policy)
        .send()
        .await
        .unwrap();
    let key = boot
        .iam
        .create_access_key()
        .user_name("admin")
        .send()
        .await
        .unwrap();
    let key = key.access_key().unwrap();
    cfg.access_key = key.access_key_id().into();
    cfg.secret_key = key.secret_access_key().into();
    crate::sdk::build(&cfg).await
}

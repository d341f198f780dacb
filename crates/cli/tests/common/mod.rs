//! Test harness: a real OpenBao server (the `bao` binary from the project's Python venv) on
//! a free loopback port, and a runner for the built `lessor` binary pointed at it. When the
//! binary is missing the tests print why and pass without running, so a machine without
//! the venv still builds and tests the rest.
//!
//! `LESSOR_TEST_SERVER=lessor` runs the same tests against `lessor server` instead (the
//! same binary, whose server takes the same `-dev` flags).

#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const ROOT: &str = "root";

/// Whether the tests target `lessor server` rather than OpenBao.
pub fn against_lessor() -> bool {
    std::env::var("LESSOR_TEST_SERVER").is_ok_and(|v| v == "lessor")
}

/// The server binary: `lessor` itself when [`against_lessor`], else `bao`.
fn server_binary() -> Option<PathBuf> {
    if against_lessor() {
        return Some(PathBuf::from(env!("CARGO_BIN_EXE_lessor")));
    }
    bao_binary()
}

/// The `bao` binary: `LESSOR_TEST_BAO`, else the workspace venv's.
pub fn bao_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LESSOR_TEST_BAO") {
        return Some(PathBuf::from(p));
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/bao");
    p.exists().then_some(p)
}

/// A port that is free, with the next one free too (dev mode also listens on port + 1).
fn free_port() -> u16 {
    for _ in 0..50 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if port < 65535 && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair found");
}

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    pub addr: String,
    pub home: tempfile::TempDir,
    /// The CA certificate of a TLS server, passed as `VAULT_CACERT`.
    pub ca_cert: Option<PathBuf>,
    _config_dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bao server -dev` (unsealed, root token `root`); None when bao is not installed.
pub fn start_dev() -> Option<Server> {
    on_a_free_port("bao server -dev", |port| {
        let args = vec![
            "server".to_string(),
            "-dev".to_string(),
            format!("-dev-root-token-id={ROOT}"),
            format!("-dev-listen-address=127.0.0.1:{port}"),
        ];
        launch(args, port, true, None)
    })
}

/// Starts `bao server -dev -dev-tls`: HTTPS with a CA of its own, in a temporary directory.
pub fn start_dev_tls() -> Option<Server> {
    if against_lessor() {
        eprintln!("skipping: lessor's dev mode has no -dev-tls");
        return None;
    }
    on_a_free_port("bao server -dev -dev-tls", |port| {
        let dir = tempfile::tempdir().unwrap();
        let args = vec![
            "server".to_string(),
            "-dev".to_string(),
            "-dev-tls".to_string(),
            format!("-dev-tls-cert-dir={}", dir.path().display()),
            format!("-dev-root-token-id={ROOT}"),
            format!("-dev-listen-address=127.0.0.1:{port}"),
        ];
        let ca = dir.path().join("vault-ca.pem");
        launch(args, port, true, Some((dir, ca)))
    })
}

/// Starts a non-dev server with in-memory storage: uninitialised and sealed.
pub fn start_sealed() -> Option<Server> {
    on_a_free_port("bao server", |port| {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("server.hcl");
        std::fs::write(
            &config,
            format!(
                "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n"
            ),
        )
        .unwrap();
        let args = vec![
            "server".to_string(),
            format!("-config={}", config.display()),
        ];
        match launch(args, port, false, None) {
            Launched::Ready(mut server) => {
                server._config_dir = dir;
                Launched::Ready(server)
            }
            other => other,
        }
    })
}

/// Launches a server on a port found free. That port can be taken by a parallel test
/// before bao binds it; bao then exits, and another port is tried.
fn on_a_free_port(what: &str, mut launch_on: impl FnMut(u16) -> Launched) -> Option<Server> {
    for _ in 0..3 {
        match launch_on(free_port()) {
            Launched::Ready(server) => return Some(server),
            Launched::NoBinary => return None,
            Launched::Exited => continue,
        }
    }
    panic!("{what} exited before answering, on three ports");
}

enum Launched {
    Ready(Server),
    /// The server process ended before it answered (its port taken, for one).
    Exited,
    NoBinary,
}

fn launch(
    args: Vec<String>,
    port: u16,
    unsealed: bool,
    tls: Option<(tempfile::TempDir, PathBuf)>,
) -> Launched {
    let Some(bao) = server_binary() else {
        eprintln!(
            "skipping: the bao binary was not found (set LESSOR_TEST_BAO or install the venv)"
        );
        return Launched::NoBinary;
    };
    let child = Command::new(bao)
        .args(&args)
        .env_remove("VAULT_ADDR")
        .env_remove("BAO_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (dir, ca_cert) = match tls {
        Some((dir, ca)) => (dir, Some(ca)),
        None => (tempfile::tempdir().unwrap(), None),
    };
    let mut server = Server {
        child,
        addr: format!("{scheme}://127.0.0.1:{port}"),
        home: tempfile::tempdir().unwrap(),
        ca_cert,
        _config_dir: dir,
    };
    // Ready when the seal status answers (and, in dev mode, says unsealed).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = server.run(&["status", "-format=json"]);
        let ready = if unsealed {
            out.status.code() == Some(0)
        } else {
            out.status.code() == Some(2) && out.stdout.starts_with(b"{")
        };
        if ready {
            return Launched::Ready(server);
        }
        if matches!(server.child.try_wait(), Ok(Some(_))) {
            return Launched::Exited;
        }
        assert!(Instant::now() < deadline, "server did not start in 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One run of the `lessor` binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Server {
    /// The command with the server's address, the root token and a private HOME.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lessor"));
        cmd.args(args)
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", ROOT)
            .env("HOME", self.home.path())
            .env_remove("VAULT_FORMAT")
            .env_remove("BAO_FORMAT")
            .env_remove("BAO_ADDR")
            .env_remove("BAO_TOKEN")
            .env_remove("VAULT_SKIP_VERIFY")
            .env_remove("VAULT_CACERT");
        if let Some(ca) = &self.ca_cert {
            cmd.env("VAULT_CACERT", ca);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs with the given stdin and extra environment.
    pub fn run_with(&self, args: &[&str], stdin: &str, env: &[(&str, Option<&str>)]) -> Run {
        let mut cmd = self.command(args);
        for (k, v) in env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        to_run(child.wait_with_output().unwrap())
    }

    pub fn lessor(&self, args: &[&str]) -> Run {
        to_run(self.run(args))
    }
}

fn to_run(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Starts a dev server or returns from the test when bao is missing.
#[macro_export]
macro_rules! dev_server {
    () => {
        match common::start_dev() {
            Some(s) => s,
            None => return,
        }
    };
}

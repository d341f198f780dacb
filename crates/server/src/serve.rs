//! `lessor server`: flags, storage, the core, listeners (TLS via rustls), and graceful
//! shutdown on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use std::collections::BTreeMap;

use lessor_core::core::{Core, CoreConfig, Factory};
use lessor_storage::Storage;

use crate::config::{Config, ListenerConfig, StorageConfig};
use crate::http::AppState;

#[derive(Debug, Default)]
struct Flags {
    dev: bool,
    dev_root_token_id: Option<String>,
    dev_listen_address: Option<String>,
    config: Vec<PathBuf>,
    log_level: Option<String>,
    dev_no_store_token: bool,
}

const USAGE: &str = "Usage: lessor server [options]

  -dev                        Development mode: in-memory, unsealed, root token printed.
  -dev-root-token-id=<id>     Root token of dev mode.
  -dev-listen-address=<addr>  Address of dev mode (default 127.0.0.1:8200).
  -config=<file>              Configuration file (HCL or JSON), Vault's shape.
  -log-level=<level>          trace, debug, info, warn, error.";

fn parse_flags(args: &[String]) -> Result<Flags, String> {
    let mut f = Flags::default();
    let mut it = args.iter().peekable();
    while let Some(arg) = it.next() {
        let a = arg.trim_start_matches('-');
        if a.len() == arg.len() {
            return Err(format!("unexpected argument {arg:?}"));
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (a, None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("flag -{name} needs a value"))
        };
        match name {
            "dev" => f.dev = inline.map(|v| v != "false").unwrap_or(true),
            "dev-root-token-id" => f.dev_root_token_id = Some(value(name)?),
            "dev-listen-address" => f.dev_listen_address = Some(value(name)?),
            "config" => f.config.push(PathBuf::from(value(name)?)),
            "log-level" => f.log_level = Some(value(name)?),
            "dev-no-store-token" => {
                f.dev_no_store_token = inline.map(|v| v != "false").unwrap_or(true)
            }
            "dev-tls" => {}
            "h" | "help" => return Err(USAGE.to_string()),
            other => {
                return Err(format!(
                    "flag provided but not defined: -{other}\n\n{USAGE}"
                ));
            }
        }
    }
    if !f.dev && f.config.is_empty() {
        return Err(format!(
            "At least one config path must be specified with -config\n\n{USAGE}"
        ));
    }
    Ok(f)
}

fn open_storage(s: Option<&StorageConfig>) -> Result<Arc<dyn Storage>, String> {
    let Some(s) = s else {
        return Err("A storage backend must be specified".into());
    };
    match s.kind.as_str() {
        "inmem" => Ok(Arc::new(lessor_storage::inmem::InMem::new())),
        "file" => {
            let path = s
                .options
                .get("path")
                .ok_or("storage \"file\": 'path' must be set")?;
            lessor_storage::file::open_file(std::path::Path::new(path))
                .map_err(|e| format!("error opening storage at {path}: {e}"))
        }
        other => Err(format!("Unknown storage type {other}")),
    }
}

fn init_logging(level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("lessor={level},{level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// A running server: its core and bound addresses.
pub struct Server {
    pub core: Arc<Core>,
    pub addrs: Vec<SocketAddr>,
}

/// Entry point of `lessor server ...`; returns the exit code.
pub fn serve_main(args: Vec<String>) -> i32 {
    serve_with(args, crate::factories())
}

/// `serve_main` with a chosen set of backend types (test builds add their own).
pub fn serve_with(args: Vec<String>, factories: BTreeMap<String, Factory>) -> i32 {
    let flags = match parse_flags(&args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(run(flags, factories)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}

async fn run(flags: Flags, factories: BTreeMap<String, Factory>) -> Result<(), String> {
    let mut cfg = Config::default();
    for path in &flags.config {
        let c = Config::load(path)?;
        cfg.storage = c.storage.or(cfg.storage);
        cfg.listeners.extend(c.listeners);
        cfg.default_lease_ttl = c.default_lease_ttl.or(cfg.default_lease_ttl);
        cfg.max_lease_ttl = c.max_lease_ttl.or(cfg.max_lease_ttl);
        cfg.api_addr = c.api_addr.or(cfg.api_addr);
        cfg.cluster_name = c.cluster_name.or(cfg.cluster_name);
        cfg.log_level = c.log_level.or(cfg.log_level);
        cfg.log_format = c.log_format.or(cfg.log_format);
        cfg.ui |= c.ui;
        cfg.pending_lease_deadline = c.pending_lease_deadline.or(cfg.pending_lease_deadline);
        cfg.cache_size = c.cache_size.or(cfg.cache_size);
        cfg.disable_cache |= c.disable_cache;
        cfg.audit.extend(c.audit);
        cfg.unsafe_allow_api_audit_creation = c
            .unsafe_allow_api_audit_creation
            .or(cfg.unsafe_allow_api_audit_creation);
        cfg.telemetry.metrics_address = c
            .telemetry
            .metrics_address
            .or(cfg.telemetry.metrics_address);
    }
    let level = flags
        .log_level
        .clone()
        .or(cfg.log_level.clone())
        .unwrap_or_else(|| "info".into());
    init_logging(&level, cfg.log_format.as_deref() == Some("json"));

    if flags.dev {
        if cfg.storage.is_none() {
            cfg.storage = Some(StorageConfig {
                kind: "inmem".into(),
                options: Default::default(),
            });
        }
        let addr = flags
            .dev_listen_address
            .clone()
            .unwrap_or_else(|| "127.0.0.1:8200".into());
        cfg.listeners = vec![ListenerConfig {
            address: addr,
            tls_disable: true,
            ..Default::default()
        }];
    }
    if cfg.listeners.is_empty() {
        return Err("at least one listener must be configured".into());
    }
    let storage = open_storage(cfg.storage.as_ref())?;
    let cache_size = match cfg.disable_cache {
        true => 0,
        false => cfg
            .cache_size
            .unwrap_or(lessor_storage::cache::DEFAULT_CACHE_SIZE),
    };
    let storage = lessor_storage::cache::Cached::wrap(storage, cache_size);
    let mut core_cfg = CoreConfig {
        // Three quarters of the cache at most, so a burst read ahead does not evict itself.
        read_ahead_leases: cache_size / 4 * 3,
        ..CoreConfig::default()
    };
    if let Some(d) = cfg.default_lease_ttl.filter(|d| *d > 0) {
        core_cfg.default_lease_ttl = d;
    }
    if let Some(m) = cfg.max_lease_ttl.filter(|m| *m > 0) {
        core_cfg.max_lease_ttl = m;
    }
    if let Some(n) = &cfg.cluster_name {
        core_cfg.cluster_name = n.clone();
        core_cfg.cluster_name_configured = true;
    }
    core_cfg.api_addr = cfg.api_addr.clone().unwrap_or_default();
    if let Some(d) = cfg.pending_lease_deadline.filter(|d| *d > 0) {
        lessor_core::expiration::set_pending_deadline_secs(d);
    }
    let core = Core::new(storage, core_cfg, factories);
    configure_telemetry_and_audit(&core, &cfg);

    let mut dev_banner = None;
    if flags.dev {
        let (key, root) = core
            .dev_init(flags.dev_root_token_id.as_deref())
            .await
            .map_err(|e| format!("dev mode initialization failed: {e}"))?;
        if !flags.dev_no_store_token {
            store_dev_token(&root);
        }
        dev_banner = Some((key, root));
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let mut addrs = Vec::new();
    if let Some(addr) = &cfg.telemetry.metrics_address {
        let (bound, task) = crate::telemetry::listen(addr, core.clone(), stop_rx.clone()).await?;
        tracing::info!(address = %bound, "telemetry listener started");
        tasks.push(task);
    }
    tokio::spawn(reopen_audit_on_sighup(core.clone()));
    for l in &cfg.listeners {
        let state = AppState {
            core: core.clone(),
            max_request_size: l.max_request_size,
        };
        let (addr, task) = listen(l, state, stop_rx.clone()).await?;
        addrs.push(addr);
        tasks.push(task);
    }
    let scheme = if cfg.listeners[0].tls_disable {
        "http"
    } else {
        "https"
    };
    println!("==> lessor server started! Log data will stream in below:\n");
    println!(
        "          Listener: {} ({scheme})",
        addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("           Storage: {}", core.physical.kind());
    println!("           Version: lessor v{}", core.config.version);
    if let Some((key, root)) = dev_banner {
        use base64::Engine as _;
        println!("\nWARNING! dev mode is enabled! In this mode, lessor runs entirely in-memory");
        println!("and starts unsealed with a single unseal key. The root token is already");
        println!("authenticated to the CLI, so you can immediately begin using lessor.\n");
        println!("You may need to set the following environment variables:\n");
        println!("    $ export VAULT_ADDR='{scheme}://{}'\n", addrs[0]);
        println!("The unseal key and root token are displayed below in case you want to");
        println!("seal/unseal the server or re-authenticate.\n");
        println!(
            "Unseal Key: {}",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        println!("Root Token: {root}\n");
        println!("Development mode should NOT be used in production installations!\n");
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();

    shutdown_signal().await;
    tracing::info!("shutdown signal received; stopping listeners");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    core.seal_now().await;
    Ok(())
}

/// Declared audit devices, the API policy for file devices, and gauges measured by engines.
fn configure_telemetry_and_audit(core: &Arc<Core>, cfg: &Config) {
    let declared = cfg
        .audit
        .iter()
        .map(|a| {
            let mut e = lessor_core::audit::DeviceEntry::new(&a.path, &a.kind, a.options.clone());
            e.description = a.description.clone();
            e
        })
        .collect();
    core.audit.set_declared(declared);
    core.audit
        .set_api_file_devices_allowed(cfg.unsafe_allow_api_audit_creation.unwrap_or(true));
    core.metrics.register_gauge(
        "lessor.aws.clock_offset_seconds",
        "Last measured offset of AWS's clock from this server's (AWS minus local).",
        Arc::new(|| lessor_engine_aws::clock_offset_seconds() as f64),
    );
}

/// SIGHUP reopens the audit files, so rotated logs are let go.
async fn reopen_audit_on_sighup(core: Arc<Core>) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reopening audit devices");
            core.audit.reopen();
        }
    }
}

/// Dev mode logs the CLI in, as the vault dev server does: the root token goes to
/// `~/.vault-token` (mode 0600), unless `-dev-no-store-token`.
fn store_dev_token(root: &str) {
    let Some(home) = std::env::var_os("HOME") else {
        return;
    };
    let path = std::path::Path::new(&home).join(".vault-token");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let written = opts
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, root.as_bytes()));
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "cannot store the dev root token");
    }
}

async fn listen(
    l: &ListenerConfig,
    state: AppState,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), String> {
    let std_listener = std::net::TcpListener::bind(&l.address)
        .map_err(|e| format!("error binding {}: {e}", l.address))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    let addr = std_listener.local_addr().map_err(|e| e.to_string())?;
    let app = crate::router(state).into_make_service_with_connect_info::<SocketAddr>();
    if l.tls_disable {
        let listener =
            tokio::net::TcpListener::from_std(std_listener).map_err(|e| e.to_string())?;
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.changed().await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "listener failed");
            }
        });
        return Ok((addr, task));
    }
    let (cert, key) = match (&l.tls_cert_file, &l.tls_key_file) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => return Err("tls_cert_file and tls_key_file are required".into()),
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
        .await
        .map_err(|e| format!("error loading TLS certificate: {e}"))?;
    let handle = axum_server::Handle::new();
    let h2 = handle.clone();
    tokio::spawn(async move {
        let _ = stop.changed().await;
        h2.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    let server = axum_server::from_tcp_rustls(std_listener, tls).map_err(|e| e.to_string())?;
    let task = tokio::spawn(async move {
        if let Err(e) = server.handle(handle).serve(app).await {
            tracing::error!(error = %e, "TLS listener failed");
        }
    });
    Ok((addr, task))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn flags() {
        let f = parse_flags(&s(&[
            "-dev",
            "-dev-root-token-id=root",
            "-dev-listen-address",
            "127.0.0.1:1",
        ]))
        .unwrap();
        assert!(f.dev);
        assert_eq!(f.dev_root_token_id.as_deref(), Some("root"));
        assert_eq!(f.dev_listen_address.as_deref(), Some("127.0.0.1:1"));
        assert!(parse_flags(&s(&[])).is_err());
        assert!(parse_flags(&s(&["-bogus"])).is_err());
        assert_eq!(
            parse_flags(&s(&["--config=x.hcl"])).unwrap().config.len(),
            1
        );
    }
}

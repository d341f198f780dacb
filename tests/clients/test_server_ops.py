"""Operating the server: TLS listener, graceful shutdown, online keyring rotation, the old
`backend` config name, the listener's body limit. lessor's own config shapes, so lessor only."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import hvac
import pytest
import requests

from conftest import ServerProcess, free_port, server_binary

pytestmark = pytest.mark.lessor_only


def _start(tmp_path: Path, body: str, port: int) -> ServerProcess:
    cfg = tmp_path / "server.hcl"
    cfg.write_text(body)
    srv = ServerProcess([server_binary(), "server", "-config", str(cfg)], port, tmp_path / "server.log")
    srv.start()
    return srv


def _init(url: str) -> tuple[str, str]:
    init = requests.put(f"{url}/v1/sys/init", json={"secret_shares": 1, "secret_threshold": 1}, timeout=10).json()
    requests.put(f"{url}/v1/sys/unseal", json={"key": init["keys"][0]}, timeout=10).raise_for_status()
    return init["keys"][0], init["root_token"]


def test_backend_alias_rotation_and_restart(tmp_path: Path):
    port = free_port()
    body = (
        f'backend "file" {{ path = "{tmp_path / "data"}" }}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = "true"\n}}\n'
        'ui = true\nlog_level = "warn"\n'
    )
    srv = _start(tmp_path, body, port)
    try:
        key, root = _init(srv.url)
        client = hvac.Client(url=srv.url, token=root)
        client.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
        client.secrets.kv.v1.create_or_update_secret("before", {"v": "1"}, mount_point="kv1")
        assert client.sys.get_encryption_key_status()["data"]["term"] == 1
        client.sys.rotate_encryption_key()
        assert client.sys.get_encryption_key_status()["data"]["term"] == 2
        client.secrets.kv.v1.create_or_update_secret("after", {"v": "2"}, mount_point="kv1")
        srv.stop()
        srv.start()
        requests.put(f"{srv.url}/v1/sys/unseal", json={"key": key}, timeout=10).raise_for_status()
        client = hvac.Client(url=srv.url, token=root)
        assert client.secrets.kv.v1.read_secret("before", mount_point="kv1")["data"] == {"v": "1"}
        assert client.secrets.kv.v1.read_secret("after", mount_point="kv1")["data"] == {"v": "2"}
        assert client.sys.get_encryption_key_status()["data"]["term"] == 2
    finally:
        srv.stop()


def test_sigterm_shuts_down_gracefully(tmp_path: Path):
    port = free_port()
    srv = ServerProcess(
        [server_binary(), "server", "-dev", "-dev-root-token-id=root", f"-dev-listen-address=127.0.0.1:{port}"],
        port,
        tmp_path / "server.log",
    )
    srv.start()
    proc = srv.proc
    assert proc is not None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    srv.proc = None


def test_listener_body_limit(tmp_path: Path):
    port = free_port()
    body = (
        'storage "inmem" {}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n  max_request_size = 1024\n}}\n'
    )
    srv = _start(tmp_path, body, port)
    try:
        _, root = _init(srv.url)
        r = requests.post(
            f"{srv.url}/v1/secret/x", headers={"X-Vault-Token": root}, json={"v": "x" * 4096}, timeout=10
        )
        assert r.status_code == 413
        assert r.headers["Content-Type"] == "application/json"
        assert r.json()["errors"]
    finally:
        srv.stop()


def test_tls_listener(tmp_path: Path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    cfg = tmp_path / "server.hcl"
    cfg.write_text(
        'storage "inmem" {}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n'
        f'  tls_cert_file = "{cert}"\n  tls_key_file = "{key}"\n}}\n'
    )
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([server_binary(), "server", "-config", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                r = requests.get(f"{url}/v1/sys/health", verify=str(cert), timeout=2)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert r.status_code == 501  # uninitialised, over TLS
        client = hvac.Client(url=url, verify=str(cert))
        assert client.sys.is_initialized() is False
        # A client that does not trust the certificate is refused.
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{url}/v1/sys/health", timeout=5)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()

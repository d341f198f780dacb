"""Audit devices through hvac: a file device records a request and a response entry per
request with every secret HMAC'd, `sys/audit-hash` reproduces the hashes, the broker fails
closed when no device can write, and devices declared in the server configuration."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import hvac
import hvac.exceptions
import pytest
import requests

from conftest import ROOT_TOKEN, ServerProcess, free_port, hvac_client, server_binary, start_dev_server

pytestmark = pytest.mark.lessor_only  # SIGHUP reopening and the declared-device options are lessor's


def entries(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def audit_hash(client: hvac.Client, device: str, value: str) -> str:
    return client.adapter.post(f"/v1/sys/audit-hash/{device}", json={"input": value})["data"]["hash"]


@pytest.fixture
def server(log_dir: Path):
    s = start_dev_server(log_dir)
    try:
        yield s
    finally:
        s.stop()


def test_file_device_hmacs_secrets_and_audit_hash_reproduces(server, tmp_path: Path):
    client = hvac_client(server.url, ROOT_TOKEN)
    log = tmp_path / "audit.log"
    client.sys.enable_audit_device("file", options={"file_path": str(log)})
    listed = client.sys.list_enabled_audit_devices()["data"]
    assert listed["file/"]["type"] == "file"
    assert listed["file/"]["options"]["file_path"] == str(log)
    assert oct(log.stat().st_mode & 0o777) == "0o600"

    secret_value = "s3cr3t-value-7f1c"
    client.secrets.kv.v2.create_or_update_secret(path="audit-app", secret={"password": secret_value})
    assert client.secrets.kv.v2.read_secret_version(path="audit-app")["data"]["data"]["password"] == secret_value

    # A real lease: a service token with a TTL; renewed, then revoked.
    created = client.auth.token.create(policies=["default"], ttl="1h")
    token, accessor = created["auth"]["client_token"], created["auth"]["accessor"]
    client.auth.token.renew(token, increment="2h")
    client.auth.token.revoke(token)

    text = log.read_text()
    for clear in (secret_value, token, accessor):
        assert clear not in text
    es = entries(log)
    kinds = {(e["type"], e["request"]["path"]) for e in es}
    for path in ("secret/data/audit-app", "auth/token/create", "auth/token/renew", "auth/token/revoke"):
        assert ("request", path) in kinds and ("response", path) in kinds, path
    for e in es:
        assert e["time"].endswith("Z") and "T" in e["time"]
        assert e["request"]["client_token"].startswith("hmac-sha256:")
        assert e["auth"]["policies"] == ["root"]
    # Every request has exactly one request entry and one response entry, same id (the
    # enabling request has only its response: the device did not exist before it ran).
    ids = {}
    for e in es[1:]:
        ids.setdefault(e["request"]["id"], []).append(e["type"])
    assert all(sorted(v) == ["request", "response"] for v in ids.values())

    create = next(e for e in es if e["type"] == "response" and e["request"]["path"] == "auth/token/create")
    assert create["response"]["auth"]["client_token"] == audit_hash(client, "file", token)
    assert create["response"]["auth"]["accessor"] == audit_hash(client, "file", accessor)
    assert create["response"]["auth"]["policies"] == ["default"]
    put = next(e for e in es if e["type"] == "request" and e["request"]["path"] == "secret/data/audit-app")
    assert put["request"]["data"]["data"]["password"] == audit_hash(client, "file", secret_value)
    assert put["request"]["client_token"] == audit_hash(client, "file", ROOT_TOKEN)
    read = next(e for e in es if e["type"] == "response" and e["request"]["path"] == "secret/data/audit-app"
                and e["request"]["operation"] == "read")
    assert read["response"]["data"]["data"]["password"] == audit_hash(client, "file", secret_value)

    with pytest.raises(hvac.exceptions.InvalidRequest, match='the "input" parameter is empty'):
        client.adapter.post("/v1/sys/audit-hash/file", json={"input": ""})
    with pytest.raises(hvac.exceptions.InvalidRequest, match="path already in use"):
        client.sys.enable_audit_device("file", options={"file_path": str(log)})

    # Disabling discards the salt: a device enabled again at the path hashes differently.
    before = audit_hash(client, "file", "x")
    client.sys.disable_audit_device("file")
    assert "file/" not in client.sys.list_enabled_audit_devices()["data"]
    client.sys.enable_audit_device("file", options={"file_path": str(tmp_path / "b.log"), "log_raw": "true",
                                                    "prefix": "AUDIT:"})
    assert audit_hash(client, "file", "x") != before
    client.sys.list_mounted_secrets_engines()
    line = (tmp_path / "b.log").read_text().splitlines()[-1]
    assert line.startswith("AUDIT:{") and f'"client_token":"{ROOT_TOKEN}"' in line


def test_audit_paths_need_sudo(server, tmp_path: Path):
    root = hvac_client(server.url, ROOT_TOKEN)
    root.sys.create_or_update_policy("audit-nosudo", 'path "sys/audit*" { capabilities = ["create", "read", "update", "delete", "list"] }')
    token = root.auth.token.create(policies=["audit-nosudo"])["auth"]["client_token"]
    limited = hvac_client(server.url, token)
    with pytest.raises(hvac.exceptions.Forbidden):
        limited.sys.list_enabled_audit_devices()
    with pytest.raises(hvac.exceptions.Forbidden):
        limited.sys.enable_audit_device("file", options={"file_path": str(tmp_path / "x.log")})


def test_fail_closed_and_recovery(server, tmp_path: Path):
    client = hvac_client(server.url, ROOT_TOKEN)
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "audit.log"
    client.sys.enable_audit_device("file", options={"file_path": str(log)})
    assert client.auth.token.create(ttl="1h")["auth"]["client_token"]

    # Break the device: its directory becomes a regular file (root ignores permissions, so
    # a path that cannot be created is what makes the file unwritable), then SIGHUP makes
    # the server reopen it.
    for p in logs.iterdir():
        p.unlink()
    logs.rmdir()
    logs.write_text("not a directory")
    os.kill(server.proc.pid, signal.SIGHUP)
    time.sleep(0.3)

    hdr = {"X-Vault-Token": ROOT_TOKEN}
    r = requests.post(f"{server.url}/v1/auth/token/create", json={"ttl": "1h"}, headers=hdr, timeout=10)
    assert r.status_code == 500, r.text
    assert r.json() == {"errors": ["internal error"]}
    assert "client_token" not in r.text
    r = requests.get(f"{server.url}/v1/secret/data/anything", headers=hdr, timeout=10)
    assert r.status_code == 500
    r = requests.post(f"{server.url}/v1/secret/data/x", json={"data": {"k": "v"}}, headers=hdr, timeout=10)
    assert r.status_code == 500

    # Fixed: the next request opens the file again and succeeds.
    logs.unlink()
    logs.mkdir()
    new = client.auth.token.create(ttl="1h")["auth"]
    assert new["client_token"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.secrets.kv.v2.read_secret_version(path="x")
    es = entries(log)
    assert any(e["type"] == "response" and e["request"]["path"] == "auth/token/create" for e in es)
    # The failed create left no token: exactly the two successful creates hold token leases.
    keys = client.adapter.list("/v1/sys/leases/lookup/auth/token/create/")["data"]["keys"]
    assert len(keys) == 2
    metrics = requests.get(f"{server.url}/v1/sys/metrics?format=prometheus", headers=hdr, timeout=10).text
    failed = [l for l in metrics.splitlines() if l.startswith("lessor_audit_failed_entries_total ")]
    assert failed and float(failed[0].split()[1]) >= 3


def test_declared_device_and_api_file_devices_forbidden(log_dir: Path, tmp_path: Path):
    log = tmp_path / "declared.log"
    cfg = tmp_path / "server.hcl"
    cfg.write_text(
        f'''
audit "file" "declared" {{
  description = "from the config"
  options {{
    file_path = "{log}"
    hmac_accessor = "false"
  }}
}}
unsafe_allow_api_audit_creation = false
'''
    )
    port = free_port()
    s = ServerProcess(
        [server_binary(), "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}",
         f"-dev-listen-address=127.0.0.1:{port}", f"-config={cfg}", "-log-level=debug"],
        port,
        log_dir / f"declared-{port}.log",
    )
    s.start()
    try:
        client = hvac_client(s.url, ROOT_TOKEN)
        listed = client.sys.list_enabled_audit_devices()["data"]
        assert listed["declared/"]["description"] == "from the config"
        with pytest.raises(hvac.exceptions.InvalidRequest, match="server configuration"):
            client.sys.disable_audit_device("declared")
        with pytest.raises(hvac.exceptions.InvalidRequest, match="cannot enable a file audit device"):
            client.sys.enable_audit_device("file", path="api", options={"file_path": str(tmp_path / "api.log")})
        created = client.auth.token.create(ttl="1h")["auth"]
        es = entries(log)
        resp = next(e for e in es if e["type"] == "response" and e["request"]["path"] == "auth/token/create")
        assert resp["response"]["auth"]["accessor"] == created["accessor"]  # hmac_accessor=false
        assert resp["response"]["auth"]["client_token"] != created["client_token"]
        # The server log carries the audit entries' request ids, never the token.
        server_log = s.log_path.read_text()
        assert resp["request"]["id"] in server_log
        assert created["client_token"] not in server_log
    finally:
        s.stop()


class UnixSink:
    """A unix-socket audit collector. With `cut_on`, it closes the connection and stops
    listening as soon as a request entry for that path arrives, so the device cannot write
    the matching response entry."""

    def __init__(self, path: Path, cut_on: str | None = None):
        import socket
        import threading

        self.path, self.cut_on, self.lines = path, cut_on, []
        self.cut = threading.Event()
        if path.exists():
            path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            while not self.cut.is_set():
                conn, _ = self.sock.accept()
                with conn, conn.makefile("r") as f:
                    for line in f:
                        self.lines.append(line)
                        e = json.loads(line)
                        if self.cut_on and e["type"] == "request" and e["request"]["path"] == self.cut_on:
                            self.close()
                            return
        except OSError:
            pass

    def close(self) -> None:
        self.cut.set()
        self.sock.close()
        if self.path.exists():
            self.path.unlink()


def test_unaudited_response_takes_the_secret_back(log_dir: Path, tmp_path: Path):
    """The response entry of an issued secret cannot be written: the lease is revoked at
    once (the test engine holds no resource) and the client gets 500 without the secret."""
    binary = os.environ.get("LESSOR_TEST_SERVER_BIN") or str(
        Path(server_binary()).parent / "lessor-test-server")
    if not os.access(binary, os.X_OK):
        pytest.skip(f"{binary} not found: cargo build --release -p lessor-engine-test --features test-server")
    port = free_port()
    s = ServerProcess([binary, "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}",
                       f"-dev-listen-address=127.0.0.1:{port}"], port, log_dir / f"unaudited-{port}.log")
    s.start()
    sock_path = tmp_path / "audit.sock"
    sink = UnixSink(sock_path, cut_on="test/creds/app")
    try:
        hdr = {"X-Vault-Token": ROOT_TOKEN}
        call = lambda m, p, body=None: requests.request(m, f"{s.url}/v1/{p}", json=body, headers=hdr, timeout=30)  # noqa: E731
        assert call("POST", "sys/mounts/test", {"type": "lessor-test"}).status_code == 204
        # The engine takes 500 ms to create its credential: time for the sink to go away.
        assert call("POST", "test/config", {"create_delay_ms": 500}).status_code in (200, 204)
        r = call("PUT", "sys/audit/sock", {"type": "socket", "options": {"address": str(sock_path), "socket_type": "unix"}})
        assert r.status_code == 204, r.text

        r = call("GET", "test/creds/app")
        assert r.status_code == 500, r.text
        assert r.json() == {"errors": ["internal error"]}
        assert sink.cut.is_set()

        sink = UnixSink(sock_path)  # the collector is back
        assert call("GET", "test/resources").json()["data"]["count"] == 0
        assert call("LIST", "sys/leases/lookup/test/creds/app/").status_code == 404
        assert call("POST", "test/config", {"create_delay_ms": 0}).status_code in (200, 204)
        r = call("GET", "test/creds/app")
        assert r.status_code == 200 and r.json()["lease_id"].startswith("test/creds/app/")
        assert call("GET", "test/resources").json()["data"]["count"] == 1
        assert any('"type":"response"' in l and "test/creds/app" in l for l in sink.lines)
    finally:
        sink.close()
        s.stop()

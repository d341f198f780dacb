"""The lease manager's process-level suites share this: ``lessor-test-server`` (lessor with the
test engine, mount type ``lessor-test``) as a dev server or on durable file storage, and small
HTTP helpers for the test engine.

The binary is ``$LESSOR_TEST_SERVER_BIN`` or ``target/release/lessor-test-server``; built by
``cargo build --release -p lessor-engine-test --features test-server``. Modules using it skip
with that command as the reason when it is missing, and run against lessor only: OpenBao has
no test engine.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import requests

from conftest import REPO_ROOT, ROOT_TOKEN, TARGET, FileServer, ServerProcess, free_port, wait_active

BUILD_HINT = "cargo build --release -p lessor-engine-test --features test-server"


def test_server_binary() -> str:
    explicit = os.environ.get("LESSOR_TEST_SERVER_BIN")
    if explicit:
        return str(Path(explicit).resolve())
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    if not target_dir.is_absolute():
        target_dir = REPO_ROOT / target_dir
    return str(target_dir / "release" / "lessor-test-server")


test_server_binary.__test__ = False  # a helper, not a test


def require_test_server() -> str:
    """The binary's path, or skip the calling module with the reason."""
    if TARGET != "lessor":
        pytest.skip("the test engine exists in lessor only", allow_module_level=True)
    binary = test_server_binary()
    if not os.access(binary, os.X_OK):
        pytest.skip(f"{binary} not found: run `{BUILD_HINT}`", allow_module_level=True)
    return binary


def start_dev(log_dir: Path, attempts: int = 3) -> ServerProcess:
    """A dev test-server (in memory, unsealed, root token "root")."""
    for attempt in range(attempts):
        port = free_port()
        argv = [
            test_server_binary(),
            "server",
            "-dev",
            f"-dev-root-token-id={ROOT_TOKEN}",
            f"-dev-listen-address=127.0.0.1:{port}",
        ]
        server = ServerProcess(argv, port, log_dir / f"test-server-{port}.log")
        try:
            server.start()
        except RuntimeError as error:
            if attempt + 1 < attempts and "already in use" in str(error).lower():
                continue
            raise
        wait_active(server.url)
        return server
    raise RuntimeError("unreachable")


class TestFileServer(FileServer):
    """A test-server on file storage with a short pending-lease deadline."""

    __test__ = False
    pending_deadline = "2s"

    def __init__(self, base: Path, pending_deadline: str = "2s"):
        self.pending_deadline = pending_deadline
        super().__init__(base)
        self._server.argv[0] = test_server_binary()

    def _config(self) -> str:
        return super()._config() + f'pending_lease_deadline = "{self.pending_deadline}"\n'


class Api:
    """Raw HTTP to one server with one token."""

    def __init__(self, url: str, token: str = ROOT_TOKEN):
        self.url = url
        self.session = requests.Session()
        self.session.headers["X-Vault-Token"] = token

    def call(self, method: str, path: str, body: dict | None = None, timeout: float = 30) -> requests.Response:
        return self.session.request(method, f"{self.url}/v1/{path}", json=body, timeout=timeout)

    def ok(self, method: str, path: str, body: dict | None = None, timeout: float = 30) -> dict:
        r = self.call(method, path, body, timeout)
        assert r.status_code in (200, 202, 204), f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else {}

    def mount_test(self, path: str = "test", **config) -> None:
        self.ok("POST", f"sys/mounts/{path}", {"type": "lessor-test"})
        if config:
            self.ok("POST", f"{path}/config", config)

    def issue(self, role: str, mount: str = "test") -> str:
        return self.ok("GET", f"{mount}/creds/{role}")["lease_id"]

    def resources(self, mount: str = "test") -> int:
        return self.ok("GET", f"{mount}/resources")["data"]["count"]

    def lease_ids(self, prefix: str) -> list[str]:
        """Every lease id under `prefix` (walks sub-prefixes of LIST sys/leases/lookup)."""
        out: list[str] = []
        pending = [prefix.rstrip("/") + "/"]
        while pending:
            p = pending.pop()
            r = self.call("LIST", f"sys/leases/lookup/{p}")
            if r.status_code == 404:
                continue
            assert r.status_code == 200, r.text
            for key in r.json()["data"]["keys"]:
                if key.endswith("/"):
                    pending.append(p + key)
                else:
                    out.append(p + key)
        return out

    def lookup(self, lease_id: str) -> dict | None:
        r = self.call("PUT", "sys/leases/lookup", {"lease_id": lease_id})
        if r.status_code == 400:
            return None
        assert r.status_code == 200, r.text
        return r.json()["data"]


def poll(check, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Calls `check()` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")

"""`lease lookup|renew|revoke` from the command line, with the `bao` CLI and lessor's own, on
test-engine leases of ``lessor-test-server``; and lessor's progress display while a prefix
revocation of a few thousand leases runs as a job."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import CLI_TIMEOUT, ROOT_TOKEN, CliResult, bao, server_binary
from lease_server import Api, poll, require_test_server, start_dev

require_test_server()
pytestmark = pytest.mark.lessor_only


@pytest.fixture(scope="module")
def server(log_dir: Path):
    s = start_dev(log_dir)
    api = Api(s.url)
    api.mount_test("test", ttl="1h", max_ttl="2h")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def api(server) -> Api:
    return Api(server.url)


def cli_env(url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env.update(VAULT_ADDR=url, VAULT_TOKEN=ROOT_TOKEN, NO_COLOR="1", HOME=str(home))
    return env


def lessor(*args: str, url: str, home: Path) -> CliResult:
    proc = subprocess.run(
        [server_binary(), *args],
        env=cli_env(url, home),
        input="",
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    return CliResult(list(args), proc.stdout, proc.stderr, proc.returncode)


@pytest.fixture(params=["bao", "lessor"])
def cli(request, server, tmp_path):
    """Runs one CLI against the server: `cli("lease", "lookup", id)`."""
    if request.param == "bao":
        return lambda *args: bao(*args, url=server.url, token=ROOT_TOKEN, home=tmp_path)
    return lambda *args: lessor(*args, url=server.url, home=tmp_path)


def test_lookup(cli, api):
    lease = api.issue("lookup")
    out = cli("lease", "lookup", "-format=json", lease).check().json()
    assert out["data"]["id"] == lease
    assert out["data"]["renewable"] is True
    assert 3500 <= out["data"]["ttl"] <= 3600
    table = cli("lease", "lookup", lease).check().stdout
    assert lease in table and "expire_time" in table


def test_lookup_unknown_lease_fails(cli):
    res = cli("lease", "lookup", "test/creds/lookup/nonexistent")
    assert res.code == 2
    assert "invalid lease" in res.stderr


def test_renew_with_increment(cli, api):
    lease = api.issue("renew")
    out = cli("lease", "renew", "-increment=30m", "-format=json", lease).check().json()
    assert out["lease_id"] == lease
    assert out["renewable"] is True
    # The increment is advisory, capped by the engine's TTL and the max TTL.
    assert 0 < out["lease_duration"] <= 3600
    ttl = api.lookup(lease)["ttl"]
    assert abs(ttl - out["lease_duration"]) <= 2
    assert api.lookup(lease)["last_renewal"]


def test_revoke_one(cli, api):
    lease = api.issue("revoke-one")
    before = api.resources()
    res = cli("lease", "revoke", lease).check()
    assert lease in res.stdout or "queued" in res.stdout
    poll(lambda: api.lookup(lease) is None, 10, what="lease revoked")
    assert api.resources() == before - 1


def test_revoke_one_sync(cli, api):
    lease = api.issue("revoke-sync")
    res = cli("lease", "revoke", "-sync", lease).check()
    assert "Success! Revoked lease" in res.stdout
    assert api.lookup(lease) is None


@pytest.mark.parametrize("sync", [False, True])
def test_revoke_prefix(cli, api, sync):
    role = f"prefix-{'sync' if sync else 'async'}-{time.monotonic_ns()}"
    leases = [api.issue(role) for _ in range(20)]
    keep = api.issue(role + "x")  # shares the text prefix, not the path prefix
    before = api.resources()
    args = ["lease", "revoke", "-prefix"] + (["-sync"] if sync else []) + [f"test/creds/{role}"]
    res = cli(*args).check()
    if sync:
        assert "Success! Revoked any leases with prefix" in res.stdout
    poll(lambda: not api.lease_ids(f"test/creds/{role}"), 20, what="prefix revoked")
    assert all(api.lookup(lease) is None for lease in leases)
    assert api.lookup(keep) is not None
    assert api.resources() == before - len(leases)


# --- lessor's progress display ---------------------------------------------------------------


def issue_many(api: Api, role: str, count: int) -> None:
    def one(_):
        api.issue(role)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(count)))


@pytest.fixture
def slow_revocations(api):
    """Each revocation takes a few ms, so a job over thousands of leases lasts a few polls."""
    api.ok("POST", "test/config", {"revoke_delay_ms": 5})
    yield
    api.ok("POST", "test/config", {"revoke_delay_ms": 0})


def test_lessor_revoke_prefix_progress_lines(server, api, tmp_path, slow_revocations):
    role = "many-lines"
    issue_many(api, role, 3000)
    before = api.resources()
    res = lessor("lease", "revoke", "-prefix", f"test/creds/{role}", url=server.url, home=tmp_path)
    assert res.code == 0, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("Revoking:")]
    assert lines, res.stderr
    assert lines[-1] == "Revoking: 3000/3000 revoked, 0 failed", res.stderr
    assert "\r" not in res.stderr  # no bar drawn into a pipe
    assert "Success! Revoked any leases with prefix: test/creds/many-lines" in res.stdout
    # The command returns only when the job is done: nothing is left.
    assert api.lease_ids(f"test/creds/{role}") == []
    assert api.resources() == before - 3000


def run_on_pty(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, str]:
    """Runs argv with stderr on a pseudo-terminal (stdout a pipe); returns code, stdout, stderr."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed its end
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    return proc.returncode, stdout, b"".join(chunks).decode(errors="replace")


def test_lessor_revoke_prefix_draws_bar_on_terminal(server, api, tmp_path, slow_revocations):
    role = "many-bar"
    issue_many(api, role, 2000)
    code, stdout, stderr = run_on_pty(
        [server_binary(), "lease", "revoke", "-prefix", f"test/creds/{role}"],
        cli_env(server.url, tmp_path),
        CLI_TIMEOUT,
    )
    assert code == 0, stderr
    frames = [f for f in stderr.split("\r") if f.strip()]
    assert frames, repr(stderr)
    assert frames[-1].strip() == "[" + "#" * 30 + "] 2000/2000 revoked, 0 failed", repr(stderr)
    assert "Success! Revoked any leases with prefix" in stdout
    assert api.lease_ids(f"test/creds/{role}") == []


def test_lessor_revoke_prefix_sync_waits_in_request(server, api, tmp_path):
    role = "many-sync"
    issue_many(api, role, 500)
    res = lessor("lease", "revoke", "-prefix", "-sync", f"test/creds/{role}", url=server.url, home=tmp_path)
    assert res.code == 0, res.stderr
    assert "Revoking:" not in res.stderr
    assert "Success! Revoked any leases with prefix" in res.stdout
    assert api.lease_ids(f"test/creds/{role}") == []


def test_lessor_revoke_prefix_reports_failures(server, api, tmp_path):
    role = "many-fail"
    issue_many(api, role, 50)
    api.ok("POST", "test/config", {"fail_revoke": -1})
    try:
        res = lessor("lease", "revoke", "-prefix", f"test/creds/{role}", url=server.url, home=tmp_path)
    finally:
        api.ok("POST", "test/config", {"fail_revoke": 0})
    assert res.code == 2, res
    assert "50 of 50 leases could not be revoked" in res.stderr
    # Failed leases stay recorded, to be retried.
    assert len(api.lease_ids(f"test/creds/{role}")) == 50
    api.ok("PUT", f"sys/leases/revoke-prefix/test/creds/{role}", {"sync": True})
